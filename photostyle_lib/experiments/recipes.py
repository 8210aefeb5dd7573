"""The paper's experiments (section 5) as library functions, and the notebook runner.

Two halves, used by the notebooks in ``notebooks/`` (thin drivers) and by tests:

**Recipes.** :class:`Settings` holds a notebook's parameters (data, pairs,
size, iterations, weights, device, loss weights, theta_s, output and cache
folders). Each ``figureN(settings)`` asks :func:`photostyle_lib.experiments.runs.run_cached`
for the runs it needs -- so a run is computed once and shared by every
figure, notebook and profile that needs it -- and returns a
:class:`FigureOutput` (a matplotlib figure, its panels, the runs used).
:func:`save_outputs` writes a notebook's figures, their panels and a
``metadata.json`` into its output folder.

**Runner.** ``python -m photostyle_lib.experiments.recipes run --profile ci|paper``
executes every ``notebooks/NN_*.ipynb`` with papermill on the Jupyter kernel
``photostyle``, injecting the profile's parameters (:data:`PROFILES`), and
writes ``results/<profile>/<notebook>/``: the executed notebook, the figure
PNGs, ``panels/*.png`` and ``metadata.json``. Runs are cached in
``results/cache`` (shared across notebooks and profiles), so re-running the
suite, or an interrupted suite, computes only what is missing. A failing cell
ends the suite with one :class:`~photostyle_lib.errors.PhotostyleError`
naming the notebook, the cell and its error; the CLI prints it as one line
and exits with status 2.

Pair ids: the paper does not say which examples of Luan et al.'s set its
figures show; the ``paper`` profile picks pairs that match the figures'
descriptions (e.g. pair 16, a perfume bottle styled by a fire, for the
"fire onto a glass bottle" example of Figure 5; pair 8, stone figures, for
Figure 6's second example). They are data in :data:`PROFILES`, not claims
about the paper's choice.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from photostyle_lib.plots import figures, mask_views
from photostyle_lib.photoreal import postprocess
from photostyle_lib.checks import check_choice, check_int, check_number
from photostyle_lib.io.images import as_image_array
from photostyle_lib.io.data import PROJECT_ROOT, data_dir as resolve_data_dir
from photostyle_lib.errors import OneLineParser, PhotostyleError, require_extra
from photostyle_lib.plots.figures import Grid, Panel
from photostyle_lib.semantic.cut import DEFAULT_THETA_S, check_theta_s
from photostyle_lib.semantic.masks import SemanticMasks
from photostyle_lib.semantic.request import MASK_MODES
from photostyle_lib.io.metadata import base_metadata, write_json
from photostyle_lib.engine.presets import ABLATION, PRESETS
from photostyle_lib.experiments.runs import MASK_OVERRIDES, RunRecord, RunSpec, run_many

# --------------------------------------------------------------------------- settings and runs

#: Where notebooks live and where results go by default.
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
RESULTS_DIR = PROJECT_ROOT / "results"
#: The Jupyter kernel notebooks run on: the environment that has this project installed.
KERNEL_NAME = "photostyle"
KERNEL_DISPLAY_NAME = "Python (photostyle)"

#: Presets of the paper's own model, to which the loss-weight parameters (alpha, beta,
#: gamma) and mask_downsample apply. Gatys et al. and Luan et al. keep their own settings.
OUR_MODEL = tuple(ABLATION)
#: Settings that do not change the runs' results (never part of the spec).
_NOT_IN_SPEC = ("iterations", "weights", "seed", "device")


@dataclass(frozen=True)
class Settings:
    """A notebook's parameters: what runs its figures use and where results go.

    Attributes:
        notebook: the notebook's name ("01_ablation"); names the output folder.
        profile: the profile the parameters come from ("ci", "paper", or "custom").
        data_dir: the Luan et al. set (None: ``$PHOTOSTYLE_DATA`` or data/luan2017).
        output_dir: where figures, panels and metadata go (None:
            ``results/<profile>/<notebook>``). Relative paths are relative to the project root.
        cache_dir: the run cache shared by all notebooks (None: ``results/cache``).
        pair_ids: the examples (rows) of the notebook's main figure.
        size: long side of every image, pixels (the paper: 700).
        iterations: loss evaluations per run (the paper: 500).
        weights: VGG weights (vgg.NAMED_WEIGHTS or a file): "imagenet" (the paper's
            VGG-19), "hed-vgg16" (the trained VGG-16 stand-in; the ci profile), "auto",
            "random" (unit tests and smoke runs only), ...
        segmenter: ADE20K segmenter for hard / soft masks: None (the default
            checkpoint), "paper-scales" (the default, the authors' four input scales: the paper profile),
            "random-tiny" (CI) or a checkpoint (segmenter.segmenter_from_name).
        device: "auto", "cpu", "cuda", ...
        theta_s: soft-mask cutoff, in (0, 1] (the authors' code: 0.2); goes to the soft runs'
            mask requests (RunSpec.mask_request), checked there.
        mask_downsample: how masks follow the network's pooling, "max" (the
            authors' code) or "avg"; applies to our model's presets.
        alpha, beta, gamma: content, style and similarity weights for our
            model's presets (None: the presets' own, the paper's 1, 1e7, 3).
        seed: seeds the engine and IDT.
        progress: show progress bars (tqdm.auto).
    """

    notebook: str
    profile: str = "custom"
    data_dir: str | None = None
    output_dir: str | None = None
    cache_dir: str | None = None
    pair_ids: tuple[int, ...] = (1,)
    size: int = 700
    iterations: int = 500
    weights: str = "imagenet"
    segmenter: str | None = None
    device: str = "auto"
    theta_s: float = 0.2
    mask_downsample: str = "max"
    alpha: float | None = None
    beta: float | None = None
    gamma: float | None = None
    seed: int = 0
    progress: bool = True
    started: float = field(default_factory=time.time, compare=False, repr=False)

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        figures.file_name(self.notebook)
        figures.file_name(self.profile)
        if isinstance(self.pair_ids, (int, np.integer)):
            set_("pair_ids", (self.pair_ids,))
        ids = tuple(check_int("pair id", p, low=0) for p in self.pair_ids)
        if not ids:
            raise PhotostyleError("pair_ids is empty; give at least one example id (1-60)")
        set_("pair_ids", ids)
        set_("size", check_int("size", self.size, low=16))
        set_("iterations", check_int("iterations", self.iterations, low=1))
        set_("theta_s", check_theta_s(self.theta_s))  # the mask request's check, early: before any run
        check_choice("mask_downsample", self.mask_downsample, ("max", "avg"))
        for name in ("alpha", "beta", "gamma"):
            if getattr(self, name) is not None:
                set_(name, check_number(name, getattr(self, name), low=0))
        set_("seed", check_int("seed", self.seed, low=0))
        if not isinstance(self.weights, str) or not self.weights:
            raise PhotostyleError(f"weights must be 'imagenet', 'hed-vgg16', 'auto', 'random' or a file path, "
                                  f"got {self.weights!r}")
        set_("data_dir", str(resolve_data_dir(self.data_dir)))
        set_("output_dir", str(_project_path(self.output_dir, RESULTS_DIR / self.profile / self.notebook)))
        set_("cache_dir", str(_project_path(self.cache_dir, RESULTS_DIR / "cache")))

    @property
    def out(self) -> Path:
        return Path(self.output_dir)

    @property
    def cache(self) -> Path:
        return Path(self.cache_dir)

    @property
    def random_weights(self) -> bool:
        """True when the VGG weights are random: results are smoke tests."""
        return self.weights.startswith("random")

    @property
    def random_segmenter(self) -> bool:
        return str(self.segmenter).startswith("random")

    @property
    def weights_warning(self) -> str | None:
        """The banner these settings' runs will carry, as far as the settings tell (before any run).

        Random VGG or segmenter weights: the random banner; ``"hed-vgg16"``:
        the stand-in's. ``"auto"`` and files: None here -- what they resolve to
        is known from the runs (RunRecord.weights_warning).
        """
        if self.random_weights or self.random_segmenter:
            return figures.RANDOM_WEIGHTS_BANNER
        return figures.STAND_IN_BANNER if self.weights == "hed-vgg16" else None

    def parameters(self) -> dict[str, Any]:
        """The settings as JSON-ready parameters (for metadata)."""
        d = dataclasses.asdict(self)
        d.pop("started")
        d["pair_ids"] = list(self.pair_ids)
        return d

    def spec(self, pair_id: int, method: str, masks: str | None = None) -> RunSpec:
        """The cached run of ``method`` on ``pair_id`` under these settings, in canonical form.

        ``masks``: "gold", "hard", "soft" or "none" for presets that use masks
        (None: the preset's own). Loss weights and mask_downsample apply to our
        model's presets (:data:`OUR_MODEL`), theta_s to runs with soft masks.
        """
        overrides: dict[str, Any] = {}
        if method in PRESETS:
            cfg = RunSpec(pair_id, method, masks).config()
            if method in OUR_MODEL:
                for name, fld in (("alpha", "content_weight"), ("beta", "style_weight"),
                                  ("gamma", "similarity_weight")):
                    if getattr(self, name) is not None:
                        overrides[fld] = getattr(self, name)
                if cfg.uses_masks:
                    overrides["mask_downsample"] = self.mask_downsample
            if cfg.segmentation == "soft":
                overrides["theta_s"] = self.theta_s
        spec = RunSpec(pair_id, method, masks=masks, size=self.size, iterations=self.iterations,
                       weights=self.weights, segmenter=self.segmenter, overrides=tuple(overrides.items()),
                       seed=self.seed)
        return canonical_spec(spec)

    def run(self, specs: Sequence[RunSpec]) -> list[RunRecord]:
        """The records of ``specs`` (cached, computed when missing), in order."""
        unique = list(dict.fromkeys(specs))
        records = run_many(unique, cache_dir=self.cache, data_dir=self.data_dir, device=self.device,
                           progress=self.progress)
        by_spec = dict(zip(unique, records))
        return [by_spec[s] for s in specs]


def _project_path(value: str | None, default: Path) -> Path:
    if value is None or str(value) == "":
        return default
    p = Path(value).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p


def canonical_spec(spec: RunSpec) -> RunSpec:
    """The spec computing the same thing as ``spec``, written with the fewest overrides.

    A run's cache key is the hash of its spec, so two specs for the same
    configuration (``full`` with ``postprocess="none"`` and ``no_postprocess``;
    ``full`` with ``theta_s=0.2``, the default, and plain ``full``) would be
    computed twice. Engine specs are rewritten as the preset (in
    :data:`PRESETS` order) whose configuration needs the fewest overrides --
    checked by comparing the TransferConfigs -- with ``masks`` set only when it
    differs from the preset's own. Colour transfer and published results
    depend on neither iterations, weights, segmenter nor masks: those are
    reset (``iterations=1``, ``weights="none"``), and the seed is kept for IDT only.
    """
    if not spec.uses_engine:
        return dataclasses.replace(spec, masks=None, iterations=1, weights="none", segmenter=None,
                                   overrides=(), seed=spec.seed if spec.method == "pitie_idt" else 0)
    target = spec.config()
    # theta_s goes to the masks, not the config: carried over as it is (RunSpec keeps it only where it acts),
    # left out at its default
    mask_overrides = tuple((k, v) for k, v in spec.overrides if k in MASK_OVERRIDES
                           and not (k == "theta_s" and v == DEFAULT_THETA_S))
    spec = dataclasses.replace(spec, overrides=tuple((k, v) for k, v in spec.overrides if k not in MASK_OVERRIDES)
                               + mask_overrides)
    best, best_cost = spec, len(spec.overrides) + (spec.masks is not None) + 0.5
    for name in PRESETS:
        base = RunSpec(spec.pair_id, name, weights=spec.weights).config()  # the network's preset weights
        diff = {f.name: getattr(target, f.name) for f in dataclasses.fields(target)
                if f.name not in _NOT_IN_SPEC and getattr(target, f.name) != getattr(base, f.name)}
        masks = None
        if "segmentation" in diff and base.uses_masks and diff["segmentation"] in MASK_MODES:
            masks = diff.pop("segmentation")
        try:
            cand = dataclasses.replace(spec, method=name, masks=masks, overrides=tuple(diff.items()) + mask_overrides)
        except PhotostyleError:
            continue
        cost = len(cand.overrides) + (masks is not None)
        if cost < best_cost and cand.config() == target:
            best, best_cost = cand, cost
    # Segmenter choice matters only for hard and soft masks.
    if best.mask_mode() not in ("hard", "soft") and best.segmenter is not None:
        best = dataclasses.replace(best, segmenter=None)
    return best


# --------------------------------------------------------------------------- figure outputs


@dataclass(frozen=True, eq=False)
class FigureOutput:
    """One figure of a notebook: what is drawn, from which runs.

    Attributes:
        name: file stem ("figure4").
        figure: the matplotlib Figure (built without pyplot).
        panels: every image of the figure, saved to ``panels/`` by :func:`save_outputs`.
        records: the cached runs the figure uses (their keys go to the metadata).
        weights_warning: the runs' weights banner (images.merge_warnings: random
            weights first, then the stand-in VGG's), or None.
        grid: the Grid drawn (None for mask views, whose axes include colour bars).
        caption: what the figure shows (the paper's caption, and our choices).
        table: optional numbers shown with the figure, saved as ``<name>.csv``.
    """

    name: str
    figure: Figure
    panels: tuple[Panel, ...]
    records: tuple[RunRecord, ...]
    weights_warning: str | None
    grid: Grid | None = None
    caption: str = ""
    table: pd.DataFrame | None = None

    def __repr__(self) -> str:
        return (f"FigureOutput(name={self.name!r}, shape={self.shape}, panels={len(self.panels)}, "
                f"runs={[r.key for r in self.records]}, weights_warning={self.weights_warning!r})")

    @property
    def random_weights(self) -> bool:
        """True when a run of the figure used random weights (VGG or segmenter)."""
        return self.weights_warning == figures.RANDOM_WEIGHTS_BANNER

    @property
    def shape(self) -> tuple[int, int] | None:
        """(rows, columns) of the grid; None for mask views."""
        return None if self.grid is None else self.grid.shape

    def _repr_png_(self) -> bytes:
        return figures.figure_png(self.figure)


def grid_output(grid: Grid, records: Iterable[RunRecord], caption: str,
                table: pd.DataFrame | None = None) -> FigureOutput:
    """A FigureOutput drawing ``grid`` (figures.grid_figure), with the runs it came from."""
    records = tuple({r.key: r for r in records}.values())
    return FigureOutput(grid.name, figures.grid_figure(grid), tuple(grid.panels), records, grid.weights_warning,
                        grid, caption, table)


def _warning(records: Iterable[RunRecord]) -> str | None:
    """The banner of a figure made from ``records`` (random weights first, then the stand-in's)."""
    return figures.merge_warnings(r.weights_warning for r in records)


def _row_label(pair_id: int) -> str:
    return f"pair {pair_id}"


def _weights_note(settings: Settings, records: Sequence[RunRecord]) -> str | None:
    lines = figures.title_lines(None, weights_warning=_warning(records))
    if settings.random_segmenter:
        lines.append("RANDOM segmentation weights: masks carry no meaning")
    return "\n".join(lines) or None


def _masks_at(record: RunRecord) -> SemanticMasks:
    """The run's masks at the size of its content and style images."""
    masks = record.masks()
    if masks is None:
        raise PhotostyleError(f"run {record.key} ({record.spec.method}) used no masks")
    c, s = record.content(), record.style()
    return masks.resized(tuple(c.shape[-2:]), tuple(s.shape[-2:]), "avg")


def method_figure(settings: Settings, name: str, title: str, pair_ids: Sequence[int],
                  columns: Sequence[tuple[str, str, str, str | None]], caption: str = "",
                  notes: Sequence[str] = ()) -> FigureOutput:
    """Examples (rows) x methods (columns), led by the content and style columns.

    Args:
        columns: (column key, title, method, masks) per result column; the
            method is a preset, "reinhard", "pitie_idt" or "luan_published".
    """
    specs = {(p, key): settings.spec(p, method, masks) for p in pair_ids for key, _, method, masks in columns}
    records = dict(zip(specs, settings.run(list(specs.values()))))
    rows, sources = [], {}
    for p in pair_ids:
        label = _row_label(p)
        first = records[(p, columns[0][0])]
        images: dict[str, Any] = {"content": first.content(), "style": first.style()}
        for key, _, _, _ in columns:
            rec = records[(p, key)]
            images[key] = rec.image()
            sources[(label, key)] = rec.key
        rows.append((label, images))
    cols = [("content", "Content"), ("style", "Style")] + [(k, t) for k, t, _, _ in columns]
    grid = figures.comparison_grid(name, title, rows, cols, sources=sources,
                                   weights_warning=_warning(records.values()), notes=notes)
    return grid_output(grid, records.values(), caption)


#: Figure 4's result columns, in the paper's order (presets.ABLATION).
ABLATION_TITLES = {"full": "Full model", "regularization": "Regularization instead of post-processing",
                   "no_segmentation": "Without segmentation", "no_similarity": "Without similarity loss",
                   "no_postprocess": "Without post-processing"}


def figure4(settings: Settings, pair_ids: Sequence[int] | None = None) -> FigureOutput:
    """Figure 4, the ablation study: content, style and the five variants of presets.ABLATION."""
    cols = [(p, ABLATION_TITLES[p], p, None) for p in ABLATION]
    return method_figure(settings, "figure4", "Figure 4: ablation study", pair_ids or settings.pair_ids, cols,
                         caption="Input content and style in the left two columns, then the results of 5 model "
                                 "variants (presets.ABLATION): full model (soft segmentation, similarity loss, "
                                 "recursive-filter post-process); photorealism regularisation instead of the "
                                 "post-process; without segmentation; without similarity loss; without "
                                 "post-processing.")


def figure1(settings: Settings, pair_id: int) -> FigureOutput:
    """Figure 1: a traditional neural style transfer (Gatys et al.) against our full model."""
    cols = [("gatys", "Gatys et al.", "gatys", None), ("full", "Ours", "full", None)]
    return method_figure(settings, "figure1", "Figure 1: neural style transfer vs. ours", [pair_id], cols,
                         caption="Gatys et al.'s model introduces artistic distortions and content mismatch; "
                                 "our full model keeps the content's structure.")


#: Figure 6's result columns: the baselines of section 5.3 and ours.
BASELINE_COLUMNS = (("gatys", "Gatys et al.", "gatys", None),
                    ("reinhard", "Reinhard et al.", "reinhard", None),
                    ("pitie_idt", "Piti\u00e9 et al. (IDT)", "pitie_idt", None),
                    ("luan", "Luan et al. (our implementation)", "luan", None),
                    ("luan_published", "Luan et al. (published)", "luan_published", None),
                    ("full", "Ours", "full", None),
                    ("enhanced", "Ours, enhanced", "enhanced", None))


def figure6(settings: Settings, pair_ids: Sequence[int] | None = None) -> FigureOutput:
    """Figure 6: ours against Gatys et al., Reinhard et al., Pitie et al. (IDT) and Luan et al."""
    return method_figure(settings, "figure6", "Figure 6: comparison with previous work",
                         pair_ids or settings.pair_ids, BASELINE_COLUMNS,
                         caption="Gatys et al. (preset gatys), the global colour transfers of Reinhard et al. and "
                                 "Piti\u00e9 et al. (IDT), Luan et al. twice -- our implementation (preset luan, "
                                 "gold masks) and their published result -- our full model (the paper's), and the "
                                 "enhanced preset (this project's: full, then per-region colour matching and the "
                                 "matting-Laplacian smoothing).")


def soft_pipeline_caption() -> str:
    """Which probability -> soft-mask maths made the segmenter masks (cut.semantic_masks's soft_pipeline)."""
    from photostyle_lib.semantic import cut
    if cut.SOFT_PIPELINE == "authors":
        return ("Soft masks: the authors' pipeline (their segment.py: each ADE20K class cut at theta_s, the content "
                "restricted to the style's classes, then merged with their table).")
    return f"Soft masks: the project's '{cut.SOFT_PIPELINE}' pipeline (merge first, cut after; not the authors')."


def figure5(settings: Settings, pair_ids: Sequence[int] | None = None) -> FigureOutput:
    """Figure 5: the full model with hard, soft and gold (Luan et al.'s hand-made) masks."""
    cols = [("hard", "Hard segmentation", "full", "hard"), ("soft", "Soft segmentation", "full", "soft"),
            ("gold", "Gold segmentation", "full", "gold")]
    return method_figure(settings, "figure5", "Figure 5: hard, soft and gold segmentation",
                         pair_ids or settings.pair_ids, cols,
                         caption="Results of the full model with masks from hard segmentation (argmax), soft "
                                 f"segmentation (probabilities, theta_s = {settings.theta_s}) and the gold masks "
                                 "provided by Luan et al. " + soft_pipeline_caption())


def user_masks_figure(settings: Settings, pair_id: int) -> FigureOutput:
    """Figure 5's third example: style moved between unrelated objects with user-provided masks.

    The "user-drawn" masks are the pair's hand-painted masks from the
    dataset (``segmentation/in<N>.png``, ``tar<N>.png``), read as gold masks;
    pair 16 is a perfume bottle styled by a fire, the paper's example.
    Columns: content, style, both masks (colours: mask_views' label colours), result.
    """
    rec = settings.run([settings.spec(pair_id, "full", "gold")])[0]
    masks = _masks_at(rec)
    label = _row_label(pair_id)
    images = {"content": rec.content(), "style": rec.style(),
              "content_mask": figures.label_map_image(masks.content, masks.labels),
              "style_mask": figures.label_map_image(masks.style, masks.labels), "result": rec.image()}
    cols = [("content", "Content"), ("style", "Style"), ("content_mask", "Content mask (user)"),
            ("style_mask", "Style mask (user)"), ("result", "Result (full model)")]
    grid = figures.comparison_grid("figure5_user_masks", "Figure 5 (third example): user-provided masks",
                                   [(label, images)], cols, sources={(label, "result"): rec.key},
                                   weights_warning=rec.weights_warning, legend=masks.labels,
                                   notes=[mask_views.legend_note(masks.labels)
                                          + " (the dataset's hand-painted masks)"])
    return grid_output(grid, [rec], caption="With user-provided masks the style of one object can be moved "
                                             "onto a totally different one (the paper: fire onto a glass bottle). "
                                             "The masks here are the dataset's hand-painted masks of the pair.")


def figure3(settings: Settings, pair_id: int, *, top_k: int = 4) -> FigureOutput:
    """Figure 3: hard against soft segmentation of one pair (mask_views.hard_soft_figure).

    The masks are those the hard and soft runs of the full model used (so
    Figure 5's runs are shared). Panels saved: content, style, the hard label
    maps and the soft maps of the ``top_k`` largest labels.
    """
    hard_rec, soft_rec = settings.run([settings.spec(pair_id, "full", "hard"), settings.spec(pair_id, "full", "soft")])
    hard, soft = _masks_at(hard_rec), _masks_at(soft_rec)
    content, style = soft_rec.content(), soft_rec.style()
    fig = mask_views.hard_soft_figure(content, style, hard, soft, top_k=top_k,
                                      title=f"Figure 3: hard vs. soft segmentation ({_row_label(pair_id)})",
                                      weights_note=_weights_note(settings, [hard_rec, soft_rec]))
    panels = [Panel("content", "Content", content), Panel("style", "Style", style),
              Panel("hard_content", "Hard (content)", figures.label_map_image(hard.content, hard.labels),
                    hard_rec.key),
              Panel("hard_style", "Hard (style)", figures.label_map_image(hard.style, hard.labels), hard_rec.key)]
    for lab in mask_views.top_labels_by_area(soft, min(top_k, soft.num_labels)):
        c = soft.labels.index(lab)
        panels += [Panel(f"soft_content_{lab}", f"Soft: {lab} (content)", figures.probability_image(soft.content[c]),
                         soft_rec.key),
                   Panel(f"soft_style_{lab}", f"Soft: {lab} (style)", figures.probability_image(soft.style[c]),
                         soft_rec.key)]
    return FigureOutput("figure3", fig, tuple(panels), (hard_rec, soft_rec), _warning([hard_rec, soft_rec]),
                        caption="Hard segmentation: one colour per label; soft segmentation: per-label "
                                "probabilities, darker = less probable. Only the largest labels are shown. "
                                + soft_pipeline_caption())


#: sigma_r of the recursive filter, in [0, 1] image units. The paper's text (100 on 0-255) and the
#: authors' code agree: their main.py hands RF int32 arrays of 0-255 values, so their 100 acts on
#: 0-255 values, i.e. 100/255 here. SIGMA_R_PLAIN (100 on [0, 1], barely edge-aware: nearly a plain
#: smoothing) is neither reading; Figure 7 keeps it only as a labelled ablation.
SIGMA_R_TEXT = postprocess.DEFAULT_SIGMA_R
SIGMA_R_PLAIN = 100.0


def structure_error(image: np.ndarray, content: np.ndarray) -> float:
    """Mean absolute difference of image and content gradients (forward differences, all channels).

    0 when the image has exactly the content's structure (edges and texture),
    whatever its colours; a measure of the distortions a post-process removes.
    """
    a, b = as_image_array("image", image), as_image_array("content", content)
    gx = np.abs(np.diff(a, axis=1) - np.diff(b, axis=1)).mean()
    gy = np.abs(np.diff(a, axis=0) - np.diff(b, axis=0)).mean()
    return float((gx + gy) / 2.0)


def figure7(settings: Settings, pair_ids: Sequence[int] | None = None, *,
            sigma_r: Sequence[float] = (SIGMA_R_TEXT, SIGMA_R_PLAIN), sigma_s: float = postprocess.DEFAULT_SIGMA_S,
            poisson_lambda: float = postprocess.DEFAULT_POISSON_LAMBDA, zoom_fraction: float = 0.3) -> FigureOutput:
    """Figure 7: before and after the recursive-filter post-process (eq. 9), with zooms.

    "Before" is the raw result of the full model without post-processing
    (the ``no_postprocess`` run, shared with Figure 4); the other columns
    apply :func:`postprocess.refine` to it with each ``sigma_r`` (sigma_s, 3
    iterations, joint image = content) and :func:`postprocess.screened_poisson`
    (Mechrez et al., the paper's [8]). Below each row, zoomed crops of the
    window with the most structure (:func:`figures.zoom_box`).

    The table: per pair and column, :func:`structure_error` against the
    content and the mean absolute change from the raw result.
    """
    pair_ids = list(pair_ids or settings.pair_ids)
    recs = settings.run([settings.spec(p, "no_postprocess") for p in pair_ids])
    cols = [("content", "Content"), ("before", "Before post-processing")]
    for s in sigma_r:
        cols.append((f"rf_{s:.4g}", _sigma_title(s)))
    cols.append(("poisson", "Screened Poisson [8]"))
    rows, sources, table = [], {}, []
    for p, rec in zip(pair_ids, recs):
        label = _row_label(p)
        content, raw = as_image_array("content", rec.content()), as_image_array("raw", rec.raw_image())
        images = {"content": content, "before": raw}
        for s in sigma_r:
            images[f"rf_{s:.4g}"] = postprocess.refine(raw, content, sigma_s=sigma_s, sigma_r=s)
        images["poisson"] = postprocess.screened_poisson(raw, content, lam=poisson_lambda)
        rows.append((label, images))
        for key, title in cols[1:]:
            sources[(label, key)] = rec.key
            table.append({"pair": p, "column": title, "structure_error": structure_error(images[key], content),
                          "change_from_before": float(np.abs(images[key] - raw).mean())})
    grid = figures.postprocess_grid("figure7", "Figure 7: post-processing removes distortions", rows, cols,
                                    zoom_fraction=zoom_fraction, sources=sources,
                                    weights_warning=_warning(recs),
                                    notes=[f"recursive filter: sigma_s = {sigma_s:g} px, 3 iterations, joint image "
                                           f"= content; screened Poisson lambda = {poisson_lambda:g} px^2"])
    return grid_output(grid, recs, table=pd.DataFrame(table),
                        caption="Before and after the post-process, with zoomed crops (outlined in yellow). "
                                "sigma_r = 100/255 is the paper's 100 on 0-255 images, as the authors' code applies "
                                "it (strongly edge-aware); sigma_r = 100 on [0, 1] images is an ablation, neither "
                                "the paper's nor the code's reading (nearly a plain smoothing of the stylised "
                                "colours plus the content's detail layer).")


def _sigma_title(s: float) -> str:
    if abs(s - SIGMA_R_TEXT) < 1e-9:
        return "After: \u03c3_r = 100/255 (paper and authors' code)"
    if abs(s - SIGMA_R_PLAIN) < 1e-9:
        return "After: \u03c3_r = 100 on [0, 1] (ablation)"
    return f"After: \u03c3_r = {s:.4g}"


def figure8(settings: Settings, pair_ids: Sequence[int] | None = None, *,
            max_labels: int = 6) -> list[FigureOutput]:
    """Figure 8, failure cases: per pair, the result and the per-label masks it used.

    Two figures per pair: ``figure8_pair<N>`` (content, style, result of the
    full model with soft masks) and ``figure8_pair<N>_masks``
    (mask_views.per_label_figure: for each label, named, the content mask
    above the style mask; the ``max_labels`` largest labels).
    """
    pair_ids = list(pair_ids or settings.pair_ids)
    recs = settings.run([settings.spec(p, "full", "soft") for p in pair_ids])
    out: list[FigureOutput] = []
    for p, rec in zip(pair_ids, recs):
        label = _row_label(p)
        grid = figures.comparison_grid(f"figure8_pair{p}", f"Figure 8: failure case ({label})",
                                       [(label, {"content": rec.content(), "style": rec.style(),
                                                 "result": rec.image()})],
                                       [("content", "Content"), ("style", "Style"), ("result", "Result")],
                                       sources={(label, "result"): rec.key}, weights_warning=rec.weights_warning)
        out.append(grid_output(grid, [rec], caption="A result of the full model with soft segmentation. "
                                                    + soft_pipeline_caption()))
        masks = _masks_at(rec)
        labels = mask_views.top_labels_by_area(masks, min(max_labels, masks.num_labels))
        fig = mask_views.per_label_figure(masks, labels=labels,
                                          title=f"Figure 8: masks of {label} (top: content, bottom: style)",
                                          weights_note=_weights_note(settings, [rec]))
        panels = []
        for lab in labels:
            c = masks.labels.index(lab)
            panels += [Panel(f"{lab}_content", f"{lab} (content)", figures.probability_image(masks.content[c]),
                             rec.key),
                       Panel(f"{lab}_style", f"{lab} (style)", figures.probability_image(masks.style[c]), rec.key)]
        out.append(FigureOutput(f"figure8_pair{p}_masks", fig, tuple(panels), (rec,), rec.weights_warning,
                                caption="For each label, named: the content's mask (top) and the style's (below). "
                                        + soft_pipeline_caption()))
    return out


def _flatten(outputs: Iterable[FigureOutput | Iterable[FigureOutput]]) -> list[FigureOutput]:
    flat: list[FigureOutput] = []
    for o in outputs:
        flat.extend([o] if isinstance(o, FigureOutput) else _flatten(o))
    return flat


def _created_ts(record: RunRecord) -> float | None:
    try:
        return datetime.fromisoformat(str(record.metadata.get("created"))).timestamp()
    except ValueError:
        return None


#: Environment variables that set the figures' file format ("png", "pdf", "svg") and dpi for every
#: notebook of a run (``run --figure-format pdf --dpi 200`` sets them for the kernels it starts).
FIGURE_FORMAT_ENV = "PHOTOSTYLE_FIGURE_FORMAT"
FIGURE_DPI_ENV = "PHOTOSTYLE_FIGURE_DPI"


def figure_options() -> tuple[str, int]:
    """(format, dpi) of saved figures: from $PHOTOSTYLE_FIGURE_FORMAT / $PHOTOSTYLE_FIGURE_DPI, else ("png", 100)."""
    fmt = os.environ.get(FIGURE_FORMAT_ENV, "png").strip().lower() or "png"
    if fmt not in figures.FIGURE_FORMATS:
        raise PhotostyleError(f"${FIGURE_FORMAT_ENV}={fmt!r}: use one of {', '.join(figures.FIGURE_FORMATS)}")
    raw = os.environ.get(FIGURE_DPI_ENV, "100").strip() or "100"
    if not raw.isdigit() or not 10 <= int(raw) <= 1200:
        raise PhotostyleError(f"${FIGURE_DPI_ENV}={raw!r}: use a whole number of dots per inch in [10, 1200]")
    return fmt, int(raw)


def save_outputs(settings: Settings, outputs: Iterable[FigureOutput | Iterable[FigureOutput]], *,
                 extra: Mapping[str, Any] | None = None) -> Path:
    """Write a notebook's figures, their panels and its metadata into ``settings.output_dir``.

    Files: ``<figure>.png`` per figure (or ``.pdf`` / ``.svg`` and another dpi: :func:`figure_options`), ``panels/<figure>_<panel>.png`` per
    panel, ``<figure>.csv`` per table, and ``metadata.json``: the parameters,
    weights used (and whether any were random), every figure with its panels,
    the runs used (cache keys, whether computed in this session, their
    timings), the notebook's elapsed time, git revision and versions.
    Returns the metadata path.
    """
    outs = _flatten(outputs)
    names = [o.name for o in outs]
    if len(set(names)) != len(names):
        raise PhotostyleError(f"figure names must be unique in a notebook, got {names}")
    fmt, dpi = figure_options()
    d = settings.out
    d.mkdir(parents=True, exist_ok=True)
    listing, runs = [], {}
    for o in outs:
        if o.grid is not None:
            entry = figures.save_grid(o.grid, d, fig=o.figure, dpi=dpi, format=fmt)
        else:
            path = figures.save_figure(o.figure, d / f"{o.name}.{fmt}", dpi=dpi, format=fmt)
            entry = {"name": o.name, "title": o.figure.get_suptitle().split("\n"),
                     "file": path.name, "rows": None, "columns": None,
                     "panels": figures.save_panels(o.name, o.panels, d, weights_warning=o.weights_warning)}
        entry["caption"] = o.caption
        entry["random_weights"] = o.random_weights
        entry["weights_warning"] = o.weights_warning
        entry["cache_keys"] = [r.key for r in o.records]
        if o.table is not None:
            o.table.to_csv(d / f"{o.name}.csv", index=False)
            entry["table"] = f"{o.name}.csv"
        listing.append(entry)
        for r in o.records:
            runs[r.key] = r
    run_list = []
    for key, r in runs.items():
        created = _created_ts(r)
        run_list.append({"key": key, "directory": str(r.directory), "spec": dataclasses.asdict(r.spec),
                         "random_weights": r.random_weights, "weights": r.metadata.get("weights"),
                         "weights_warning": r.weights_warning, "network": r.metadata.get("network"),
                         "segmenter": r.metadata.get("segmenter"), "stop_reason": r.metadata.get("stop_reason"),
                         "wall_seconds": r.metadata.get("wall_seconds"),
                         "computed_this_session": created is not None and created >= int(settings.started)})
    md = base_metadata()
    md.update({
        "notebook": settings.notebook, "profile": settings.profile, "parameters": settings.parameters(),
        "extra_parameters": dict(extra or {}),
        "weights": {"vgg": settings.weights, "segmenter": settings.segmenter or "default checkpoint"},
        "random_weights": settings.random_weights or any(o.random_weights for o in outs),
        "figures": listing, "cache_keys": list(runs), "runs": run_list,
        "timings": {"notebook_seconds": time.time() - settings.started,
                    "runs_computed_seconds": sum(x["wall_seconds"] or 0.0 for x in run_list
                                                 if x["computed_this_session"])},
    })
    warning = figures.RANDOM_WEIGHTS_BANNER if md["random_weights"] else _warning(runs.values())
    if warning:
        md["warning"] = warning
    return write_json(md, d / "metadata.json")


# --------------------------------------------------------------------------- profiles

#: Parameters the runner sets itself for every notebook (when the notebook declares them).
RUNNER_PARAMETERS = ("profile", "notebook", "data_dir", "output_dir", "cache_dir")

#: Profiles as data: parameter overrides injected into notebooks by papermill.
#: ``"*"`` applies to every notebook; a notebook's own entry (by name) overrides it.
#: Only the parameters a notebook declares in its ``parameters`` cell are injected
#: from ``"*"``; a notebook's own entry must name declared parameters only.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    # Tiny images, 30 iterations (enough for the style to show), the trained VGG-16 stand-in
    # (hed-vgg16, so the figures are real if rough style transfers; every figure says "VGG-16 stand-in (HED, BSDS500)") and the
    # tiny random segmenter (hard / soft masks carry no meaning: those figures say RANDOM
    # WEIGHTS): exercises every notebook on a 2-core CPU in minutes.
    "ci": {
        "*": {"size": 64, "iterations": 30, "weights": "hed-vgg16", "segmenter": "random-tiny", "device": "cpu",
              "theta_s": 0.2, "mask_downsample": "max", "alpha": None, "beta": None, "gamma": None,
              "seed": 0, "progress": False, "pair_ids": [8]},
        "00_interactive": {"pair_id": 8, "auto_run": True},
        "01_ablation": {"pair_ids": [8, 16]},
        "02_segmentation": {"pair_ids": [8], "figure3_pair_id": 8, "user_pair_id": 16},
        "03_baselines": {"pair_ids": [8], "figure1_pair_id": 8},
        "04_postprocess": {"pair_ids": [8]},
        "05_failure_cases": {"pair_ids": [8]},
        "06_metrics": {"pair_ids": [8, 16, 1]},  # three pairs, so the intervals are computed
        # soft_vs_hard: two pairs (an interval), one error kind, one severity besides 0, one theta_s
        "07_soft_vs_hard": {"pair_ids": [8, 16], "severities": {"boundary": [0, 4]}, "thetas": [0.2],
                            "temperature": 4.0},
    },
    # The paper's settings (sections 4-5): 700 px, 500 iterations, ImageNet VGG-19,
    # the default ADE20K segmenter averaged over the authors' four scales (short sides 300-600),
    # the authors' soft-mask pipeline (cut.SOFT_PIPELINE), theta_s 0.2 and max-pooled masks
    # as the authors' code.
    "paper": {
        "*": {"size": 700, "iterations": 500, "weights": "imagenet", "segmenter": "paper-scales", "device": "auto",
              "theta_s": 0.2, "mask_downsample": "max", "alpha": None, "beta": None, "gamma": None,
              "seed": 0, "progress": True},
        "00_interactive": {"pair_id": 1, "auto_run": True},
        "01_ablation": {"pair_ids": [3, 1, 13, 47]},
        "02_segmentation": {"pair_ids": [6, 44], "figure3_pair_id": 39, "user_pair_id": 16},
        "03_baselines": {"pair_ids": [14, 8, 3, 31, 9, 48], "figure1_pair_id": 14},
        "04_postprocess": {"pair_ids": [4, 39]},
        "05_failure_cases": {"pair_ids": [20, 50]},
        "06_metrics": {"pair_ids": None},  # all 60 pairs
        # tuning pairs only (held-out 21-60: benchmarks/bench_soft_vs_hard.py); soft_vs_hard's default severities
        "07_soft_vs_hard": {"pair_ids": [1, 4, 8, 13, 16], "severities": None, "thetas": [0.1, 0.2, 0.4]},
    },
}


def profile_parameters(profile: str, notebook: str, declared: Iterable[str] | None = None) -> dict[str, Any]:
    """The profile's parameters for ``notebook``: ``"*"`` (restricted to ``declared``), then its own entry."""
    if profile not in PROFILES:
        raise PhotostyleError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    prof = PROFILES[profile]
    declared = None if declared is None else set(declared)
    params = {k: v for k, v in prof.get("*", {}).items() if declared is None or k in declared}
    own = prof.get(notebook, {})
    if declared is not None:
        unknown = sorted(set(own) - declared)
        if unknown:
            raise PhotostyleError(f"profile {profile!r} sets {unknown} for notebook {notebook}, which has no such "
                                  "parameters; add them to its 'parameters' cell or fix PROFILES")
    params.update(own)
    return params


# --------------------------------------------------------------------------- runner

_NOTEBOOK_NAME = re.compile(r"^\d\d_[A-Za-z0-9_-]+\.ipynb$")


def discover_notebooks(directory: str | Path | None = None) -> list[Path]:
    """Every ``NN_*.ipynb`` in ``directory`` (default notebooks/), sorted by name."""
    d = Path(directory) if directory is not None else NOTEBOOKS_DIR
    if not d.is_dir():
        raise PhotostyleError(f"notebook folder {d} does not exist")
    return sorted(p for p in d.iterdir() if p.is_file() and _NOTEBOOK_NAME.match(p.name))


def select_notebooks(paths: Sequence[Path], only: Sequence[str] | None) -> list[Path]:
    """Notebooks named by ``only``: a full stem ("01_ablation"), its number ("01") or the rest ("ablation")."""
    if not only:
        return list(paths)
    chosen: list[Path] = []
    for name in only:
        n = name.removesuffix(".ipynb")
        hits = [p for p in paths if n in (p.stem, p.stem[:2], p.stem[3:])]
        if not hits:
            raise PhotostyleError(f"no notebook matches {name!r}; available: "
                                  f"{', '.join(p.stem for p in paths) or 'none'}")
        chosen += [p for p in hits if p not in chosen]
    return sorted(chosen)


def declared_parameters(path: Path) -> dict[str, Any]:
    """The parameters a notebook's ``parameters`` cell declares (name -> papermill's description)."""
    nbformat = require_extra("nbformat", "notebooks", "running the notebooks")
    papermill = require_extra("papermill", "notebooks", "running the notebooks")

    nb = nbformat.read(str(path), as_version=4)
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        raise PhotostyleError(f"notebook {path.stem} has no cell tagged 'parameters'; tag the cell that "
                              "holds its parameters (View > Cell Toolbar > Tags)")
    return dict(papermill.inspect_notebook(str(path)))


def ensure_kernel(name: str = KERNEL_NAME, *, install: bool = True) -> Path:
    """The kernel spec folder of ``name``, registering it for this interpreter when missing.

    The kernel must run an interpreter that can import ``photostyle_lib``
    (the project's environment), checked by starting it once. Raises
    PhotostyleError (saying to run ``make install``) when the kernel is
    missing and cannot be registered, or runs another environment.
    """
    require_extra("jupyter_client", "notebooks", "running the notebooks")
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    fix = (f"run `make install` (it registers the kernel with `python -m ipykernel install --sys-prefix "
           f"--name {name}`) from the project's environment")
    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        if not install:
            raise PhotostyleError(f"Jupyter kernel {name!r} is not registered; {fix}") from None
        try:
            from ipykernel.kernelspec import install as install_kernel

            install_kernel(kernel_name=name, display_name=KERNEL_DISPLAY_NAME, prefix=sys.prefix)
            spec = KernelSpecManager().get_kernel_spec(name)
        except (ImportError, OSError, NoSuchKernel) as exc:
            raise PhotostyleError(f"Jupyter kernel {name!r} is not registered and registering it for "
                                  f"{sys.executable} failed ({type(exc).__name__}: {exc}); {fix}") from None
    python = shutil.which(spec.argv[0]) if spec.argv else None
    if python is None:
        raise PhotostyleError(f"Jupyter kernel {name!r} ({spec.resource_dir}) starts {spec.argv[:1]}, "
                              f"which does not exist; {fix}")
    try:
        probe = subprocess.run([python, "-c", "import photostyle_lib"], capture_output=True, text=True,
                               timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PhotostyleError(f"Jupyter kernel {name!r} runs {python}, which could not be started "
                              f"({type(exc).__name__}); {fix}") from None
    if probe.returncode != 0:
        raise PhotostyleError(f"Jupyter kernel {name!r} runs {python}, which cannot import photostyle_lib "
                              f"(another environment); {fix}")
    return Path(spec.resource_dir)


@dataclass(frozen=True)
class NotebookRun:
    """One executed notebook: where its outputs are and how long it took."""

    name: str
    source: Path
    executed: Path
    directory: Path
    seconds: float
    figures: tuple[str, ...]


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ARROW = re.compile(r"^-*>\s*\d+\s(.*)$")


def _failing_line(traceback: Sequence[str] | None, source: str, limit: int = 80) -> str:
    """The notebook line that raised: IPython's ``---->`` line of the cell's frame, else the cell's first line."""
    code = ""
    for entry in traceback or ():
        text = _ANSI.sub("", str(entry))
        if text.startswith("Cell In"):
            hits = [m.group(1).strip() for m in map(_ARROW.match, text.splitlines()) if m]
            if hits:
                code = hits[0]
                break
    if not code:
        lines = [ln.strip() for ln in str(source).splitlines() if ln.strip() and not ln.strip().startswith("#")]
        code = lines[0] if lines else ""
    return code if len(code) <= limit else code[:limit - 3] + "..."


def run_notebook(path: str | Path, profile: str, *, output_root: str | Path | None = None,
                 data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                 kernel_name: str = KERNEL_NAME, timeout: float | None = None,
                 progress: bool = False, weights: str | None = None) -> NotebookRun:
    """Execute one notebook with papermill under ``profile``; write ``<output_root>/<profile>/<name>/``.

    The executed notebook goes to ``<name>.ipynb`` in that folder; the
    notebook itself writes its figures, panels and metadata.json there; the
    runner adds a ``runner`` entry (wall time, kernel, injected parameters) to
    metadata.json, or writes a minimal one if the notebook did not.
    ``weights`` (e.g. "hed-vgg16" for the paper profile offline) replaces the
    profile's VGG weights in notebooks that declare a ``weights`` parameter.

    Raises:
        PhotostyleError: a cell failed (naming the notebook, the cell and its
            error), the kernel could not start, or the parameters are wrong.
    """
    papermill = require_extra("papermill", "notebooks", "running the notebooks")
    from papermill.exceptions import PapermillException, PapermillExecutionError

    src = Path(path)
    name = src.stem
    root = _project_path(None if output_root is None else str(output_root), RESULTS_DIR)
    out_dir = root / profile / name
    cache = _project_path(None if cache_dir is None else str(cache_dir), root / "cache")
    data = resolve_data_dir(data_dir)
    declared = declared_parameters(src)
    params = profile_parameters(profile, name, declared)
    if weights is not None and "weights" in declared:
        params["weights"] = weights
    runner_values = {"profile": profile, "notebook": name, "data_dir": str(data), "output_dir": str(out_dir),
                     "cache_dir": str(cache)}
    params.update({k: v for k, v in runner_values.items() if k in declared})
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / f"{name}.ipynb"
    t0 = time.perf_counter()
    try:
        # The kernel's own log (a TCP-transport warning at start, an interrupt notice at
        # shutdown) would break the one-line output; cell errors come through papermill.
        papermill.execute_notebook(str(src), str(executed), parameters=params, kernel_name=kernel_name,
                                   progress_bar=progress, cwd=str(src.parent), execution_timeout=timeout,
                                   extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
    except PapermillExecutionError as exc:
        code = _failing_line(exc.traceback, exc.source)
        raise PhotostyleError(f"notebook {name} failed in cell [{exc.exec_count}] `{code}`: {exc.ename}: "
                              f"{_one_line(exc.evalue)} (executed notebook with the traceback: {executed})") from None
    except (PapermillException, RuntimeError, TimeoutError, KeyError) as exc:
        raise PhotostyleError(f"notebook {name} could not be run: {type(exc).__name__}: {_one_line(exc)} "
                              f"(partial output: {executed})") from None
    seconds = time.perf_counter() - t0
    meta_path = out_dir / "metadata.json"
    md = json.loads(meta_path.read_text()) if meta_path.exists() else {
        **base_metadata(), "notebook": name, "profile": profile, "parameters": params,
        "random_weights": str(params.get("weights", "")).startswith("random"), "figures": []}
    md["runner"] = {"profile": profile, "kernel": kernel_name, "executed_notebook": executed.name,
                    "wall_seconds": seconds, "injected_parameters": params}
    write_json(md, meta_path)
    return NotebookRun(name, src, executed, out_dir, seconds, tuple(f["file"] for f in md.get("figures", [])))


def run_suite(profile: str, *, only: Sequence[str] | None = None, data_dir: str | Path | None = None,
              output_dir: str | Path | None = None, cache_dir: str | Path | None = None,
              notebooks_dir: str | Path | None = None, timeout: float | None = None, progress: bool = False,
              echo: Callable[[str], None] | None = None, weights: str | None = None,
              figure_format: str | None = None, dpi: int | None = None) -> list[NotebookRun]:
    """Run the notebooks (all, or those named by ``only``) under ``profile``; stop at the first failure.

    ``weights``: replaces the profile's VGG weights (:func:`run_notebook`).
    ``figure_format`` ("png", "pdf", "svg") and ``dpi``: of every figure the notebooks save
    (passed to their kernels as :data:`FIGURE_FORMAT_ENV` / :data:`FIGURE_DPI_ENV`).

    Writes ``<output_dir>/<profile>/suite.json`` (notebooks, seconds, figures).
    ``echo`` receives one line per notebook (e.g. ``print``).
    """
    if profile not in PROFILES:
        raise PhotostyleError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    notebooks = select_notebooks(discover_notebooks(notebooks_dir), only)
    if not notebooks:
        raise PhotostyleError(f"no NN_*.ipynb notebooks in {notebooks_dir or NOTEBOOKS_DIR}")
    data = resolve_data_dir(data_dir)
    saved = {k: os.environ.get(k) for k in (FIGURE_FORMAT_ENV, FIGURE_DPI_ENV)}
    if figure_format is not None:
        os.environ[FIGURE_FORMAT_ENV] = str(figure_format)
    if dpi is not None:
        os.environ[FIGURE_DPI_ENV] = str(dpi)
    try:
        figure_options()  # one clear line for a bad format or dpi, before any notebook starts
        ensure_kernel()
        root = _project_path(None if output_dir is None else str(output_dir), RESULTS_DIR)
        done, t0 = _run_all(notebooks, profile, root, data, cache_dir, timeout, progress, weights, echo)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    write_json({**base_metadata(), "profile": profile, "seconds": time.perf_counter() - t0,
                "notebooks": [{"name": r.name, "seconds": r.seconds, "directory": str(r.directory),
                               "figures": list(r.figures)} for r in done]},
               root / profile / "suite.json")
    return done


def _run_all(notebooks: Sequence[Path], profile: str, root: Path, data: Path, cache_dir: str | Path | None,
             timeout: float | None, progress: bool, weights: str | None,
             echo: Callable[[str], None] | None) -> tuple[list[NotebookRun], float]:
    """:func:`run_suite`'s loop: the notebooks one after another; returns the runs and the start time."""
    done: list[NotebookRun] = []
    t0 = time.perf_counter()
    for i, nb in enumerate(notebooks, 1):
        run = run_notebook(nb, profile, output_root=root, data_dir=data, cache_dir=cache_dir, timeout=timeout,
                           progress=progress, weights=weights)
        done.append(run)
        if echo is not None:
            echo(f"[{i}/{len(notebooks)}] {run.name}: {run.seconds:.1f} s -> {run.directory} "
                 f"({', '.join(run.figures) or 'no figures'})")
    return done, t0


def suite_warnings(runs: Iterable[NotebookRun]) -> list[str]:
    """The distinct weights banners of the figures the notebooks wrote (their metadata.json), in order."""
    found: list[str] = []
    for r in runs:
        meta = r.directory / "metadata.json"
        md = json.loads(meta.read_text()) if meta.exists() else {}
        for fig in md.get("figures", []):
            w = fig.get("weights_warning") or (figures.RANDOM_WEIGHTS_BANNER if fig.get("random_weights") else None)
            if w and w not in found:
                found.append(w)
    return found


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m photostyle_lib.experiments.recipes",
                description="Run the notebook suite (the paper's figures) through papermill.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    r = sub.add_parser("run", help="execute the notebooks under a profile")
    r.add_argument("--profile", required=True, choices=sorted(PROFILES),
                   help="ci: tiny, the hed-vgg16 stand-in, minutes on a CPU; paper: the paper's settings")
    r.add_argument("--only", action="append", metavar="NAME",
                   help="run only this notebook (01_ablation, 01 or ablation); repeatable")
    r.add_argument("--data-dir", help="the Luan et al. set (default: $PHOTOSTYLE_DATA or data/luan2017)")
    r.add_argument("--output-dir", help="results root (default: results/ in the project); relative paths "
                                        "are relative to the current directory")
    r.add_argument("--cache-dir", help="run cache (default: <output-dir>/cache)")
    r.add_argument("--notebooks-dir", help="folder of NN_*.ipynb notebooks (default: notebooks/)")
    r.add_argument("--timeout", type=float, help="seconds allowed per cell (default: none)")
    r.add_argument("--weights", help="VGG weights instead of the profile's, e.g. hed-vgg16 (the trained VGG-16 "
                                     "stand-in) for the paper profile without ImageNet VGG-19; every figure says so")
    r.add_argument("--progress", action="store_true", help="show papermill's per-cell progress bar")
    r.add_argument("--figure-format", choices=list(figures.FIGURE_FORMATS),
                   help="file format of the figures (default png; pdf and svg are vector figures)")
    r.add_argument("--dpi", type=int, help="figure resolution in dots per inch (default 100)")
    ls = sub.add_parser("list", help="list the notebooks and a profile's parameters")
    ls.add_argument("--profile", default="ci", choices=sorted(PROFILES))
    ls.add_argument("--notebooks-dir")
    return p


def _from_cwd(value: str | None) -> str | None:
    """Command-line paths are relative to where the command runs (notebooks resolve them
    against the project root, so they get them absolute)."""
    return None if value is None or value == "" else str(Path(value).expanduser().resolve())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("data_dir", "output_dir", "cache_dir", "notebooks_dir"):
        if hasattr(args, name):
            setattr(args, name, _from_cwd(getattr(args, name)))
    prog = "photostyle-experiments"
    try:
        if args.command == "list":
            for nb in discover_notebooks(args.notebooks_dir):
                params = profile_parameters(args.profile, nb.stem, declared_parameters(nb))
                print(f"{nb.stem}: {json.dumps(params, default=str)}")
            return 0
        runs = run_suite(args.profile, only=args.only, data_dir=args.data_dir, output_dir=args.output_dir,
                         cache_dir=args.cache_dir, notebooks_dir=args.notebooks_dir, timeout=args.timeout,
                         progress=args.progress, echo=print, weights=args.weights,
                         figure_format=args.figure_format, dpi=args.dpi)
        total = sum(r.seconds for r in runs)
        banners = suite_warnings(runs)
        warn = "".join("  [" + b.replace(" \u2014 ", ": ") + "]" for b in banners)
        print(f"{len(runs)} notebook(s) in {total:.1f} s under profile {args.profile}{warn}")
        return 0
    except PhotostyleError as exc:
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
