#!/usr/bin/env python3
"""Seconds and colour-distribution quality of the colour-transfer baselines, next to a peer.

Times ``baselines.pitie_idt`` (iterative distribution transfer, 20 rotations,
regrain off) and, when it is importable, python-color-transfer's
``ColorTransfer().pdf_transfer`` (``pip install python-color-transfer``; not a
dependency of the package; regrain off, its 6 fixed rotations, 8-bit BGR in and
out), on the same content and style, and prints for each the best (minimum) of
``--repeat`` runs after one warm-up (numba compilation excluded), the ratio
ours / peer (column ``idt ours / this``), and the sliced Wasserstein distance of the result's colours to the
style's (``metrics.style_distance``: CIELab, Delta-E units; lower is closer).
``baselines.reinhard`` is timed too, for scale.

The pair is the dataset's in<N>.png / tar<N>.png ($PHOTOSTYLE_DATA, ./data/luan2017
or ../shared/data/luan2017), resized so that the long side is ``--size`` (default:
as stored, 700), or a seeded synthetic pair when the data are absent. Everything
runs on one core.

    python benchmarks/bench_baselines.py [--pair 1] [--size 700] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from PIL import Image

from photostyle_lib.baselines import pitie_idt, reinhard
from photostyle_lib.io.images import read_rgb_array
from photostyle_lib.metrics import style_distance
from _timing import best_time  # noqa: E402  (benchmarks/_timing.py, beside this script)

ROOT = Path(__file__).resolve().parent.parent


def find_pair(index: int) -> tuple[Path, Path] | None:
    roots = []
    if os.environ.get("PHOTOSTYLE_DATA"):
        roots.append(Path(os.environ["PHOTOSTYLE_DATA"]))
    roots += [ROOT / "data" / "luan2017", ROOT.parent / "shared" / "data" / "luan2017"]
    for root in roots:
        content, style = root / "input" / f"in{index}.png", root / "style" / f"tar{index}.png"
        if content.is_file() and style.is_file():
            return content, style
    return None


def load(path: Path, size: int | None) -> np.ndarray:
    """(H, W, 3) float64 in [0, 1], long side resized to ``size`` when given."""
    img = read_rgb_array(path).astype(np.float64)
    if size is None or max(img.shape[:2]) == size:
        return img
    h, w = img.shape[:2]
    scale = size / max(h, w)
    u8 = Image.fromarray(np.round(img * 255).astype(np.uint8))
    return np.asarray(u8.resize((round(w * scale), round(h * scale)), Image.BICUBIC), dtype=np.float64) / 255.0


def synthetic_pair(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded smooth content and a two-cluster style, (round(size * 437/700), size, 3)."""
    rng = np.random.default_rng(0)
    h, w = round(size * 437 / 700), size
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    content = np.stack([0.3 + 0.4 * x, 0.5 + 0.2 * np.sin(5 * y), 0.6 - 0.3 * y], -1)
    style = np.where((x < 0.5)[..., None], [0.8, 0.4, 0.2], [0.2, 0.3, 0.7])
    return (np.clip(content + 0.02 * rng.standard_normal(content.shape), 0, 1),
            np.clip(style + 0.05 * rng.standard_normal(style.shape), 0, 1))



def peer_pdf_transfer() -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
    """python-color-transfer's pdf_transfer on [0, 1] RGB arrays, or None when it is not installed."""
    try:
        import cv2
        from python_color_transfer.color_transfer import ColorTransfer
    except ImportError:
        return None
    cv2.setNumThreads(1)
    transfer = ColorTransfer()

    def run(content_bgr8: np.ndarray, style_bgr8: np.ndarray) -> np.ndarray:
        return transfer.pdf_transfer(content_bgr8, style_bgr8, regrain=False)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pair", type=int, default=1, help="dataset pair number (default 1)")
    ap.add_argument("--size", type=int, default=None, help="long side in pixels (default: as stored)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per entry (minimum reported)")
    ap.add_argument("--synthetic", action="store_true", help="use the seeded synthetic pair even if the data exist")
    args = ap.parse_args()

    paths = None if args.synthetic else find_pair(args.pair)
    if paths is not None:
        content, style = load(paths[0], args.size), load(paths[1], args.size)
        print(f"pair {args.pair}: {paths[0]} / {paths[1]}")
    else:
        content, style = synthetic_pair(args.size or 700)
        print(f"pair: synthetic (in{args.pair}.png / tar{args.pair}.png not found)")
    print(f"content {content.shape[0]}x{content.shape[1]}, style {style.shape[0]}x{style.shape[1]} (HxW); "
          f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}")

    to_bgr8 = lambda img: np.ascontiguousarray(np.round(img[..., ::-1] * 255).astype(np.uint8))  # noqa: E731
    peer = peer_pdf_transfer()
    rows = []
    ours_idt = pitie_idt(content, style)
    t_ours = best_time(lambda: pitie_idt(content, style), args.repeat)
    rows.append({"method": "reinhard (ours)", "seconds": best_time(lambda: reinhard(content, style), args.repeat),
                 "idt ours / this": float("nan"), "style distance": style_distance(reinhard(content, style), style)})
    rows.append({"method": "pitie_idt (ours)", "seconds": t_ours, "idt ours / this": 1.0,
                 "style distance": style_distance(ours_idt, style)})
    if peer is not None:
        c8, s8 = to_bgr8(content), to_bgr8(style)
        theirs = peer(c8, s8)[..., ::-1].astype(np.float64) / 255.0
        t_peer = best_time(lambda: peer(c8, s8), args.repeat)
        rows.append({"method": "pdf_transfer (python-color-transfer)", "seconds": t_peer,
                     "idt ours / this": t_ours / t_peer, "style distance": style_distance(theirs, style)})
    rows.append({"method": "(content itself)", "seconds": float("nan"), "idt ours / this": float("nan"),
                 "style distance": style_distance(content, style)})
    table = pd.DataFrame(rows).set_index("method")
    with pd.option_context("display.float_format", "{:.4f}".format, "display.width", 200):
        print(table.to_string())
    if peer is None:
        print("pdf_transfer (python-color-transfer): not installed (pip install python-color-transfer)")
    else:
        print("idt ours / this: seconds of pitie_idt over the row's (below 1 on the peer's row: ours is faster)")


if __name__ == "__main__":
    main()
