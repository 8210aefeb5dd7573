#!/usr/bin/env python3
"""Time to quality: the ``fast`` preset (coarse to fine, plateau stop) against the paper profile ``full``.

For a list of pairs (default 21-60, held out; ``--pairs`` picks a subset) at a long side
``--size`` (default 512), runs ``full`` and ``fast`` with the pair's gold masks through the
run cache (``runs.run_many``), scores both with ``sweep.score_runs`` (the metrics of
``studies/quality.py``: photorealism, structure, style distance) and writes to ``--out``:

* ``time_to_quality.csv``: one row per pair: each preset's run time (the engine's own,
  ``runtime_s``: setup + optimisation + post-process), evaluations, the fast run's
  full-size-equivalent evaluations (each level's count times its pixels over the full
  size's: a cost that does not depend on the machine's load), the time ratio fast / full,
  each metric for both and its degradation (fast's change in the worse direction,
  relative to full's; negative = better);
* ``summary.csv``: the metric means, their degradation, the worst pair's, the ratio of the
  total times, and the target's verdict;
* ``metadata.json``: the parameters, the fast schedule, the weights, the runs' cache keys.

Times are those recorded when each run was computed: runs read from the cache keep the
time of the session that made them. Compare times of runs made in one session on one
machine (a fresh ``--cache`` folder, nothing else running); the equivalent evaluations
are comparable in any case.

Target (issue "time to quality"): at 512 px on the CPU, the fast schedule's metric means
within 3% of full's (degradation <= 3%), no pair worse by more than 10% on any metric, in
<= 0.3x full's time (ratio of the total times).

``--level-iterations``, ``--plateau-window``, ``--plateau-tol`` and ``--level-start`` replace the fast
preset's schedule (to tune it: on pairs 1-20 only); ``--iterations N`` gives full N
evaluations and fast N per level (smoke runs).

    python studies/time_to_quality.py [--pairs 21-60] [--size 512] [--weights hed-vgg16]
        [--level-iterations 150,100,90] [--plateau-window 30] [--plateau-tol 3e-3]
        [--level-start bilinear|content_detail] [--out results/time_to_quality]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from photostyle_lib.experiments import sweep
from photostyle_lib.experiments.sweep import QUALITY_DIRECTIONS
from photostyle_lib.io.data import HELD_OUT_PAIRS, data_dir as resolve_data_dir, parse_pairs
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.metadata import base_metadata, write_json
from photostyle_lib.engine.config import LEVEL_STARTS
from photostyle_lib.engine.presets import FAST_SCHEDULE
from photostyle_lib.experiments.runs import add_cache_arguments, RunRecord, RunSpec, run_many
from photostyle_lib.engine.schedule import pyramid_sizes


#: The measures this benchmark's target was set on (the judge's two are studies/quality.py's).
DIRECTIONS = {m: QUALITY_DIRECTIONS[m] for m in ("photorealism", "structure", "style_distance")}

REFERENCE, FAST = "full", "fast"
#: The issue's target: mean degradation, worst pair's degradation, time ratio.
TARGET = {"mean": 0.03, "pair": 0.10, "time": 0.3}


def fast_overrides(*, level_iterations: tuple[int, ...] | None = None, plateau_window: int | None = None,
                   plateau_tol: float | None = None, iterations: int | None = None,
                   level_start: str | None = None) -> dict[str, Any]:
    """RunSpec overrides of the fast preset: its schedule's fields that differ from FAST_SCHEDULE."""
    out: dict[str, Any] = {}
    if level_iterations is not None:
        out["level_iterations"] = tuple(level_iterations)
        out["pyramid_levels"] = len(level_iterations)
    elif iterations is not None:
        out["level_iterations"] = (iterations,) * FAST_SCHEDULE["pyramid_levels"]
    if plateau_window is not None:
        out["plateau_window"] = plateau_window
    if plateau_tol is not None:
        out["plateau_tol"] = plateau_tol
    if level_start is not None:
        out["level_start"] = level_start
    return {k: v for k, v in out.items() if FAST_SCHEDULE.get(k) != v}


