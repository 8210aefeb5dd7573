#!/usr/bin/env python3
"""Quality against Luan et al.'s published results, with trained features, on held-out pairs.

For a list of pairs (default 21-60: pairs 1-20 are the tuning set) at a long side
``--size`` (default 256), runs each method with the pair's gold masks through the
run cache (``runs.run_many``: a rerun or a later session computes only what is
missing), scores every result and Luan et al.'s published image with
``photostyle_lib.metrics`` at the same size, and writes to ``--out``:

* ``quality.csv``: one row per (pair, method): photorealism (matting-Laplacian
  energy per value, lower is more photorealistic), structure (gradient SSIM,
  higher is better), style distance (per gold-mask region, Delta-E, lower is
  closer to the style), and the judge's two measures, which no method optimises
  (``metrics.load_judge``: HED's VGG-16, not the VGG-19 the methods optimise in):
  ``judge_gram`` (relative per-label Gram distance to the style, lower is closer)
  and ``edge_ssim`` (SSIM of HED edge maps with the content, higher is better);
  the run's stop reason and time;
* ``summary.csv``: per method, mean and 95% Student-t interval of each metric,
  the ratio of the mean to Luan et al.'s, and the pairs won against theirs;
* ``contact_sheet.jpg``: every pair as a row (content, style, ours ``full``,
  ``enhanced``, ``enhanced_detail`` and ``luan`` where run -- a blank cell where a
  method ran on fewer pairs --, Luan et al. published), titled with the weights
  that made it, in full colour (JPEG, quality 92);
* ``tradeoff.png``: structure (edge SSIM) against style (the judge's Gram
  distance), one point per pair and method and each method's mean: the field's
  usual trade-off plot, in the judge's measures;
* ``metadata.json``: the parameters, weights, git revision, cache keys.

Presets that differ from ``full`` only in the post-process (``no_postprocess``,
``enhanced``, ``enhanced_detail``) are scored on the ``full`` run's raw image with their own
post-process applied, when ``full`` is asked for too (the post-process runs after
the optimisation: see :class:`PostprocessedRecord`).

Methods: the engine's presets (``full``, ``enhanced``, ``enhanced_detail``, ``no_postprocess``,
``gatys``, ``luan`` by default), the colour transfers ``reinhard`` and ``pitie_idt``, and
``luan_published`` (always scored: the reference). ``luan`` (two stages of 1000
evaluations to relu5_1) costs about 10x ``full`` (508-684 s a pair at 256 px
on two CPU cores, against about 60 s); ``--methods`` leaves it out on a CPU.

Target (issue "the paper's model as its authors' final code, judged fairly"):
on pairs 21-60 at 256 px with the original VGG-19, ``full`` within 1.5x of Luan
et al.'s published results in colour distance and in the judge's Gram distance,
structure >= theirs, photorealism energy <= 1.5x theirs, no divergence stop;
``enhanced`` and ``enhanced_detail`` (this project's models) better than theirs on all five measures.
``--luan-pairs`` runs ``luan`` on a subset (it costs 10x the others).

    python studies/quality.py [--pairs 21-60] [--size 256] [--weights imagenet-vgg19-caffe]
        [--methods full no_postprocess gatys luan reinhard pitie_idt] [--luan-pairs 21-30]
        [--line-search adaptive|interpolate|halve] [--out results/quality]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import math
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from photostyle_lib.experiments import sweep
from photostyle_lib.experiments.sweep import QUALITY_DIRECTIONS
from photostyle_lib.io.data import HELD_OUT_PAIRS, data_dir as resolve_data_dir, parse_pairs
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.metadata import base_metadata, write_json
from photostyle_lib.engine.lbfgs import LINE_SEARCHES
from photostyle_lib.engine.presets import PRESETS, get_preset
from photostyle_lib.engine.config import same_optimisation
from photostyle_lib.experiments.runs import add_cache_arguments, METHODS, RunRecord, RunSpec, run_many
from photostyle_lib.engine.postprocess_chain import apply_postprocess

DEFAULT_METHODS = ("full", "enhanced", "enhanced_detail", "no_postprocess", "gatys", "luan", "reinhard", "pitie_idt")
REFERENCE = "luan_published"
#: metric -> +1 if higher is better, -1 if lower is better
DIRECTIONS = QUALITY_DIRECTIONS
#: The judge of ``judge_gram`` and ``edge_ssim`` (a network no method optimises).
JUDGE = "hed-vgg16"


def shares_optimisation(method: str, base: str = "full", weights: str = "imagenet-vgg19-caffe") -> bool:
    """True when preset ``method`` is preset ``base`` but for the post-process (with these weights;
    ``config.same_optimisation``)."""
    if method not in PRESETS or base not in PRESETS:
        return False
    return same_optimisation(get_preset(method, weights=weights), get_preset(base, weights=weights))


class PostprocessedRecord(RunRecord):
    """A finished ``full`` run read as another preset that differs from it only in the post-process.

    The post-process runs after the optimisation, so the ``full`` run's ``raw.png`` (8-bit) with the
    other preset's post-process applied (``postprocess_chain.apply_postprocess``, the run's own masks and
    style) *is* that preset's result, up to the 8-bit rounding of the raw image: scoring it saves one
    engine run per pair and method (``no_postprocess``: the raw image itself)."""

    def image(self):
        cfg = self.spec.config("cpu")
        raw = self.raw_image()
        if cfg.postprocess == "none":
            return raw
        return apply_postprocess(raw, self.content(), cfg, style=self.style(), masks=self.masks())


def as_postprocessed(record: RunRecord, method: str) -> PostprocessedRecord:
    return PostprocessedRecord(dataclasses.replace(record.spec, method=method), record.key, record.directory,
                               record.metadata)


def quality_specs(pairs: list[int], methods: list[str], *, size: int, weights: str,
                  iterations: int | None = None, line_search: str | None = None,
                  curvature_cosine: float | None = None, luan_pairs: list[int] | None = None) -> list[RunSpec]:
    """One RunSpec per (pair, method) with gold masks, plus Luan et al.'s published result per pair.

    ``luan_pairs`` (None: every pair) limits the ``luan`` method to those pairs.

    ``line_search`` and ``curvature_cosine`` (None: the presets') replace the projected L-BFGS's
    line search and curvature test of every method that uses that optimiser (docs/quality.md, "Line
    search", "Curvature test"); ``luan`` keeps its plain L-BFGS.
    """
    specs = []
    derived = derived_methods(methods, weights)
    for p in pairs:
        for m in methods:
            if m in derived:
                continue  # read from the full run (PostprocessedRecord)
            if m == "luan" and luan_pairs is not None and p not in luan_pairs:
                continue
            extra = {} if iterations is None else {"iterations": iterations}
            if m == "luan" and iterations is None:
                extra = {"iterations": 1000}  # per stage, as their code
            overrides = (("line_search", line_search), ("curvature_cosine", curvature_cosine))
            if m in PRESETS and PRESETS[m].optimizer == "projected_lbfgs":
                overrides = tuple((k, v) for k, v in overrides if v is not None)
                if overrides:
                    extra["overrides"] = overrides
            specs.append(RunSpec(p, m, masks="gold", size=size, weights=weights, **extra))
        specs.append(RunSpec(p, REFERENCE, size=size))
    return specs


def derived_methods(methods: list[str], weights: str) -> list[str]:
    """The methods scored from the ``full`` run (see :class:`PostprocessedRecord`)."""
    if "full" not in methods:
        return []
    return [m for m in methods if m != "full" and shares_optimisation(m, "full", weights)]


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per method: mean, 95% t-interval, ratio to Luan et al.'s mean, pairs won against theirs."""
    from scipy import stats

    ref = table[table.method == REFERENCE].set_index("pair_id")
    rows = []
    for method, grp in table.groupby("method", sort=False):
        row: dict = {"method": method, "pairs": int(grp.pair_id.nunique())}
        g = grp.set_index("pair_id")
        for metric, sign in DIRECTIONS.items():
            if metric not in g:
                continue
            v = g[metric].to_numpy(dtype=float)
            mean = float(np.mean(v))
            half = (float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
                    if len(v) > 1 else float("nan"))
            common = g.index.intersection(ref.index)
            won = int(((g.loc[common, metric] - ref.loc[common, metric]) * sign > 0).sum())
            row.update({f"{metric}_mean": mean, f"{metric}_ci95": half,
                        f"{metric}_vs_luan": mean / float(ref.loc[common, metric].mean()) if len(common) else float("nan"),
                        f"{metric}_won": f"{won}/{len(common)}"})
        if "stop_reason" in grp:
            row["diverged"] = int(grp.stop_reason.astype(str).str.startswith("diverged").sum())
        rows.append(row)
    return pd.DataFrame(rows)


#: Methods shown on the contact sheet beside those the target judges (``full``, ``enhanced``), when run.
SHEET_EXTRA = ("luan",)


def target_verdict(summary: pd.DataFrame, method: str = "full") -> dict[str, bool]:
    """The target for ``method`` against the published results (module docstring): ``full`` within
    1.5x of theirs; any other method (``enhanced``) better than theirs on every measure."""
    r = summary.set_index("method")
    if method not in r.index or REFERENCE not in r.index:
        return {}
    m, ref = r.loc[method], r.loc[REFERENCE]
    verdict = {}
    if method == "full":
        verdict = {"photorealism <= 1.5x Luan": bool(m.photorealism_mean <= 1.5 * ref.photorealism_mean),
                   "structure >= Luan": bool(m.structure_mean >= ref.structure_mean),
                   "style distance <= 1.5x Luan": bool(m.style_distance_mean <= 1.5 * ref.style_distance_mean)}
        if "judge_gram_mean" in r:
            verdict["judge Gram distance <= 1.5x Luan"] = bool(m.judge_gram_mean <= 1.5 * ref.judge_gram_mean)
    else:
        for metric, sign in DIRECTIONS.items():
            if f"{metric}_mean" in r:
                verdict[f"{metric} better than Luan"] = bool((m[f"{metric}_mean"] - ref[f"{metric}_mean"]) * sign > 0)
    verdict["no divergence stop"] = bool(m.get("diverged", 0) == 0)
    return verdict


def tradeoff_plot(table: pd.DataFrame, path: Path, *, title: str = "") -> None:
    """Edge SSIM (structure) against the judge's Gram distance (style), per pair (small) and method mean (large)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from photostyle_lib.io.images import write_file_atomically

    t = table.dropna(subset=["judge_gram", "edge_ssim"])
    if t.empty:
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    for i, (method, g) in enumerate(t.groupby("method", sort=False)):
        colour = f"C{i % 10}"
        ax.scatter(g.judge_gram, g.edge_ssim, s=8, alpha=0.35, color=colour)
        ax.scatter(g.judge_gram.mean(), g.edge_ssim.mean(), s=90, color=colour, edgecolor="black",
                   marker="*" if method == REFERENCE else "o", label=f"{method} ({g.pair_id.nunique()} pairs)")
    ax.set_xlabel("judge Gram distance to the style (HED VGG-16, relative; lower = more stylised)")
    ax.set_ylabel("edge SSIM with the content (HED edges; higher = structure kept)")
    ax.legend(fontsize=7, loc="best")
    ax.set_title("\n".join(textwrap.wrap(title, 90)), fontsize=7)
    fig.tight_layout()
    write_file_atomically(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)


def contact_sheet(records: list[RunRecord], path: Path, *, methods: tuple[str, ...] | list[str] = ("full",),
                  title: str = "", width: int = 160) -> None:
    """Rows of (content, style, ours per method, Luan et al. published) per pair, as one full-colour JPEG
    (quality 92: no palette banding in skies, about 1 MB for 40 pairs; the scores come from the runs' own
    images, not from the sheet)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = {(r.spec.pair_id, r.spec.method): r for r in records}
    methods = [m for m in methods if any(k[1] == m for k in by)]
    # every pair with the first method and the reference; a method run on fewer pairs (luan) leaves its cell blank
    pairs = sorted({p for p, m in by if methods and (p, methods[0]) in by and (p, REFERENCE) in by})
    if not pairs:
        return
    cols = ("content", "style", *(f"ours ({m})" for m in methods), "Luan et al. (published)")
    n = len(cols)
    lines = textwrap.wrap(title, 95)
    top = 0.25 + 0.13 * len(lines)  # inches kept for the title (7 pt lines) above the column titles
    fig, axes = plt.subplots(len(pairs), n, figsize=(n * width / 100, len(pairs) * width * 0.7 / 100 + 0.4 + top),
                             squeeze=False, dpi=100)
    for i, p in enumerate(pairs):
        first, theirs = by[(p, methods[0])], by[(p, REFERENCE)]
        images = (first.content(), first.style(), *(by[(p, m)].image() if (p, m) in by else None for m in methods),
                  theirs.image())
        for j, im in enumerate(images):
            ax = axes[i, j]
            if im is None:
                ax.text(0.5, 0.5, "not run", ha="center", va="center", fontsize=7, transform=ax.transAxes)
            else:
                ax.imshow(im[0].permute(1, 2, 0).clamp(0, 1).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(cols[j], fontsize=7)
            if j == 0:
                ax.set_ylabel(f"pair {p}", fontsize=7)
    fig.suptitle("\n".join(lines), fontsize=7, color="red" if "stand-in" in title or "RANDOM" in title else "black",
                 y=1 - 0.1 / fig.get_figheight(), va="top")  # a fixed margin, not 2% of a tall sheet
    fig.tight_layout(rect=(0, 0, 1, 1 - top / fig.get_figheight()))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    from PIL import Image

    from photostyle_lib.io.images import write_file_atomically
    with Image.open(buffer) as im:
        sheet = im.convert("RGB")
    write_file_atomically(path, lambda f: sheet.save(f, format="JPEG", quality=92, optimize=True))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", default="21-60", help="ids, e.g. 21-60 or 21,25,30-33 (default 21-60: held out)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--weights", default="imagenet-vgg19-caffe")
    ap.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    ap.add_argument("--luan-pairs", default=None, help="run luan on these pairs only (e.g. 21-30; default: all)")
    ap.add_argument("--iterations", type=int, default=None, help="override every preset's evaluations (smoke runs)")
    ap.add_argument("--line-search", choices=LINE_SEARCHES, default=None,
                    help="the projected L-BFGS's line search for every method using it (default: the presets')")
    ap.add_argument("--curvature-cosine", type=float, default=None,
                    help="the projected L-BFGS's curvature test for every method using it, in [0, 1) "
                         "(0: the earlier engine's; default: the presets')")
    add_cache_arguments(ap, out=Path("results/quality"))
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    try:
        pairs = parse_pairs(args.pairs)
        luan_pairs = None if args.luan_pairs is None else parse_pairs(args.luan_pairs)
        if args.weights == JUDGE:
            raise PhotostyleError(f"--weights {JUDGE} is the judge's network; the judge must be a network no method "
                                  f"optimises: run on imagenet-vgg19-caffe (or imagenet)")
        bad = [m for m in args.methods if m not in METHODS or m == REFERENCE]
        if bad:
            raise PhotostyleError(f"unknown method(s) {bad}; choose from {', '.join(m for m in METHODS if m != REFERENCE)}")
        data_dir = resolve_data_dir(args.data)
        specs = quality_specs(pairs, list(args.methods), size=args.size, weights=args.weights,
                              iterations=args.iterations, line_search=args.line_search,
                              curvature_cosine=args.curvature_cosine, luan_pairs=luan_pairs)
        records = run_many(specs, cache_dir=args.cache, data_dir=data_dir, device=args.device,
                           progress=not args.no_progress)
        for m in derived_methods(list(args.methods), args.weights):
            records += [as_postprocessed(r, m) for r in records if r.spec.method == "full"]
        table = sweep.score_runs(records, data_dir=data_dir, include_content=False, progress=not args.no_progress,
                                 judge_weights=JUDGE)
    except PhotostyleError as exc:
        print(f"quality: {exc}", file=sys.stderr)
        return 2
    reasons = {r.key: r.metadata.get("stop_reason") for r in records}
    table["stop_reason"] = [reasons.get(k) for k in table.key]
    table = table.sort_values(["pair_id", "method"], kind="stable").reset_index(drop=True)
    summary = summarise(table)
    tuned = sorted(set(pairs) - set(HELD_OUT_PAIRS))
    weights_line = next((r.metadata.get("weights") for r in records if r.spec.method == "full"), args.weights)
    warning = next((r.metadata.get("weights_warning") for r in records if r.metadata.get("weights_warning")), None)
    title = (f"{args.size} px, gold masks, weights: {weights_line}" + (f" -- {warning}" if warning else "")
             + (f" -- includes TUNING pairs {tuned}" if tuned else ""))
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "quality.csv", index=False)
    summary.to_csv(args.out / "summary.csv", index=False)
    judged = [m for m in ("full", "enhanced", "enhanced_detail") if m in args.methods] or [args.methods[0]]
    shown = judged + [m for m in SHEET_EXTRA if m in args.methods and m not in judged]
    contact_sheet(records, args.out / "contact_sheet.jpg", methods=shown, title=title)
    tradeoff_plot(table, args.out / "tradeoff.png", title=title)
    verdict = {f"{m}: {k}": v for m in judged for k, v in target_verdict(summary, m).items()}
    write_json({
        **base_metadata(), "pairs": pairs, "size": args.size, "weights": args.weights, "weights_label": weights_line,
        "weights_warning": warning, "methods": list(args.methods), "tuning_pairs_included": tuned,
        "judge": JUDGE, "judge_note": str(table.judge_note.iloc[0]) if "judge_note" in table else None,
        "luan_pairs": luan_pairs,
        "target": verdict, "runs": {f"{r.spec.pair_id}:{r.spec.method}": r.key for r in records}},
        args.out / "metadata.json")
    pd.set_option("display.width", 250)
    cols = ["method", "pairs"] + [f"{m}_{k}" for m in DIRECTIONS for k in ("mean", "vs_luan", "won")]
    cols += ["diverged"] if "diverged" in summary else []
    print(title)
    print(summary[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for name, ok in verdict.items():
        print(f"target {name}: {'met' if ok else 'NOT met'}")
    print(f"written: {args.out}/quality.csv, summary.csv, contact_sheet.jpg, tradeoff.png, metadata.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
