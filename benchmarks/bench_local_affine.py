#!/usr/bin/env python3
"""Seconds for Luan et al.'s local affine smoothing (``local_affine``) at the dataset's 437 x 700, and a look at
whether their published results carry it.

Images: pair ``--pair`` (default 1) of the Luan et al. set ($PHOTOSTYLE_DATA, ./data/luan2017 or
../shared/data/luan2017): ``input/in<N>.png`` is the content (the guide) and their published
``luan_results/best<N>_t_1000.png`` the image smoothed, both resized to ``--size`` on the long side
(700: the files' own 437 x 700); seeded synthetic images when the set is absent. Parameters are
Luan et al.'s: radius 15, edge 0.01, 3 x 3 fit windows, epsilon 1e-3.

Rows (each the best of ``--repeat`` runs after one warm-up, float64):

* ``fit`` (eq. 2, box sums + batched 3x3 solves), ``bilateral numba`` (eq. 3), ``numpy total``:
  :func:`local_affine.smooth_local_affine` and its parts;
* ``bilateral numpy loop``: the reference measured in the same run, eq. (3) as a plain loop over the
  961 offsets in numpy (one run, no warm-up; ``--no-reference`` skips it);
* ``torch <device>``: :func:`local_affine.smooth_local_affine_torch` on each ``--devices`` entry
  (``cuda`` is skipped when absent; the CPU torch path is the slow one, it is for GPUs; on a
  small machine it also runs slower after numba's OpenMP threads have run, which spin for a while).

``--check`` then measures, in 8-bit levels (RMS over pixels and channels), how far each image moves
when smoothed once more, d(x) = RMS(S(x) - x): for the published result b, for S(b) rounded to 8 bits
(an image known to be smoothed and saved as PNG) and for b plus Gaussian noise of 2/255 (detail that
the content does not explain), and the same for each further ``--check-pairs`` pair.

    python benchmarks/bench_local_affine.py [--size 700] [--repeat 2] [--devices cpu cuda] [--check]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from PIL import Image

from photostyle_lib.photoreal import local_affine as la
from photostyle_lib.io.images import read_rgb_array
from _timing import best_time  # noqa: E402  (benchmarks/_timing.py, beside this script)

ROOT = Path(__file__).resolve().parent.parent
RADIUS, EDGE, PATCH_RADIUS, EPSILON = la.DEFAULT_RADIUS, la.DEFAULT_EDGE, la.DEFAULT_PATCH_RADIUS, la.DEFAULT_EPSILON


def find_data() -> Path | None:
    candidates = [Path(os.environ["PHOTOSTYLE_DATA"])] if os.environ.get("PHOTOSTYLE_DATA") else []
    candidates += [ROOT / "data" / "luan2017", ROOT.parent / "shared" / "data" / "luan2017"]
    return next((p for p in candidates if (p / "input" / "in1.png").is_file()), None)


def resized(arr: np.ndarray, size: int) -> np.ndarray:
    """arr (H, W, 3) float in [0, 1] with its long side made ``size`` (bicubic on 8 bits), float64."""
    h, w = arr.shape[:2]
    scale = size / max(h, w)
    if scale == 1:
        return arr.astype(np.float64)
    u8 = Image.fromarray(np.round(arr * 255).astype(np.uint8))
    u8 = u8.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)
    return np.asarray(u8, dtype=np.float64) / 255.0


def load_pair(data: Path | None, pair: int, size: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(content, published result) (H, W, 3) float64 in [0, 1] and a description of where they came from."""
    if data is not None:
        content = read_rgb_array(data / "input" / f"in{pair}.png")
        result = read_rgb_array(data / "luan_results" / f"best{pair}_t_1000.png")
        if result.shape != content.shape:
            result = np.asarray(Image.fromarray(np.round(result * 255).astype(np.uint8)).resize(
                content.shape[1::-1], Image.BICUBIC), dtype=np.float64) / 255.0
        return resized(content, size), resized(result, size), f"pair {pair} of {data}"
    rng = np.random.default_rng(pair)
    h, w = round(size * 437 / 700), size
    y, x = np.mgrid[0:h, 0:w] / size
    content = np.clip(np.stack([0.5 + 0.3 * np.sin(6 * x), 0.5 + 0.3 * np.cos(5 * y), 0.4 + 0.2 * (x + y)], -1)
                      + 0.03 * rng.standard_normal((h, w, 3)), 0, 1)
    result = np.clip(content[:, :, ::-1] * 0.8 + 0.1 + 0.02 * rng.standard_normal((h, w, 3)), 0, 1)
    return content, result, "synthetic (the Luan et al. set was not found)"



