#!/usr/bin/env python3
"""Seconds for whole transfers at the paper's size, per preset, split into stages.

For one Luan et al. pair (``--pair``, default 1; ``--data``, else
$PHOTOSTYLE_DATA, data/luan2017 or ../shared/data/luan2017) at long side ``--size`` (default
700, the paper's), runs each preset with its own iteration count (500; ``luan``
two stages of 1000) and gold masks, and prints a table of the stages:

* ``segment``: the ADE20K segmenter on content and style at the paper code's
  five scales (what ``full`` costs when no masks are given). Timed with the
  default architecture and RANDOM weights (same cost as the checkpoint), once
  per run, since a random segmenter's masks are not usable for the transfer;
* ``setup``: VGG targets, mask indices, the matting Laplacian where used;
* ``optimise``: the L-BFGS loop; ``ms/step`` is that over the loss evaluations;
* ``post``: the recursive-filter post-process (eq. 9) where used;
* ``total``: ``setup + optimise + post`` (+ ``segment`` for presets that
  segment).

VGG weights are random by default (``--weights imagenet`` where they are
installed): random weights cost what ImageNet weights cost, but the images are
not style transfers. With ``--out DIR`` each result is written with its
metadata, labelled as random-weight output where it is one.

    python benchmarks/bench_transfer.py [--size 700] [--presets full luan] [--device cuda] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd
import torch

from photostyle_lib.io import data
from photostyle_lib.semantic.segmenter import PAPER_SCALES, ADE20KSegmenter, architecture_config
from photostyle_lib.io.images import load_image
from photostyle_lib.semantic.masks import load_gold_masks
from photostyle_lib.io.metadata import device_description
from photostyle_lib.experiments.pipeline import Run, save_run
from photostyle_lib.engine.presets import PRESETS, get_preset
from photostyle_lib.checks import resolve_device
from photostyle_lib.engine.transfer import stylize

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "luan2017"


def _data_root(given: Path | None) -> Path | None:
    """--data if given, else $PHOTOSTYLE_DATA, data/luan2017 or ../shared/data/luan2017, whichever has input/."""
    for p in ([given] if given is not None else [os.environ.get(data.ENV_VAR), *data.default_data_dirs(), SHARED]):
        if p and (Path(p) / "input").is_dir():
            return Path(p)
    return None


def time_segmentation(content: torch.Tensor, style: torch.Tensor, device: str) -> float:
    """Seconds for five-scale probabilities of both images, random weights, after one warm-up."""
    seg = ADE20KSegmenter("random", config=architecture_config(), seed=0,
                          device=device, scales=PAPER_SCALES)
    seg.probabilities(content)  # warm-up: allocator, kernel selection
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    seg.probabilities(content)
    seg.probabilities(style)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=700, help="long side in pixels (paper: 700)")
    ap.add_argument("--pair", type=int, default=1, help="Luan et al. pair id")
    ap.add_argument("--presets", nargs="+", default=["full", "regularization", "gatys", "luan"],
                    choices=list(PRESETS))
    ap.add_argument("--iterations", type=int, default=None, help="override the presets' iteration counts")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--weights", default="random", help="VGG-19 weights: random (default), imagenet or a file")
    ap.add_argument("--no-segment", action="store_true", help="skip the segmentation timing")
    ap.add_argument("--out", type=Path, default=None, help="write each result and its metadata here")
    ap.add_argument("--data", type=Path, default=None, help="the Luan et al. data directory")
    args = ap.parse_args()

    root = _data_root(args.data)
    if root is None:
        where = args.data or f"${data.ENV_VAR}, data/luan2017 or ../shared/data/luan2017"
        raise SystemExit(f"no Luan et al. data found in {where}: run `python data/download_luan2017.py` "
                         f"or set {data.ENV_VAR} / --data to the folder that holds input/ and style/")
    pair = data.get_pair(args.pair, root)
    device = str(resolve_device(args.device))
    content = load_image(pair.content, max_size=args.size)
    style = load_image(pair.style, max_size=args.size)
    masks = load_gold_masks(pair.content_mask, pair.style_mask, unmatched="drop")
    seg_s = None if args.no_segment else time_segmentation(content, style, device)

    rows = []
    for name in args.presets:
        overrides = {"weights": args.weights, "device": device}
        if args.iterations is not None:
            overrides["iterations"] = args.iterations
        cfg = get_preset(name, **overrides)
        segments = cfg.segmentation in ("soft", "hard")
        if cfg.uses_masks:
            cfg = cfg.replace(segmentation="gold")
        r = stylize(content, style, cfg, masks=masks if cfg.uses_masks else None, progress=False)
        t = r.timings
        total = t["setup"] + t["optimise"] + t["postprocess"] + ((seg_s or 0.0) if segments else 0.0)
        rows.append({"preset": name, "evaluations": len(r.losses), "segment": seg_s if segments else None,
                     "setup": t["setup"], "optimise": t["optimise"], "ms/step": 1e3 * t["per_step"],
                     "post": t["postprocess"], "total": total, "stop": r.stop_reason})
        print(f"{name}: {total:.1f} s ({len(r.losses)} evaluations, {1e3 * t['per_step']:.1f} ms/step)", flush=True)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            run = Run(result=r, content=content, style=style, masks=masks if cfg.uses_masks else None,
                      preset=name, inputs={"content": str(pair.content), "style": str(pair.style),
                                           "size": args.size, "mask_kind": "gold" if cfg.uses_masks else None})
            save_run(run, args.out / f"pair{args.pair}_{name}_{args.size}.png", overwrite=True)

    h, w = content.shape[-2:]
    print(f"\npair {args.pair} at {w}x{h}, gold masks, VGG weights {args.weights}; device {device} "
          f"({device_description(device)}), torch {torch.__version__}; "
          "segment = ADE20K UPerNet/ConvNeXt-S at 5 scales, random weights")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-"))


if __name__ == "__main__":
    main()
