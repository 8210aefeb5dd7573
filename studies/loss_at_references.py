#!/usr/bin/env python3
"""Where the paper's loss puts Luan et al.'s published images: eq. (10), layer by layer, at four images.

For every pair, the ``full`` preset runs through the run cache (gold masks), and the
objective it minimised -- its network, loss weights, masks and style normalisation,
rebuilt from the run's stored inputs -- is evaluated at four images of the content's
size:

* ``content``: the run's starting image;
* ``full_raw``: ``full``'s optimum, before the recursive-filter post-process (eq. 9);
* ``full``: its result, after eq. (9);
* ``luan_published``: Luan et al.'s published image, resized to the same size.

Each row gives the weighted content (eq. 2), similarity (eq. 8) and per-layer style
(eqs. 6-7) terms, their total, and the image's per-region style distance
(``metrics.style_distance``, Delta-E). If the published image's total is far above
``full_raw``'s, the loss does not lead towards it: minimising eq. (10) harder cannot
close a gap measured against it. The script measures and chooses nothing; its default
pairs are tuning pairs (1-20).

    python studies/loss_at_references.py [--pairs 1 8 16] [--weights hed-vgg16] [--size 256]
        [--iterations 500] [--out results/loss_at_references_hed-vgg16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

from photostyle_lib import metrics
from photostyle_lib.engine.extractor import run_extractor
from photostyle_lib.engine.objective import build_objective
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.experiments.runs import add_cache_arguments, RunRecord, RunSpec, run_many
from photostyle_lib.io.data import data_dir as resolve_data_dir
from photostyle_lib.io.images import resize_tensor
from photostyle_lib.io.metadata import base_metadata, write_json

IMAGES = ("content", "full_raw", "full", "luan_published")


def pair_rows(full: RunRecord, published: RunRecord) -> list[dict]:
    """One row per image of :data:`IMAGES`: the weighted terms of eq. (10) and the style distance.

    Parameters
    ----------
    full : the pair's cached ``full`` run (its inputs, masks, raw and final images).
    published : the pair's ``luan_published`` record (Luan et al.'s image at the run's size).

    Returns
    -------
    list of dict: ``pair_id, image, total, content, similarity, style, style_<layer>...,
    style_distance``; terms in the loss's units, the style distance in Delta-E.
    """
    cfg = full.spec.config("cpu")
    content, style, masks = full.content(), full.style(), full.masks()
    vgg = run_extractor(None, cfg.all_layers(), cfg.weights, cfg.seed, cfg.weights_convention, torch.device("cpu"))
    objective = build_objective(content, style, cfg, masks, vgg)
    h, w = content.shape[-2:]
    images = {"content": content, "full_raw": full.raw_image(), "full": full.image(),
              "luan_published": resize_tensor(published.image(), (h, w))}
    rows = []
    for name, x in images.items():
        terms = objective.layer_terms_at(x)
        row = {"pair_id": full.spec.pair_id, "image": name,
               "content": sum(t["content"] for t in terms.values()),
               "similarity": sum(t["similarity"] for t in terms.values()),
               "style": sum(t["style"] for t in terms.values())}
        row["total"] = row["content"] + row["similarity"] + row["style"]
        row.update({f"style_{n}": terms[n]["style"] for n in cfg.style_layers})
        row["style_distance"] = metrics.style_distance(x, style, masks)
        rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, nargs="+", default=[1, 8, 16])
    ap.add_argument("--weights", default="hed-vgg16")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=500)
    add_cache_arguments(ap, out=None)
    args = ap.parse_args(argv)
    try:
        data_dir = resolve_data_dir(args.data)
        specs = [RunSpec(p, "full", masks="gold", size=args.size, iterations=args.iterations, weights=args.weights)
                 for p in args.pairs] + [RunSpec(p, "luan_published", size=args.size) for p in args.pairs]
        records = run_many(specs, cache_dir=args.cache, data_dir=data_dir, progress=not args.no_progress)
        full = {r.spec.pair_id: r for r in records if r.spec.method == "full"}
        published = {r.spec.pair_id: r for r in records if r.spec.method == "luan_published"}
        rows = [row for p in args.pairs for row in pair_rows(full[p], published[p])]
    except PhotostyleError as exc:
        print(f"loss_at_references: {exc}", file=sys.stderr)
        return 2
    table = pd.DataFrame(rows)
    ratio = table.pivot(index="pair_id", columns="image", values="total")
    warning = next((r.weights_warning for r in full.values() if r.weights_warning), None)
    if warning:
        print(f"weights: {warning}")
    pd.set_option("display.width", 220)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\nLuan et al.'s published image under eq. (10), times full's raw optimum: "
          + ", ".join(f"pair {p}: {ratio.loc[p, 'luan_published'] / ratio.loc[p, 'full_raw']:.3g}x"
                      for p in ratio.index))
    out = args.out or Path("results") / f"loss_at_references_{args.weights}"
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "loss_at_references.csv.tmp"
    table.to_csv(tmp, index=False)
    tmp.replace(out / "loss_at_references.csv")
    write_json({**base_metadata(), "weights": args.weights, "weights_warning": warning, "pairs": args.pairs,
                "size": args.size, "iterations": args.iterations,
                "runs": {str(p): {"full": r.key, "luan_published": published[p].key} for p, r in full.items()},
                "stop_reasons": {str(p): r.metadata.get("stop_reason") for p, r in full.items()}},
               out / "metadata.json")
    print(f"written: {out}/loss_at_references.csv, metadata.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
