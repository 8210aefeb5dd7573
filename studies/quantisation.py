#!/usr/bin/env python3
"""What 8-bit quantisation does to a VGG: measured on a network whose unquantised weights we have.

The original VGG-19 (``weights="imagenet-vgg19-caffe"``) comes with each layer's
kernel quantised to 256 values by 1-D k-means, and its unquantised weights are not
available offline. HED's VGG-16 (``hed-vgg16``) is, so this benchmark quantises it
the same way (``original_vgg19.quantise_kmeans``, 256 values per layer, biases
kept) and reports:

* per layer, the cosine between the quantised and unquantised networks' features
  (flattened maps, mean over the tuning pairs' content and style images);
* the change in a ``full`` run's scores (photorealism, structure, colour distance,
  the judge's Gram distance and edge SSIM) on tuning pairs, quantised against
  unquantised, through the run cache.

Both networks are written as state-dict files with the Caffe convention, so they
differ in the quantisation only. Tuning pairs only (1-20).

    python studies/quantisation.py [--pairs 1 8] [--size 256] [--out results/quantisation]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.experiments import sweep
from photostyle_lib.experiments.runs import add_cache_arguments, RunSpec, run_many
from photostyle_lib.features import original_vgg19, vgg
from photostyle_lib.io.data import data_dir as resolve_data_dir, tuning_pairs_only
from photostyle_lib.io.data import get_pair
from photostyle_lib.io.images import load_image
from photostyle_lib.io.metadata import base_metadata, write_json

LAYERS = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv4_1", "conv5_1")


def quantised_state(state: dict[str, torch.Tensor], levels: int = 256) -> dict[str, torch.Tensor]:
    """Every convolution kernel of a features state dict quantised to ``levels`` values (biases kept)."""
    out = {}
    for k, v in state.items():
        if k.endswith("weight"):
            codes, table = original_vgg19.quantise_kmeans(v.numpy(), levels)
            out[k] = torch.from_numpy(table[codes.astype(np.int64)])
        else:
            out[k] = v.clone()
    return out


def feature_cosines(a: vgg.VGGFeatures, b: vgg.VGGFeatures, images: list[torch.Tensor]) -> dict[str, float]:
    """Mean over ``images`` of the cosine between the two networks' flattened features, per layer."""
    sums = {n: 0.0 for n in a.layers}
    with torch.no_grad():
        for im in images:
            fa, fb = a(im), b(im)
            for n in a.layers:
                x, y = fa[n].flatten().double(), fb[n].flatten().double()
                sums[n] += float(x @ y / (x.norm() * y.norm()))
    return {n: v / len(images) for n, v in sums.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=500)
    add_cache_arguments(ap, out=Path("results/quantisation"))
    args = ap.parse_args(argv)
    try:
        tuning_pairs_only(args.pairs)
        data_dir = resolve_data_dir(args.data)
        args.out.mkdir(parents=True, exist_ok=True)
        plain = vgg.read_keras_vgg16(vgg.hed_weights_path())
        files = {"unquantised": args.out / "hed_vgg16_caffe.pth", "quantised": args.out / "hed_vgg16_caffe_q8.pth"}
        for name, sd in (("unquantised", plain), ("quantised", quantised_state(plain))):
            if not files[name].exists():
                torch.save({"convention": "caffe", "state_dict": sd}, files[name])
        nets = {k: vgg.VGGFeatures(str(p), LAYERS) for k, p in files.items()}
        images = []
        for p in args.pairs:
            pair = get_pair(p, data_dir)
            images += [load_image(pair.content, args.size), load_image(pair.style, args.size)]
        cos = feature_cosines(nets["unquantised"], nets["quantised"], images)
        specs = [RunSpec(p, "full", masks="gold", size=args.size, iterations=args.iterations, weights=str(files[k]))
                 for p in args.pairs for k in ("unquantised", "quantised")]
        records = run_many(specs, cache_dir=args.cache, data_dir=data_dir, progress=not args.no_progress)
        table = sweep.score_runs(records, data_dir=data_dir, include_content=False, progress=not args.no_progress,
                                 judge_weights="hed-vgg16")
    except PhotostyleError as exc:
        print(f"quantisation: {exc}", file=sys.stderr)
        return 2
    table["network"] = ["quantised" if "q8" in str(w) else "unquantised" for w in table.weights]
    measures = ["photorealism", "structure", "style_distance", "judge_gram", "edge_ssim"]
    wide = table.pivot(index="pair_id", columns="network", values=measures)
    change = pd.DataFrame({m: wide[m]["quantised"] / wide[m]["unquantised"] - 1 for m in measures})
    cos_table = pd.DataFrame({"layer": list(cos), "cosine": list(cos.values())})
    cos_table.to_csv(args.out / "cosines.csv", index=False)
    table.to_csv(args.out / "runs.csv", index=False)
    change.to_csv(args.out / "change.csv")
    write_json({**base_metadata(), "pairs": args.pairs, "size": args.size, "iterations": args.iterations,
                "network": "hed-vgg16 as a Caffe-convention state dict, quantised by original_vgg19.quantise_kmeans",
                "runs": {f"{r.spec.pair_id}:{Path(r.spec.weights).name}": r.key for r in records}},
               args.out / "metadata.json")
    print("feature cosine, quantised vs unquantised hed-vgg16:")
    print(cos_table.to_string(index=False, float_format=lambda v: f"{v:.5f}"))
    print("full run's scores, quantised / unquantised - 1, per tuning pair:")
    print(change.to_string(float_format=lambda v: f"{v:+.2%}"))
    print(f"written: {args.out}/cosines.csv, change.csv, runs.csv, metadata.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