def specs_for(pairs: list[int], *, size: int, weights: str, iterations: int | None,
              overrides: dict[str, Any]) -> list[RunSpec]:
    """Per pair: ``full`` then ``fast``, with gold masks."""
    extra = {} if iterations is None else {"iterations": iterations}
    specs = []
    for p in pairs:
        specs.append(RunSpec(p, REFERENCE, masks="gold", size=size, weights=weights, **extra))
        specs.append(RunSpec(p, FAST, masks="gold", size=size, weights=weights, overrides=tuple(overrides.items()),
                             **extra))
    return specs


def equivalent_evaluations(record: RunRecord) -> float:
    """Evaluations weighted by their level's pixels over the full size's (a pyramid's cost in full-size steps)."""
    losses = record.losses()
    if losses is None or not len(losses):
        return float("nan")
    if "level" not in losses:
        return float(len(losses))
    h, w = (int(v) for v in record.metadata["size"])
    cfg = record.metadata.get("config")
    levels = int(cfg["pyramid_levels"]) if isinstance(cfg, dict) else int(losses["level"].max())
    sizes = pyramid_sizes(h, w, levels)
    counts = losses["level"].value_counts()
    return float(sum(n * sizes[lvl - 1][0] * sizes[lvl - 1][1] / (h * w) for lvl, n in counts.items()))


def degradation(fast: float, full: float, direction: int) -> float:
    """Fast's change from full in the worse direction, relative to full (0.05: 5% worse; negative: better)."""
    return float(-direction * (fast - full) / abs(full)) if full else float("nan")


def compare(table: pd.DataFrame, records: list[RunRecord]) -> pd.DataFrame:
    """One row per pair: times, evaluations, metrics of both presets, ratios and degradations."""
    by_key = {r.key: r for r in records}
    rows = []
    for pair_id, grp in table.groupby("pair_id", sort=True):
        g = grp.set_index("method")
        if REFERENCE not in g.index or FAST not in g.index:
            continue
        full, fast = g.loc[REFERENCE], g.loc[FAST]
        rf, rq = by_key[full.key], by_key[fast.key]
        row: dict[str, Any] = {
            "pair_id": int(pair_id), "full_s": float(full.runtime_s), "fast_s": float(fast.runtime_s),
            "time_ratio": float(fast.runtime_s / full.runtime_s),
            "full_evals": int(rf.metadata.get("evaluations", 0)), "fast_evals": int(rq.metadata.get("evaluations", 0)),
            "fast_equiv_evals": equivalent_evaluations(rq),
            "full_stop": rf.metadata.get("stop_reason"), "fast_stop": rq.metadata.get("stop_reason")}
        row["work_ratio"] = row["fast_equiv_evals"] / max(row["full_evals"], 1)
        for metric, sign in DIRECTIONS.items():
            row[f"{metric}_full"] = float(full[metric])
            row[f"{metric}_fast"] = float(fast[metric])
            row[f"{metric}_worse"] = degradation(float(fast[metric]), float(full[metric]), sign)
        rows.append(row)
    if not rows:
        raise PhotostyleError("no pair has both a full and a fast run to compare")
    return pd.DataFrame(rows)


