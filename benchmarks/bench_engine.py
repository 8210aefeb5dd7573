#!/usr/bin/env python3
"""Seconds per optimisation step of each preset vs a bare VGG-19 forward+backward.

For each long side (default 256, 512, 700 px at the dataset's 700x437
aspect) and preset, runs ``stylize`` for a few steps with 9 hard label masks
and reports the median time per loss evaluation next to a bare VGG-19
forward+backward through conv3_1 on the same input, and their ratio.
Random VGG weights cost exactly what ImageNet weights cost, so the
benchmark runs offline. Target (benchmarks/README.md): ``full`` <= 1.25x the bare step.

    python benchmarks/bench_engine.py [--sizes 256 512 700] [--steps 5] [--presets full gatys]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from photostyle_lib.features.allocator import keep_freed_memory
from photostyle_lib.engine.lbfgs import LBFGS
from photostyle_lib.semantic.masks import SemanticMasks
from photostyle_lib.io.metadata import device_description
from photostyle_lib.engine.presets import PRESETS, get_preset
from photostyle_lib.checks import resolve_device
from photostyle_lib.engine.transfer import stylize
from photostyle_lib.features.vgg import VGGFeatures


def nine_label_masks(h: int, w: int) -> torch.Tensor:
    """A 3x3 grid of labels, one-hot (9, h, w)."""
    ys = torch.arange(h).unsqueeze(1) * 3 // h
    xs = torch.arange(w).unsqueeze(0) * 3 // w
    lab = (ys * 3 + xs).expand(h, w)
    return torch.nn.functional.one_hot(lab, 9).permute(2, 0, 1).float()


def bare_step(x: torch.Tensor, steps: int, device: torch.device) -> float:
    # the same memory format the engine uses on this device, so only the losses differ
    net = VGGFeatures("random", ("conv3_1",)).to(device).use_channels_last(device.type == "cpu")
    x = x.to(device).clone().requires_grad_(True)
    for _ in range(2):  # warm-up
        net(x)["conv3_1"].sum().backward()
    times = []
    for _ in range(steps):
        _sync(device)
        t = time.perf_counter()
        x.grad = None
        net(x)["conv3_1"].sum().backward()
        _sync(device)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def lbfgs_bookkeeping(numel: int, device: torch.device, history: int = 100, steps: int = 5,
                      optimizer: type = LBFGS) -> float:
    """Seconds per step an L-BFGS spends on its own (two-loop recursion, history) once
    ``history`` pairs are stored, for ``numel`` unknowns: measured on f(x) = |x|^2 / 2, whose
    evaluation is nearly free, after ``history + 5`` steps. ``optimizer``: the engine's
    (photostyle_lib.engine.lbfgs.LBFGS) or torch.optim.LBFGS."""
    x = torch.randn(numel, generator=torch.Generator().manual_seed(0)).to(device).requires_grad_(True)
    opt = optimizer([x], lr=0.1, max_iter=1, history_size=history, tolerance_grad=0.0, tolerance_change=0.0)
    stamps = []

    def closure():
        opt.zero_grad()
        loss = 0.5 * x.pow(2).sum()
        loss.backward()
        _sync(device)
        stamps.append(time.perf_counter())
        return loss

    for _ in range(history + 5 + steps):
        opt.step(closure)
    return float(np.median(np.diff(stamps[-steps - 1:])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 700])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--presets", nargs="+", default=[p for p in PRESETS])
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    if device.type == "cpu":
        keep_freed_memory()  # as stylize does on the CPU: the bare step gets the same allocator
    rows = []
    for size in args.sizes:
        h, w = round(size * 437 / 700), size
        g = torch.Generator().manual_seed(0)
        content = torch.rand(1, 3, h, w, generator=g)
        style = torch.rand(1, 3, h, w, generator=g)
        masks = SemanticMasks(nine_label_masks(h, w), nine_label_masks(h, w).flip(2),
                              tuple(f"l{i}" for i in range(9)), kind="hard")
        bare = bare_step(content, args.steps, device)
        rows.append({"size": f"{w}x{h}", "preset": "bare VGG conv3_1 fwd+bwd", "s/step": bare, "ratio": 1.0})
        for name in args.presets:
            cfg = get_preset(name, weights="random", iterations=args.steps + 2, device=str(device),
                             two_stage=False)
            r = stylize(content, style, cfg, masks=masks if cfg.uses_masks else None, progress=False)
            # median step, dropping the first two evaluations (warm-up, allocator): robust to
            # other processes on a shared machine
            sec = float(r.losses["seconds"].diff().iloc[2:].median())
            # the bare step again right after: the ratio is taken against the mean of the bare
            # steps measured just before and just after, so a machine whose speed drifts
            # (shared cores) skews it less
            after = bare_step(content, args.steps, device)
            ref = (bare + after) / 2
            bare = after
            rows.append({"size": f"{w}x{h}", "preset": name, "s/step": sec, "ratio": sec / ref})
            print(f"{w}x{h} {name}: {sec:.3f} s/step ({sec / ref:.2f}x bare {ref:.3f} s)", flush=True)
        # The runs above stop long before L-BFGS holds its 100 pairs; what a later step adds:
        book = lbfgs_bookkeeping(3 * h * w, device)
        rows.append({"size": f"{w}x{h}", "preset": "+ L-BFGS, 100 pairs stored", "s/step": book, "ratio": book / bare})
        book = lbfgs_bookkeeping(3 * h * w, device, optimizer=torch.optim.LBFGS)
        rows.append({"size": f"{w}x{h}", "preset": "  (torch.optim.LBFGS instead)", "s/step": book,
                     "ratio": book / bare})
    table = pd.DataFrame(rows)
    print(f"\ndevice: {device} ({device_description(device)}), torch {torch.__version__}, "
          "9 hard label masks, random weights")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
