#!/usr/bin/env python3
"""Soft vs hard masks under controlled segmentation errors, on held-out pairs (the paper's section 3.3 claim).

For each pair (default: ten held-out pairs, every fourth id of 21-60), error
kind and severity, runs the full model with the pair's gold masks corrupted
(``photostyle_lib.semantic.mask_errors``) and handed over hard and soft (one run per
theta_s), plus the clean gold run, all through the run cache
(``--cache``, default ``results/cache``: a rerun or a later session computes
only what is missing); scores every run against the TRUE gold masks
(``photostyle_lib.experiments.soft_vs_hard.score``) and writes to ``--out``:

* ``soft_vs_hard.csv``: one row per (pair, kind, severity, masks);
* ``summary.csv``: mean and 95% Student-t interval over pairs;
* ``soft_vs_hard_<kind>.png``: scores vs severity per mask kind, with the intervals;
* ``examples_<kind>_<severity>.png`` and ``panels/``: a Figure 5-like grid at each kind's largest severity;
* ``metadata.json``: parameters, weights, git revision, cache keys.

It prints, per kind and severity, the mean (95% interval) of style distance
and edge transition for every mask kind, and soft minus hard paired by pair.

    python studies/soft_vs_hard.py [--pairs 21,25,...,57] [--size 256] [--iterations 500]
        [--weights hed-vgg16] [--boundary 0,4,8,16] [--swap 0,0.25,0.5] [--speckle 0,0.05,0.2]
        [--theta-s 0.2] [--temperature 8] [--out results/soft_vs_hard] [--device auto]

Runs per pair: 1 gold + per kind and nonzero severity (1 hard + one per theta_s),
+ (1 hard + one per theta_s) at severity 0: 21 with the defaults.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from photostyle_lib.experiments import recipes, soft_vs_hard
from photostyle_lib.experiments.settings import Settings
from photostyle_lib.experiments.runs import add_cache_arguments
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.data import HELD_OUT_PAIRS, parse_pairs

#: Held-out pairs measured by default: every fourth id of 21-60 (nothing was tuned on them).
DEFAULT_PAIRS = HELD_OUT_PAIRS[::4]


def parse_values(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def paired_difference(table: pd.DataFrame, metric: str, theta_s: float) -> pd.DataFrame:
    """Per (kind, severity): mean and 95% t interval over pairs of soft (theta_s) minus hard."""
    soft = table[(table["mask"] == "soft") & np.isclose(table["theta_s"], theta_s)]
    hard = table[table["mask"] == "hard"]
    m = soft.merge(hard, on=["pair_id", "kind", "severity"], suffixes=("_soft", "_hard"))
    m["diff"] = m[f"{metric}_soft"] - m[f"{metric}_hard"]
    rows = []
    for (kind, sev), sub in m.groupby(["kind", "severity"], sort=False):
        v = sub["diff"].to_numpy(np.float64)
        v = v[np.isfinite(v)]
        lo, hi = soft_vs_hard.t_interval(v)
        rows.append({"kind": kind, "severity": sev, "metric": metric, "theta_s": theta_s, "n": v.size,
                     "soft_minus_hard": float(v.mean()) if v.size else np.nan, "low": lo, "high": hi})
    return pd.DataFrame(rows)


def printed_table(summary: pd.DataFrame, metrics: tuple[str, ...] = ("style_distance", "edge_transition")) -> str:
    rows = []
    for (kind, sev, cond), sub in summary.groupby(["kind", "severity", "condition"], sort=False):
        row = {"kind": kind, "severity": f"{sev:g}", "masks": cond}
        for metric in metrics:
            r = sub[sub["metric"] == metric].iloc[0]
            ci = "" if not np.isfinite(r["low"]) else f" [{r['low']:.3g}, {r['high']:.3g}]"
            row[metric] = f"{r['mean']:.3g}{ci}"
        rows.append(row)
    return pd.DataFrame(rows).to_string(index=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", default=",".join(map(str, DEFAULT_PAIRS)),
                    help="ids, e.g. 21-60 or 21,25,30-33 (default: every fourth of the held-out 21-60)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--weights", default="hed-vgg16")
    ap.add_argument("--boundary", default="0,4,8,16", help="boundary shifts, px ('' to skip the kind)")
    ap.add_argument("--swap", default="0,0.25,0.5", help="fractions of a region swapped ('' to skip)")
    ap.add_argument("--speckle", default="0,0.05,0.2", help="fractions of pixels relabelled ('' to skip)")
    ap.add_argument("--theta-s", default="0.2", help="theta_s of the soft runs, comma-separated")
    ap.add_argument("--temperature", type=float, default=soft_vs_hard.DEFAULT_TEMPERATURE)
    ap.add_argument("--target", default="content", choices=("content", "style", "both"))
    ap.add_argument("--seed", type=int, default=0)
    add_cache_arguments(ap, out=Path("results/soft_vs_hard"))
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    try:
        severities = {k: parse_values(getattr(args, k)) for k in ("boundary", "swap", "speckle")
                      if parse_values(getattr(args, k))}
        severities = {k: [int(v) for v in vs] if k == "boundary" else vs for k, vs in severities.items()}
        thetas = parse_values(args.theta_s)
        settings = Settings(
            "soft_vs_hard", data_dir=args.data, output_dir=str(args.out.resolve()),
            cache_dir=str(args.cache.resolve()), pair_ids=tuple(parse_pairs(args.pairs)), size=args.size,
            iterations=args.iterations, weights=args.weights, device=args.device, theta_s=thetas[0],
            seed=args.seed, progress=not args.no_progress)
        result = soft_vs_hard.soft_vs_hard(settings, severities, thetas, temperature=args.temperature,
                                           target=args.target)
    except (PhotostyleError, ValueError, IndexError) as exc:
        print(f"soft_vs_hard: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    recipes.save_outputs(settings, result.outputs, extra={
        "severities": severities, "thetas": thetas, "temperature": args.temperature, "target": args.target,
        "left_out": {str(p): why for p, why in result.left_out.items()}})
    result.table.to_csv(args.out / "soft_vs_hard.csv", index=False)
    result.summary.to_csv(args.out / "summary.csv", index=False)
    diffs = pd.concat([paired_difference(result.table, m, t) for t in thetas
                       for m in ("style_distance", "edge_transition", "edge_transition_used")], ignore_index=True)
    diffs.to_csv(args.out / "soft_minus_hard.csv", index=False)
    tuned = [p for p in settings.pair_ids if p < 21]
    warning = next((w for w in result.table["weights_warning"] if isinstance(w, str) and w), None)
    print(f"{len(settings.pair_ids)} pairs, {args.size} px, {args.iterations} iterations, weights {args.weights}"
          + (f" [{warning}]" if warning else "") + (f" -- includes TUNING pairs {tuned}" if tuned else ""))
    for p, why in result.left_out.items():
        print(f"pair {p} left out: {why} (no error between labels possible)")
    print(printed_table(result.summary))
    print("\nsoft minus hard, paired by pair (mean [95% t interval]):")
    print(diffs.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
