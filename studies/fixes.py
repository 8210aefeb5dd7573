#!/usr/bin/env python3
"""What each quality fix moved: the ``full`` preset with the fixes switched on one at a time.

Variants (cumulative, in the order the fixes were made):

1. ``before``: the project's earlier engine -- each label's Gram divided by its own
   area (``style_normalization="area"``) and the paper's plain fixed-step L-BFGS
   (``optimizer="lbfgs"``, lr 0.1, x clamped inside the closure);
2. ``+authors_norm``: the masked-style normalisation the project then took for the
   authors' (their code before its fix, today's ``"authors_joint"``);
3. ``+projected_lbfgs``: the projected L-BFGS with backtracking (``full`` as it was
   until 2026-12-05; today's ``full`` has the authors' final loss, see
   ``studies/changes.py``).

Each runs on tuning pairs (default 1, 8, 16; never the held-out 21-60) with gold
masks through the run cache and is scored with ``photostyle_lib.metrics``
against Luan et al.'s published results at the same size. Prints one row per
variant: mean photorealism / structure / style distance, each as a ratio to
Luan et al.'s, and how many runs the divergence guard stopped.

    python studies/fixes.py [--pairs 1 8 16] [--size 256] [--weights hed-vgg16] [--out results/fixes]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from photostyle_lib.experiments import sweep
from photostyle_lib.io.data import data_dir as resolve_data_dir, tuning_pairs_only
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.metadata import base_metadata, write_json
from photostyle_lib.experiments.runs import add_cache_arguments, RunSpec, run_many

VARIANTS: dict[str, tuple[tuple[str, object], ...]] = {
    "before": (("optimizer", "lbfgs"), ("style_normalization", "area")),
    "+authors_norm": (("optimizer", "lbfgs"), ("style_normalization", "authors_joint")),
    "+projected_lbfgs": (("style_normalization", "authors_joint"),),
}
#: every variant at the paper's weights, stated explicitly (independent of per-network presets)
PAPER_WEIGHTS = (("similarity_weight", 3.0), ("style_weight", 1e7))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, nargs="+", default=[1, 8, 16])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--weights", default="hed-vgg16")
    ap.add_argument("--iterations", type=int, default=500)
    add_cache_arguments(ap, out=Path("results/fixes"))
    args = ap.parse_args(argv)
    try:
        tuning_pairs_only(args.pairs)
        data_dir = resolve_data_dir(args.data)
        specs, names = [], {}
        for p in args.pairs:
            for name, over in VARIANTS.items():
                s = RunSpec(p, "full", masks="gold", size=args.size, iterations=args.iterations,
                            weights=args.weights, overrides=PAPER_WEIGHTS + over)
                specs.append(s)
                names[(p, s.overrides)] = name
            specs.append(RunSpec(p, "luan_published", size=args.size))
        records = run_many(specs, cache_dir=args.cache, data_dir=data_dir, progress=not args.no_progress)
        table = sweep.score_runs(records, data_dir=data_dir, include_content=False, progress=not args.no_progress)
    except PhotostyleError as exc:
        print(f"fixes: {exc}", file=sys.stderr)
        return 2
    by_key = {r.key: r for r in records}
    table["variant"] = [names.get((by_key[k].spec.pair_id, by_key[k].spec.overrides), "luan_published")
                        for k in table.key]
    table["stop_reason"] = [by_key[k].metadata.get("stop_reason") for k in table.key]
    ref = table[table.variant == "luan_published"].set_index("pair_id")
    rows = []
    for name in VARIANTS:
        g = table[table.variant == name].set_index("pair_id")
        row = {"variant": name}
        for m in ("photorealism", "structure", "style_distance"):
            row[f"{m}_vs_luan"] = float(g[m].mean() / ref.loc[g.index, m].mean())
        row["diverged"] = int(g.stop_reason.astype(str).str.startswith("diverged").sum())
        row["stop_reasons"] = "; ".join(f"{p}: {r}" for p, r in g.stop_reason.items())
        rows.append(row)
    out = pd.DataFrame(rows)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_colwidth", 120)
    print(out.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "fixes.csv", index=False)
    out.to_csv(args.out / "summary.csv", index=False)
    write_json({**base_metadata(), "pairs": args.pairs, "size": args.size, "weights": args.weights,
                "variants": {k: dict(v) for k, v in VARIANTS.items()}}, args.out / "metadata.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