def once(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def torch_runner(output: np.ndarray, content: np.ndarray, device: torch.device) -> Callable[[], object]:
    o = torch.from_numpy(output).permute(2, 0, 1).unsqueeze(0).to(device)
    c = torch.from_numpy(content).permute(2, 0, 1).unsqueeze(0).to(device)

    def run() -> torch.Tensor:
        res = la.smooth_local_affine_torch(o, c, RADIUS, EDGE)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return res
    return run


def timing_table(content: np.ndarray, output: np.ndarray, args: argparse.Namespace) -> pd.DataFrame:
    models = la.fit_models_np(output, content, PATCH_RADIUS, EPSILON)
    sigma_s = RADIUS / 3
    rows = {
        "fit (eq. 2)": best_time(lambda: la.fit_models_np(output, content, PATCH_RADIUS, EPSILON), args.repeat),
        "bilateral numba (eq. 3)": best_time(lambda: la.bilateral_numba(models, content, RADIUS, sigma_s, EDGE),
                                             args.repeat),
        "numpy total": best_time(lambda: la.smooth_local_affine(output, content, RADIUS, EDGE), args.repeat),
    }
    if not args.no_reference:
        rows["bilateral numpy loop (reference)"] = once(
            lambda: la.bilateral_offsets_np(models, content, RADIUS, sigma_s, EDGE))
    for name in args.devices:
        dev = torch.device(name)
        if dev.type == "cuda" and not torch.cuda.is_available():
            print(f"note: {name} asked for but CUDA is not available; its row is skipped")
            continue
        rows[f"torch {name} total"] = best_time(torch_runner(output, content, dev), args.repeat)
    table = pd.DataFrame({"seconds": rows})
    ref = rows.get("bilateral numpy loop (reference)")
    # eq. (3) is most of every total (the fit about a tenth), so the ratio is given for the rows that contain it
    table["reference / this"] = [ref / s if ref and not name.startswith("fit") else float("nan")
                                 for name, s in table["seconds"].items()]
    return table


def check_published(data: Path | None, pairs: list[int], size: int) -> pd.DataFrame:
    rms = lambda a, b: 255.0 * float(np.sqrt(np.mean((a - b) ** 2)))
    smooth = lambda x, c: la.smooth_local_affine(x, c, RADIUS, EDGE)
    rng = np.random.default_rng(0)
    rows = []
    for pair in pairs:
        content, published, _ = load_pair(data, pair, size)
        smoothed_8bit = np.round(smooth(published, content) * 255) / 255
        noisy = np.clip(published + rng.normal(0.0, 2 / 255, published.shape), 0, 1)
        rows.append({"pair": pair,
                     "d(published)": rms(smooth(published, content), published),
                     "d(8-bit S(published))": rms(smooth(smoothed_8bit, content), smoothed_8bit),
                     "d(published + noise 2/255)": rms(smooth(noisy, content), noisy)})
    return pd.DataFrame(rows).set_index("pair")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=700, help="long side in pixels (700: the files' 437 x 700)")
    ap.add_argument("--pair", type=int, default=1, help="dataset pair for the timings")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per entry (minimum reported)")
    ap.add_argument("--devices", nargs="*", default=["cuda"], help="torch devices to time (cpu is slow)")
    ap.add_argument("--no-reference", action="store_true", help="skip the numpy offset-loop reference")
    ap.add_argument("--check", action="store_true", help="measure whether the published results are smoothed")
    ap.add_argument("--check-pairs", type=int, nargs="*", default=[1, 2, 3], help="pairs for --check")
    args = ap.parse_args()

    data = find_data()
    content, output, where = load_pair(data, args.pair, args.size)
    print(f"images: {where}, {content.shape[0]}x{content.shape[1]} (HxW); radius {RADIUS}, edge {EDGE}, "
          f"{2 * PATCH_RADIUS + 1}x{2 * PATCH_RADIUS + 1} fit windows, epsilon {EPSILON}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numba threads "
          f"{os.environ.get('NUMBA_NUM_THREADS', 'default (all cores)')}, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads"
          + (f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 200):
        print(timing_table(content, output, args).to_string())
        if args.check:
            print("\nd(x) = RMS(S(x) - x) in 8-bit levels, S = smooth_local_affine with the content as guide:")
            print(check_published(data, args.check_pairs, args.size).to_string())


if __name__ == "__main__":
    main()