def summarise(per_pair: pd.DataFrame) -> dict[str, Any]:
    """Means, their degradation, the worst pair per metric, the total time ratio, and the target's verdict."""
    out: dict[str, Any] = {"pairs": int(len(per_pair)),
                           "time_ratio": float(per_pair.fast_s.sum() / per_pair.full_s.sum()),
                           "work_ratio": float(per_pair.fast_equiv_evals.sum() / per_pair.full_evals.sum())}
    verdict = {}
    for metric, sign in DIRECTIONS.items():
        mf, mq = float(per_pair[f"{metric}_full"].mean()), float(per_pair[f"{metric}_fast"].mean())
        out[f"{metric}_mean_full"], out[f"{metric}_mean_fast"] = mf, mq
        out[f"{metric}_mean_worse"] = degradation(mq, mf, sign)
        out[f"{metric}_worst_pair_worse"] = float(per_pair[f"{metric}_worse"].max())
        verdict[f"{metric} mean within {TARGET['mean']:.0%}"] = bool(out[f"{metric}_mean_worse"] <= TARGET["mean"])
        verdict[f"{metric}: no pair worse by > {TARGET['pair']:.0%}"] = \
            bool(out[f"{metric}_worst_pair_worse"] <= TARGET["pair"])
    verdict[f"time <= {TARGET['time']}x full"] = bool(out["time_ratio"] <= TARGET["time"])
    out["target"] = verdict
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", default="21-60", help="ids, e.g. 21-60 or 1,8 (default 21-60: held out)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--weights", default="hed-vgg16")
    ap.add_argument("--iterations", type=int, default=None,
                    help="smoke runs: full's evaluations, and fast's per level")
    ap.add_argument("--level-iterations", default=None, help="fast's evaluations per level, coarsest first, e.g. 100,60,100")
    ap.add_argument("--plateau-window", type=int, default=None)
    ap.add_argument("--plateau-tol", type=float, default=None)
    ap.add_argument("--level-start", default=None, choices=LEVEL_STARTS,
                    help="how each finer level starts (TransferConfig.level_start)")
    add_cache_arguments(ap, out=Path("results/time_to_quality"))
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    try:
        pairs = parse_pairs(args.pairs)
        levels = None
        if args.level_iterations is not None:
            try:
                levels = tuple(int(v) for v in args.level_iterations.split(","))
            except ValueError:
                raise PhotostyleError(f"bad --level-iterations {args.level_iterations!r}; write e.g. 100,60,100") from None
        overrides = fast_overrides(level_iterations=levels, plateau_window=args.plateau_window,
                                   plateau_tol=args.plateau_tol, iterations=args.iterations,
                                   level_start=args.level_start)
        data_dir = resolve_data_dir(args.data)
        specs = specs_for(pairs, size=args.size, weights=args.weights, iterations=args.iterations,
                          overrides=overrides)
        records = run_many(specs, cache_dir=args.cache, data_dir=data_dir, device=args.device,
                           progress=not args.no_progress)
        table = sweep.score_runs(records, data_dir=data_dir, include_content=False, progress=not args.no_progress)
        per_pair = compare(table, records)
    except PhotostyleError as exc:
        print(f"time_to_quality: {exc}", file=sys.stderr)
        return 2
    summary = summarise(per_pair)
    fast_cfg = records[1].spec.config()
    schedule = {k: getattr(fast_cfg, k) for k in FAST_SCHEDULE}
    tuned = sorted(set(pairs) - set(HELD_OUT_PAIRS))
    weights_line = records[0].metadata.get("weights", args.weights)
    warning = next((r.metadata.get("weights_warning") for r in records if r.metadata.get("weights_warning")), None)
    devices = sorted({str(r.metadata.get("device_name")) for r in records})
    title = (f"{args.size} px, gold masks, weights: {weights_line}; fast: {schedule}"
             + (f" -- {warning}" if warning else "") + (f" -- includes TUNING pairs {tuned}" if tuned else ""))
    args.out.mkdir(parents=True, exist_ok=True)
    per_pair.to_csv(args.out / "time_to_quality.csv", index=False)
    flat = {k: v for k, v in summary.items() if k != "target"}
    flat.update({f"target: {k}": v for k, v in summary["target"].items()})
    pd.DataFrame([flat]).to_csv(args.out / "summary.csv", index=False)
    write_json({**base_metadata(), "pairs": pairs, "size": args.size, "weights": args.weights,
                "weights_label": weights_line, "weights_warning": warning, "fast_schedule": schedule,
                "iterations": args.iterations, "devices": devices, "tuning_pairs_included": tuned,
                "summary": summary, "runs": {f"{r.spec.pair_id}:{r.spec.method}": r.key for r in records}},
               args.out / "metadata.json")
    cols = ["pair_id", "full_s", "fast_s", "time_ratio", "full_evals", "fast_evals", "work_ratio"]
    cols += [f"{m}_{k}" for m in DIRECTIONS for k in ("full", "fast", "worse")]
    short = {c: c.replace("photorealism", "photo").replace("structure", "struct").replace("style_distance", "style")
             for c in cols}
    pd.set_option("display.width", 250)
    print(title)
    print(per_pair[cols].rename(columns=short).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"mean: time ratio {summary['time_ratio']:.3g} (work ratio {summary['work_ratio']:.3g}); "
          + "; ".join(f"{m} {summary[f'{m}_mean_worse']:+.2%} (worst pair {summary[f'{m}_worst_pair_worse']:+.2%})"
                      for m in DIRECTIONS) + " [worse: + ]")
    for name, ok in summary["target"].items():
        print(f"target {name}: {'met' if ok else 'NOT met'}")
    print(f"written: {args.out}/time_to_quality.csv, summary.csv, metadata.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
