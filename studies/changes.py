#!/usr/bin/env python3
"""What each change of 2026-12-05 moved: network, masked-style normalisation, loss weights, model.

Steps (cumulative; each a ``full`` run with gold masks, or a post-process of one):

1. ``hed-vgg16, joint Gram``: the project's ``full`` until then -- the VGG-16 stand-in,
   the authors' pre-fix joint (L*C)^2 Gram (``style_normalization="authors_joint"``),
   beta 3e6 (its network weight then);
2. ``+ original VGG-19``: the same loss at the paper's beta 1e7 on ``imagenet-vgg19-caffe``;
3. ``+ final loss``: the authors' final per-label Gram (``"authors"``) at the paper's 1e7;
4. ``+ tuned beta``: the final loss at ``--beta`` (the sweep's choice, ``studies/sweep_weights.py``);
5. ``+ enhanced``: step 4's optimisation with the ``enhanced`` preset's post-process.

Scored with every measure (``metrics``; the judge's ``judge_gram`` and ``edge_ssim``
in HED's VGG-16) as a ratio to Luan et al.'s published results on the same pairs.
Tuning pairs only (default 1, 8, 16): this attributes changes, it is not the target.

    python studies/changes.py --beta 1e6 [--pairs 1 8 16] [--size 256] [--out results/changes]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import pandas as pd

from photostyle_lib.engine.postprocess_chain import apply_postprocess
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.experiments import sweep
from photostyle_lib.experiments.runs import add_cache_arguments, RunRecord, RunSpec, run_many
from photostyle_lib.io.data import data_dir as resolve_data_dir, tuning_pairs_only
from photostyle_lib.io.metadata import base_metadata, write_json

MEASURES = ("photorealism", "structure", "style_distance", "judge_gram", "edge_ssim")
ORIGINAL = "imagenet-vgg19-caffe"


def steps(beta: float) -> dict[str, tuple[str, tuple[tuple[str, object], ...]]]:
    """Step name -> (weights, overrides of ``full``); the ``enhanced`` step reuses the last run."""
    return {
        "hed-vgg16, joint Gram": ("hed-vgg16", (("similarity_weight", 3.0), ("style_weight", 3e6),
                                                ("style_normalization", "authors_joint"))),
        "+ original VGG-19": (ORIGINAL, (("similarity_weight", 3.0), ("style_weight", 1e7),
                                         ("style_normalization", "authors_joint"))),
        "+ final loss": (ORIGINAL, (("similarity_weight", 3.0), ("style_weight", 1e7))),
        "+ tuned beta": (ORIGINAL, (("similarity_weight", 3.0), ("style_weight", float(beta)))),
    }


class _Enhanced(RunRecord):
    """A ``full`` run read with the ``enhanced`` preset's post-process (it differs only there)."""

    def image(self):
        cfg = dataclasses.replace(self.spec, method="enhanced").config("cpu")
        return apply_postprocess(self.raw_image(), self.content(), cfg, style=self.style(), masks=self.masks())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--beta", type=float, required=True, help="the tuned style weight (studies/sweep_weights.py's choice)")
    ap.add_argument("--pairs", type=int, nargs="+", default=[1, 8, 16])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=500)
    add_cache_arguments(ap, out=Path("results/changes"))
    args = ap.parse_args(argv)
    try:
        tuning_pairs_only(args.pairs)
        data_dir = resolve_data_dir(args.data)
        named = steps(args.beta)
        specs, step_specs = [], {name: [] for name in named}
        for p in args.pairs:
            for name, (weights, over) in named.items():
                s = RunSpec(p, "full", masks="gold", size=args.size, iterations=args.iterations, weights=weights,
                            overrides=over)
                specs.append(s)
                step_specs[name].append(s)  # two steps may share one run (the tuned beta = the paper's)
            specs.append(RunSpec(p, "luan_published", size=args.size))
        records = run_many(specs, cache_dir=args.cache, data_dir=data_dir, progress=not args.no_progress)
        key_of = {r.spec: r.key for r in records}
        tuned = [r for r in records if r.spec in step_specs["+ tuned beta"]]
        enhanced = [_Enhanced(r.spec, r.key, r.directory, r.metadata) for r in tuned]
        table = sweep.score_runs(records, data_dir=data_dir, include_content=False, progress=not args.no_progress,
                                 judge_weights="hed-vgg16")
        extra = sweep.score_runs(enhanced, data_dir=data_dir, include_content=False, progress=not args.no_progress,
                                 judge_weights="hed-vgg16")
    except PhotostyleError as exc:
        print(f"changes: {exc}", file=sys.stderr)
        return 2
    published = table[table.method == "luan_published"].assign(step="luan_published")
    parts = [published] + [table[table.key.isin([key_of[x] for x in step_specs[name]]) & (table.method == "full")]
                           .assign(step=name) for name in named]
    table = pd.concat(parts + [extra.assign(step="+ enhanced")], ignore_index=True)
    ref = table[table.step == "luan_published"].set_index("pair_id")
    rows = []
    for name in [*named, "+ enhanced"]:
        g = table[table.step == name].set_index("pair_id")
        rows.append({"step": name, **{f"{m}_vs_luan": float(g[m].mean() / ref.loc[g.index, m].mean())
                                      for m in MEASURES}})
    out = pd.DataFrame(rows)
    pd.set_option("display.width", 250)
    print(out.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "changes.csv", index=False)
    out.to_csv(args.out / "summary.csv", index=False)
    write_json({**base_metadata(), "pairs": args.pairs, "size": args.size, "beta": args.beta, "judge": "hed-vgg16",
                "steps": {k: {"weights": w, "overrides": dict(o)} for k, (w, o) in named.items()}},
               args.out / "metadata.json")
    print(f"written: {args.out}/changes.csv, summary.csv, metadata.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
