"""The optimisation engine: eq. (10) minimised over the output image.

``stylize(content, style, config, masks=...)`` starts from the content image
and minimises

    alpha * sum_l L_c^l + beta * sum_l L_s+^l + gamma * sum_l L_sim^l
    (+ lambda * L_m, the photorealism regularisation of eq. 4, when enabled)
    (+ tv * total variation, Luan et al.'s smoothness term, when enabled)

with L-BFGS (one iteration = one loss evaluation, as the paper's code counts)
or Adam, then applies the chosen post-process (eq. 9 by default).

Divergence guard: the paper reports that "the loss will suddenly increase to
a huge value" on some images and cut their iteration counts by hand. Here
every evaluation is checked: a NaN/inf loss, or a loss more than
``divergence_factor`` times the best seen, stops the run, and the best
iterate is returned with the reason in ``TransferResult.stop_reason``.

Time to quality (this project's, off by default): a coarse-to-fine schedule
(``TransferConfig.pyramid_levels``, :func:`_stylize_pyramid`) and a stop on a
plateau of the best loss (``plateau_window``, :func:`plateaued`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from photostyle_lib import baselines, losses
from photostyle_lib.photoreal import local_affine, matting, postprocess
from photostyle_lib.features.allocator import keep_freed_memory
from photostyle_lib.checks import check_choice, check_int, check_number, resolve_device
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import array_to_tensor, as_image_tensor, resize_tensor, tensor_to_array
from photostyle_lib.engine.lbfgs import LBFGS, projected_lbfgs
from photostyle_lib.features.layer_loss import LayerTerms, layer_losses
from photostyle_lib.losses import MaskIndex
from photostyle_lib.semantic.masks import SemanticMasks, resize_masks
from photostyle_lib.io.metadata import base_metadata, device_description
from photostyle_lib.photoreal.postprocess import DEFAULT_POISSON_LAMBDA, DEFAULT_SIGMA_R, DEFAULT_SIGMA_S, DEFAULT_SMOOTH_LAMBDA
from photostyle_lib.features.vgg import LAYER_NAMES, NAMED_WEIGHTS, VGGFeatures, layer_size, weights_identity

SEGMENTATION_MODES = ("soft", "hard", "gold", "none")
#: Post-process steps: "recursive_filter": eq. (9); "screened_poisson"; "local_affine": Luan et al.'s
#: final SmoothLocalAffine (local_affine.smooth_local_affine); "colour_match": each semantic region's
#: colours given its style region's distribution (baselines.masked_idt with the run's masks; this
#: project's); "matting_smooth": (Id + smooth_lambda L) O = S with the content's matting Laplacian
#: (postprocess.matting_smooth; this project's). ``postprocess`` is one step, "none", or steps
#: joined by "+" and run left to right, e.g. "recursive_filter+colour_match+matting_smooth".
POSTPROCESS_STEP_NAMES = ("recursive_filter", "screened_poisson", "local_affine", "colour_match", "matting_smooth")


def postprocess_steps(postprocess: str) -> tuple[str, ...]:
    """The steps of a ``postprocess`` value, in order ("none" -> ()); raises PhotostyleError on an unknown step."""
    if not isinstance(postprocess, str) or not postprocess:
        raise PhotostyleError(f"postprocess must be a string such as 'recursive_filter', got {postprocess!r}")
    if postprocess == "none":
        return ()
    steps = tuple(part.strip() for part in postprocess.split("+"))
    bad = [st for st in steps if st not in POSTPROCESS_STEP_NAMES]
    if bad:
        raise PhotostyleError(f"postprocess: unknown step(s) {bad}; use 'none' or steps from "
                              f"{', '.join(POSTPROCESS_STEP_NAMES)} joined by '+'")
    return steps
#: "lbfgs": the paper's plain L-BFGS (torch's algorithm, fixed step lr, no line search, x clamped
#: to [0, 1] inside the closure); "projected_lbfgs": bounds [0, 1] by projection, steps by a
#: backtracking line search (lbfgs.projected_lbfgs; lr unused); "adam".
OPTIMIZERS = ("lbfgs", "projected_lbfgs", "adam")
#: Masked style loss normalisation: "authors" -- the paper's public code (every label's Gram
#: divided by L * C * H * W, cross-label blocks counted, mean over the (L*C)^2 entries;
#: losses.authors_masked_style_loss); "area" -- this project's own (each label divided by
#: C times its own area, summed over labels; losses.masked_style_loss); "luan" -- Luan et al.'s
#: code (each label's Gram divided by C times the sum of its mask, its term weighted by the mean
#: of its content mask at the layer, every label present in the content counted;
#: losses.luan_masked_style_loss). The label weighting is part of "luan", not a separate switch:
#: it belongs with that Gram normalisation (with "authors" the area factor is already inside
#: every Gram, divided by the whole map's size).
STYLE_NORMALIZATIONS = ("authors", "area", "luan")
#: The optimisation's starting image: "content" (the paper's code, and Luan et al.'s); "reinhard"
#: -- this project's: the content recoloured per semantic region (baselines.masked_reinhard with
#: the run's masks, global without masks), so the losses refine matched colours instead of
#: pulling them out of the content's.
INITS = ("content", "reinhard")


@dataclass(frozen=True)
class TransferConfig:
    """Every setting of one style-transfer run (defaults: the paper's, section 4).

    Paper symbols map to names once, here:

    ============  ======================  =========================================
    paper         field                   meaning
    ============  ======================  =========================================
    alpha         ``content_weight``      weight of the content loss (eq. 2)
    beta          ``style_weight``        weight of the (masked) style loss (eqs. 3, 6)
    gamma         ``similarity_weight``   weight of the L1 similarity loss (eq. 8)
    lambda        ``regularization_weight``  photorealism regularisation (eq. 4)
    sigma_s       ``rf_sigma_s``          recursive filter spatial sigma, pixels
    sigma_r       ``rf_sigma_r``          recursive filter range sigma, [0, 1] units
    ============  ======================  =========================================

    Switches (the ablation's axes): ``segmentation`` ("soft", "hard", "gold"
    or "none"), ``use_similarity``, ``use_regularization``, ``postprocess``
    ("recursive_filter", "screened_poisson", "local_affine" or "none").

    Other fields: layer names (see ``vgg.LAYER_NAMES``); ``lr``; ``iterations``
    (loss evaluations, >= 1); ``optimizer`` ("lbfgs" | "projected_lbfgs" | "adam"); ``seed``;
    ``device`` ("auto", "cpu", "cuda", "cuda:N", "mps"); ``weights`` ("imagenet",
    "random" or a state-dict path); ``mask_downsample`` ("max": the paper's
    code, max-pooled alongside the network; "avg": area average, keeps
    per-pixel label sums); ``divergence_factor``; ``two_stage`` (Luan et al.:
    a first run without regularisation, then one with it from that result);
    ``tv_weight``; ``matting_eps`` / ``matting_radius`` (Levin's Laplacian);
    ``poisson_lambda`` (screened Poisson post-process strength, pixels^2);
    ``affine_radius`` / ``affine_edge`` (the ``local_affine`` post-process: radius of
    its bilateral averaging, pixels, and its range sigma, [0, 1] units; Luan et al.'s
    ``-f_radius 15 -f_edge 0.01``); ``style_normalization`` (see STYLE_NORMALIZATIONS).

    Time-to-quality options (this project's, not in the paper; off by default):
    ``pyramid_levels`` (1: one level at full size, the paper; L > 1: a coarse-to-fine
    schedule over L octaves, :func:`pyramid_sizes`, :func:`_stylize_pyramid`);
    ``level_iterations`` (evaluations per level, coarsest first, L values; None:
    ``iterations`` at every level); ``plateau_window`` / ``plateau_tol`` (0: off; W > 0:
    stop, reason "plateau", once the best loss fell by less than ``plateau_tol`` of
    itself over the last W evaluations, :func:`plateaued`; per level in a pyramid).
    """

    content_weight: float = 1.0
    style_weight: float = 1e7
    similarity_weight: float = 3.0
    regularization_weight: float = 1e4
    tv_weight: float = 0.0
    segmentation: str = "soft"
    use_similarity: bool = True
    use_regularization: bool = False
    postprocess: str = "recursive_filter"
    rf_sigma_s: float = DEFAULT_SIGMA_S
    rf_sigma_r: float = DEFAULT_SIGMA_R
    rf_iterations: int = 3
    poisson_lambda: float = DEFAULT_POISSON_LAMBDA
    affine_radius: int = local_affine.DEFAULT_RADIUS
    affine_edge: float = local_affine.DEFAULT_EDGE
    smooth_lambda: float = DEFAULT_SMOOTH_LAMBDA
    content_layers: tuple[str, ...] = ("conv2_2",)
    style_layers: tuple[str, ...] = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1")
    similarity_layers: tuple[str, ...] = ("conv1_1", "conv1_2", "conv2_1")
    mask_downsample: str = "max"
    style_normalization: str = "authors"
    matting_eps: float = 1e-7
    matting_radius: int = 1
    optimizer: str = "lbfgs"
    lr: float = 0.1
    iterations: int = 500
    divergence_factor: float = 1e3
    divergence_patience: int = 50
    lbfgs_history: int = 100
    two_stage: bool = False
    seed: int = 0
    device: str = "auto"
    weights: str = "imagenet"
    weights_convention: str = "auto"
    init: str = "content"
    pyramid_levels: int = 1
    level_iterations: tuple[int, ...] | None = None
    plateau_window: int = 0
    plateau_tol: float = 1e-3

    def __post_init__(self) -> None:
        for name in ("content_weight", "style_weight", "similarity_weight", "regularization_weight", "tv_weight"):
            check_number(name, getattr(self, name), low=0)
        check_choice("segmentation", self.segmentation, SEGMENTATION_MODES)
        postprocess_steps(self.postprocess)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("mask_downsample", self.mask_downsample, ("max", "avg"))
        check_choice("style_normalization", self.style_normalization, STYLE_NORMALIZATIONS)
        check_choice("init", self.init, INITS)
        check_number("rf_sigma_s", self.rf_sigma_s, low=0, low_inclusive=False)
        check_number("rf_sigma_r", self.rf_sigma_r, low=0, low_inclusive=False)
        check_int("rf_iterations", self.rf_iterations, low=1, high=20)
        check_number("poisson_lambda", self.poisson_lambda, low=0)
        check_int("affine_radius", self.affine_radius, low=1, high=100)
        check_number("affine_edge", self.affine_edge, low=0, low_inclusive=False)
        check_number("smooth_lambda", self.smooth_lambda, low=0)
        check_number("matting_eps", self.matting_eps, low=0, low_inclusive=False)
        check_int("matting_radius", self.matting_radius, low=1, high=5)
        check_number("lr", self.lr, low=0, low_inclusive=False)
        check_int("iterations", self.iterations, low=1)
        check_number("divergence_factor", self.divergence_factor, low=1, low_inclusive=False)
        check_int("divergence_patience", self.divergence_patience, low=1)
        check_int("lbfgs_history", self.lbfgs_history, low=1, high=1000)
        check_int("seed", self.seed, low=0)
        self._check_schedule()
        if not isinstance(self.weights, str) or not self.weights:
            raise PhotostyleError(f"weights must be one of {', '.join(NAMED_WEIGHTS)} or a file path, "
                                  f"got {self.weights!r}")
        check_choice("weights_convention", self.weights_convention, ("auto", "torch", "caffe"))
        if not isinstance(self.device, str):
            raise PhotostyleError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {self.device!r}")
        for name in ("content_layers", "style_layers", "similarity_layers"):
            layers = getattr(self, name)
            if isinstance(layers, str) or not all(isinstance(n, str) for n in layers):
                raise PhotostyleError(f"{name} must be a tuple of layer names, got {layers!r}")
            object.__setattr__(self, name, tuple(layers))
            bad = [n for n in layers if n not in LAYER_NAMES]
            if bad:
                raise PhotostyleError(f"{name}: unknown VGG-19 layer(s) {bad}; use names like conv1_1, conv2_2")
        if not self.content_layers or not self.style_layers:
            raise PhotostyleError("content_layers and style_layers need at least one layer each")

    def _check_schedule(self) -> None:
        """The coarse-to-fine and plateau fields (see the class docstring)."""
        check_int("pyramid_levels", self.pyramid_levels, low=1, high=8)
        if self.level_iterations is not None:
            budgets = self.level_iterations
            if isinstance(budgets, (str, bytes)) or not hasattr(budgets, "__len__") \
                    or len(budgets) != self.pyramid_levels:
                raise PhotostyleError(f"level_iterations must give one evaluation budget per level "
                                      f"({self.pyramid_levels} for pyramid_levels={self.pyramid_levels}), coarsest "
                                      f"first, got {budgets!r}; or leave it None for iterations at every level")
            object.__setattr__(self, "level_iterations",
                               tuple(check_int("level_iterations", n, low=1) for n in budgets))
        if self.pyramid_levels > 1 and self.two_stage:
            raise PhotostyleError("pyramid_levels > 1 and two_stage cannot be combined; pick one schedule "
                                  "(pyramid_levels=1 for Luan et al.'s two stages)")
        check_int("plateau_window", self.plateau_window, low=0)
        check_number("plateau_tol", self.plateau_tol, low=0)

    @property
    def uses_pyramid(self) -> bool:
        """True when the run follows a per-level schedule (:func:`_stylize_pyramid`)."""
        return self.pyramid_levels > 1 or self.level_iterations is not None

    @property
    def uses_masks(self) -> bool:
        return self.segmentation != "none"

    def replace(self, **changes: Any) -> "TransferConfig":
        """A copy with some fields changed (validated again)."""
        unknown = [k for k in changes if k not in {f.name for f in dataclasses.fields(self)}]
        if unknown:
            raise PhotostyleError(f"unknown TransferConfig field(s) {unknown}")
        return dataclasses.replace(self, **changes)

    def all_layers(self) -> tuple[str, ...]:
        used = set(self.content_layers) | set(self.style_layers)
        if self.use_similarity and self.similarity_weight > 0:
            used |= set(self.similarity_layers)
        return tuple(n for n in LAYER_NAMES if n in used)


@dataclass(frozen=True)
class TransferResult:
    """What one run produced.

    Attributes:
        image: (1, 3, H, W) float32 in [0, 1] on the CPU, after post-processing.
        raw_image: the optimised image before post-processing.
        losses: one row per loss evaluation: iteration, total, content, style,
            similarity, regularization, tv (weighted terms), seconds since start.
        best_iteration: iteration (1-based) whose image was kept.
        stop_reason: "iterations", "converged", "diverged: ...", "plateau", "interrupted" (Ctrl-C),
            "stopped by user" (:class:`StopRun`).
        timings: seconds -- setup (targets, Laplacian), optimise, postprocess,
            total, per_step (optimise / evaluations).
        config: the TransferConfig used.
        weights: provenance of the VGG weights (e.g. "random (seed 0)").
        device: where the optimisation ran ("cpu", "cuda:0", ...).
        labels: mask labels used ((), when no masks).
        notes: remarks recorded during the run (e.g. labels dropped).
        device_name: the GPU's name, or the CPU and its threads: what the timings were measured on.
    """

    image: torch.Tensor
    raw_image: torch.Tensor
    losses: pd.DataFrame
    best_iteration: int
    stop_reason: str
    timings: dict[str, float]
    config: TransferConfig
    weights: str
    device: str
    labels: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    device_name: str = ""
    network: dict[str, Any] = field(default_factory=dict)

    @property
    def random_weights(self) -> bool:
        return self.weights.startswith("random")

    @property
    def stand_in_weights(self) -> bool:
        """True for the trained stand-in network (hed-vgg16), not the paper's ImageNet VGG-19."""
        return self.network.get("kind") == "stand-in"

    @property
    def weights_warning(self) -> str | None:
        """The banner for artefacts of this run (random or stand-in weights), else None."""
        from photostyle_lib.io.images import RANDOM_WEIGHTS_BANNER, STAND_IN_BANNER
        if self.random_weights:
            return RANDOM_WEIGHTS_BANNER
        return STAND_IN_BANNER if self.stand_in_weights else None

    def metadata(self, **extra: Any) -> dict[str, Any]:
        """JSON-ready provenance: parameters, weights, timings, stop reason, versions, git revision."""
        best = self.losses.loc[self.losses["iteration"] == self.best_iteration]
        md = base_metadata()
        md.update({
            "config": self.config, "weights": self.weights, "random_weights": self.random_weights,
            "stand_in_weights": self.stand_in_weights, "weights_warning": self.weights_warning,
            "network": self.network, "weights_choice": self.network.get("weights_choice"),
            "device": self.device, "device_name": self.device_name, "labels": list(self.labels),
            "stop_reason": self.stop_reason,
            "best_iteration": self.best_iteration, "evaluations": int(len(self.losses)),
            "best_loss": best.drop(columns=["seconds"]).iloc[0].to_dict() if len(best) else None,
            "timings": self.timings, "size": list(self.image.shape[-2:]), "notes": list(self.notes),
        })
        md.update(extra)
        return md


def feature_extractor(weights: str, layers: tuple[str, ...], seed: int = 0, convention: str = "auto") -> VGGFeatures:
    """A VGGFeatures for ``weights`` and ``layers``, built once and reused.

    The reuse key is explicit: for "random" the seed; for "imagenet" the file
    it resolves to ($PHOTOSTYLE_VGG_WEIGHTS or torch hub's cache) with its
    size and modification time; for a path, the same. Changing the variable
    or replacing the file therefore builds a new network. The network is
    moved to the run's device by :func:`stylize`.
    """
    key = weights_identity(weights, seed, convention)
    return _cached_extractor(key, weights, tuple(layers), int(seed) if str(weights).startswith("random") else 0,
                             convention)


@functools.lru_cache(maxsize=4)
def _cached_extractor(key: tuple, weights: str, layers: tuple[str, ...], seed: int, convention: str) -> VGGFeatures:
    return VGGFeatures(weights, layers, seed=seed, convention=convention)


class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: ``TransferResult.stop_reason`` of a run ended by :class:`StopRun` (e.g. an app's Stop button).
STOPPED_BY_USER = "stopped by user"


class StopRun(Exception):
    """Raised by a ``callback`` or ``image_callback`` of :func:`stylize` to end the run cleanly.

    The evaluation that raised it still counts (its loss row is kept and its
    image can become the best); then the run stops, the best image so far is
    post-processed and returned with ``stop_reason == STOPPED_BY_USER``. A
    cooperative stop for callers on another thread, where Ctrl-C cannot reach.
    """


def _check_mask_shape(name: str, mask: torch.Tensor, image: torch.Tensor) -> None:
    """Masks may be at another resolution than their image, but not another shape (a wrong file)."""
    mh, mw = mask.shape[-2:]
    ih, iw = image.shape[-2:]
    if abs(mh / mw - ih / iw) > 0.02 * (ih / iw) + 1.0 / min(mw, iw):
        raise PhotostyleError(f"the {name} mask is {mh}x{mw} (HxW) but the {name} image is {ih}x{iw}: "
                              f"their aspect ratios differ, so the mask belongs to another image; "
                              f"give the {name} image's own mask")


def _layer_masks(content: torch.Tensor, style: torch.Tensor, cfg: TransferConfig, content_size: tuple[int, int],
                 style_size: tuple[int, int], device: torch.device,
                 label_weights: dict[str, torch.Tensor]) -> tuple[dict[str, MaskIndex], dict[str, MaskIndex]]:
    """Content and style masks at each style layer's resolution, prepared for masked Grams.

    With ``style_normalization="authors"`` each layer's stacks gain the pair labels of
    :func:`losses.authors_label_masks` (their loss weights go to ``label_weights``); with
    ``"luan"`` each label's weight is the mean of its content mask at the layer
    (:func:`losses.luan_label_weights`).
    """
    out, sty = {}, {}
    for name in cfg.style_layers:
        mc = resize_masks(content, layer_size(name, *content_size), cfg.mask_downsample)
        ms = resize_masks(style, layer_size(name, *style_size), cfg.mask_downsample)
        if cfg.style_normalization == "authors":
            mc, ms, label_weights[name] = losses.authors_label_masks(mc, ms)
            label_weights[name] = label_weights[name].to(device)
        elif cfg.style_normalization == "luan":
            label_weights[name] = losses.luan_label_weights(mc).to(device)
        out[name] = MaskIndex.from_masks(mc.to(device))
        sty[name] = MaskIndex.from_masks(ms.to(device))
    return out, sty


def _mask_arrays(masks: SemanticMasks | None, image: torch.Tensor, style: torch.Tensor
                 ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Masks as (C, H, W) / (C, Hs, Ws) numpy stacks at the two images' sizes (area-averaged), or (None, None)."""
    if masks is None:
        return None, None
    m = masks.resized(tuple(image.shape[-2:]), tuple(style.shape[-2:]), "avg")
    return m.content.cpu().numpy(), m.style.cpu().numpy()


def _reinhard_start(content: torch.Tensor, style: torch.Tensor, masks: SemanticMasks | None) -> torch.Tensor:
    """``init="reinhard"``: the content recoloured per region (baselines.masked_reinhard), (1, 3, H, W)."""
    cm, sm = _mask_arrays(masks, content, style)
    recoloured = baselines.masked_reinhard(tensor_to_array(content), tensor_to_array(style), cm, sm)
    return array_to_tensor(recoloured).to(content.device, torch.float32)


def stylize(content: torch.Tensor, style: torch.Tensor, config: TransferConfig | None = None, *,
            masks: SemanticMasks | None = None, content_masks: torch.Tensor | None = None,
            style_masks: torch.Tensor | None = None, extractor: VGGFeatures | None = None,
            progress: bool = True, init: torch.Tensor | None = None,
            callback: Callable[[int, dict[str, float]], None] | None = None,
            image_callback: Callable[[int, torch.Tensor], None] | None = None) -> TransferResult:
    """Transfer the style of ``style`` onto ``content``.

    Args:
        content: (1, 3, H, W) float in [0, 1].
        style: (1, 3, Hs, Ws) float in [0, 1]; any size.
        config: a TransferConfig (default: the ``full`` preset's settings).
        masks: aligned SemanticMasks (gold, hard or soft), at any resolution:
            they are resized to the images and to each layer. Required unless
            ``config.segmentation == "none"`` (then ignored).
        content_masks, style_masks: alternatively, raw aligned (C, H, W) stacks.
        extractor: a VGGFeatures to reuse (must cover the config's layers);
            default: built from ``config.weights``.
        progress: show a tqdm progress bar.
        init: starting image (default: the content, as the paper's code).
        callback: called after each evaluation with (iteration, loss terms).
        image_callback: called after each evaluation with (iteration, the evaluated image):
            (1, 3, H, W) in [0, 1] on the run's device, before any post-process; a view the
            optimiser goes on changing -- copy what you keep (snapshots, live previews).
            Either callback may raise :class:`StopRun` to end the run (see there).
    Returns:
        TransferResult; Ctrl-C (KeyboardInterrupt) ends the run early and
        still returns the best image so far (stop_reason "interrupted"); so
        does :class:`StopRun` (stop_reason :data:`STOPPED_BY_USER`). A two-stage
        run stopped in its first stage runs no second stage: its first stage's
        best image is post-processed and returned.
        With ``config.pyramid_levels > 1`` the run is the coarse-to-fine schedule of
        :func:`_stylize_pyramid` (callbacks numbered across levels, a ``level`` column).
    """
    cfg = config or TransferConfig()
    content = as_image_tensor("content", content, min_side=16)
    style = as_image_tensor("style", style, min_side=16)
    if masks is None and (content_masks is not None or style_masks is not None):
        if content_masks is None or style_masks is None:
            raise PhotostyleError("give both content_masks and style_masks, or neither")
        masks = SemanticMasks(content=content_masks, style=style_masks,
                              labels=tuple(f"label{i}" for i in range(content_masks.shape[0])), kind="user")
    notes: list[str] = []
    if cfg.uses_masks and masks is None:
        raise PhotostyleError(
            f"this configuration uses {cfg.segmentation} segmentation but no masks were given; pass masks= "
            "(gold: masks.load_gold_masks, segmenter: segmentation.semantic_masks) or use "
            "segmentation='none' (preset no_segmentation)")
    if not cfg.uses_masks and masks is not None:
        notes.append("masks given but ignored: segmentation='none'")
        masks = None
    if masks is not None:
        _check_mask_shape("content", masks.content, content)
        _check_mask_shape("style", masks.style, style)
    if cfg.uses_pyramid:
        return _stylize_pyramid(content, style, cfg, masks=masks, extractor=extractor, progress=progress, init=init,
                                callback=callback, image_callback=image_callback, notes=tuple(notes))
    if cfg.two_stage and cfg.use_regularization:
        # Luan et al.'s schedule: ``iterations`` evaluations per stage, the second
        # starting from the first's result; iterations are numbered across both.
        first = stylize(content, style, cfg.replace(use_regularization=False, two_stage=False, postprocess="none"),
                        masks=masks, extractor=extractor, progress=progress, init=init, callback=callback,
                        image_callback=image_callback)
        if first.stop_reason == STOPPED_BY_USER:
            return dataclasses.replace(first, image=apply_postprocess(first.raw_image, content.to("cpu"), cfg,
                                                                   style=style, masks=masks),
                                       losses=first.losses.assign(stage=1), config=cfg,
                                       notes=first.notes + ("stage 2 not run: stopped by user in stage 1",))
        offset = len(first.losses)
        shifted = None if callback is None else (lambda it, row: callback(it + offset, row))
        shifted_image = None if image_callback is None else (lambda it, im: image_callback(it + offset, im))
        second = stylize(content, style, cfg.replace(two_stage=False), masks=masks, extractor=extractor,
                         progress=progress, init=first.raw_image, callback=shifted, image_callback=shifted_image)
        timings = {k: first.timings.get(k, 0.0) + second.timings.get(k, 0.0) for k in second.timings}
        timings["per_step"] = timings["optimise"] / max(offset + len(second.losses), 1)
        table = pd.concat([first.losses.assign(stage=1),
                           second.losses.assign(stage=2, iteration=second.losses["iteration"] + offset)],
                          ignore_index=True)
        return dataclasses.replace(second, losses=table, timings=timings, config=cfg,
                                   best_iteration=second.best_iteration + offset,
                                   notes=second.notes + (f"stage 1 stopped: {first.stop_reason}",))

    t_start = time.perf_counter()
    device = resolve_device(cfg.device)
    layers = cfg.all_layers()
    if extractor is None:
        extractor = feature_extractor(cfg.weights, layers, cfg.seed, cfg.weights_convention)
    missing = [n for n in layers if n not in extractor.layers]
    if missing:
        raise PhotostyleError(f"the given extractor lacks layers {missing}; build VGGFeatures with {layers}")
    # Channels-last convolutions are about 25% faster on CPUs (oneDNN), and the masked
    # Grams then gather pixel rows without a copy; elsewhere keep torch's default.
    vgg = extractor.to(device).use_channels_last(device.type == "cpu")
    if device.type == "cpu":
        keep_freed_memory()  # large tensors reused instead of page-faulted in every step (allocator)
    content = content.to(device, torch.float32)
    style = style.to(device, torch.float32)
    h, w = content.shape[-2:]
    use_sim = cfg.use_similarity and cfg.similarity_weight > 0

    with torch.no_grad():
        c_feats = vgg(content)
        s_feats = vgg(style)
        norms: dict[str, torch.Tensor] = {}
        label_weights: dict[str, torch.Tensor] = {}
        if masks is not None:
            m = masks.resized((h, w), tuple(style.shape[-2:]), "avg")
            out_index, sty_index = _layer_masks(m.content, m.style, cfg, (h, w), tuple(style.shape[-2:]), device,
                                                label_weights)
            if cfg.style_normalization == "authors":
                num = m.content.shape[0]
                style_targets = {n: losses.authors_masked_grams(s_feats[n], sty_index[n], num)
                                 for n in cfg.style_layers}
                for n in cfg.style_layers:
                    c_l, (h_l, w_l) = c_feats[n].shape[1], layer_size(n, h, w)
                    norms[n] = torch.full((out_index[n].num_labels,), float(num * c_l * h_l * w_l),
                                          dtype=torch.float64, device=device)
                valid = {}
            elif cfg.style_normalization == "luan":
                style_targets = {n: losses.luan_masked_grams(s_feats[n], sty_index[n]) for n in cfg.style_layers}
                for n in cfg.style_layers:
                    norms[n] = float(c_feats[n].shape[1]) * out_index[n].sums.to(torch.float64)
                valid = {}  # their rule: a label empty in the style pulls its content region's Gram to 0
            else:
                style_targets = {n: losses.masked_gram_matrices(s_feats[n], sty_index[n]) for n in cfg.style_layers}
                valid = {n: ((out_index[n].areas > 0) & (sty_index[n].areas > 0)).float() for n in cfg.style_layers}
        else:
            out_index = {}
            style_targets = {n: losses.gram_matrix(s_feats[n]).unsqueeze(0) for n in cfg.style_layers}
            valid = {}
        # One fused loss node per layer in use (layer_loss): the same values as
        # the losses module's terms, with gradients added in place.
        layer_terms = {}
        for n in layers:
            layer_terms[n] = LayerTerms(
                content_target=c_feats[n].detach() if n in cfg.content_layers else None,
                content_weight=cfg.content_weight,
                style_target=style_targets.get(n), style_index=out_index.get(n), style_valid=valid.get(n),
                style_weight=cfg.style_weight, style_norm=norms.get(n), style_label_weights=label_weights.get(n),
                similarity_target=c_feats[n].detach() if use_sim and n in cfg.similarity_layers else None,
                similarity_weight=cfg.similarity_weight if use_sim else 0.0)
        del c_feats, s_feats

    lap = None
    if cfg.use_regularization and cfg.regularization_weight > 0:
        L = matting.cached_matting_laplacian(tensor_to_array(content), eps=cfg.matting_eps,
                                             radius=cfg.matting_radius)
        lap = matting.laplacian_to_torch(L, device=device, dtype=torch.float32)

    if init is not None:
        start = init.to(device, torch.float32)
    elif cfg.init == "reinhard":
        start = _reinhard_start(content, style, masks)
    else:
        start = content
    if tuple(start.shape) != tuple(content.shape):
        raise PhotostyleError(f"init has shape {tuple(start.shape)} but content {tuple(content.shape)}")
    # contiguous: an init made by a permute (e.g. from an (H, W, 3) array) is a strided view,
    # and the optimisers work on x's flat storage.
    x = start.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    t_setup = time.perf_counter() - t_start

    rows: list[dict[str, float]] = []
    bests: list[float] = []  # the best loss after each evaluation (plateau stop)
    high = {"count": 0}  # consecutive evaluations far above the best (divergence guard)
    clamp_in_closure = cfg.optimizer != "projected_lbfgs"
    best = {"loss": math.inf, "image": x.detach().clone(), "iteration": 0}
    t_opt = time.perf_counter()
    bar = tqdm(total=cfg.iterations, desc="stylize", disable=not progress, leave=False)

    collected: list[torch.Tensor] = []

    def make_tap(terms: LayerTerms, apply_relu: bool) -> Callable[[torch.Tensor], torch.Tensor]:
        def tap(features: torch.Tensor) -> torch.Tensor:
            features, values = layer_losses(features, terms, apply_relu)
            collected.append(values)
            return features
        tap.applies_relu = apply_relu  # type: ignore[attr-defined]
        return tap

    # A tapped convolution followed by an untapped ReLU hands that ReLU to its
    # loss node, which fuses the ReLU's backward with the terms' gradients.
    computed = vgg.names
    taps = {}
    for n, t in layer_terms.items():
        i = computed.index(n)
        relu_next = i + 1 < len(computed) and computed[i + 1].startswith("relu") and computed[i + 1] not in layer_terms
        taps[n] = make_tap(t, relu_next)

    def evaluate() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if clamp_in_closure:
            # the paper's code: x is clamped behind the optimiser's back (see the
            # "projected_lbfgs" optimizer for why that breaks L-BFGS's curvature pairs)
            with torch.no_grad():
                x.clamp_(0.0, 1.0)
        collected.clear()
        vgg(x, taps=taps)
        values = torch.stack(collected).sum(0)
        terms: dict[str, torch.Tensor] = {"content": values[0], "style": values[1]}
        if use_sim:
            terms["similarity"] = values[2]
        if lap is not None:
            terms["regularization"] = cfg.regularization_weight * matting.photorealism_loss(x, lap)
        if cfg.tv_weight > 0:
            terms["tv"] = cfg.tv_weight * losses.total_variation(x)
        total = sum(terms.values())
        return total, terms

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        total, terms = evaluate()
        # all values in one transfer from the device (one wait on a GPU, not one per term)
        numbers = torch.stack([total.detach(), *(v.detach() for v in terms.values())]).tolist()
        value = numbers[0]
        it = len(rows) + 1
        row = {"iteration": it, "total": value, **dict(zip(terms, numbers[1:])),
               "seconds": time.perf_counter() - t_opt}
        rows.append(row)
        bar.update(1)
        if it % 10 == 0 or it == 1:
            bar.set_postfix(loss=f"{value:.4g}")
        stop_requested = False
        try:
            if callback is not None:
                callback(it, row)
            if image_callback is not None:
                image_callback(it, x.detach())
        except StopRun:
            stop_requested = True  # honoured below, once this evaluation has counted for the best image
        if not math.isfinite(value):
            raise _Stop(f"diverged: loss became {value} at iteration {it}")
        if value > cfg.divergence_factor * best["loss"] and best["loss"] > 0:
            high["count"] += 1
            if high["count"] >= cfg.divergence_patience:
                raise _Stop(f"diverged: loss above {cfg.divergence_factor:.3g}x the best {best['loss']:.4g} for "
                            f"{high['count']} evaluations (iteration {it}: {value:.4g})")
        else:
            high["count"] = 0
        if value < best["loss"]:
            best.update(loss=value, image=x.detach().clone(), iteration=it)
        if stop_requested:
            raise _Stop(STOPPED_BY_USER)
        if cfg.plateau_window:
            bests.append(best["loss"])
            if plateaued(bests, cfg.plateau_window, cfg.plateau_tol):
                raise _Stop("plateau")
        total.backward()
        if it >= cfg.iterations:
            raise _Stop("iterations")
        return total

    if cfg.optimizer == "lbfgs":
        # torch.optim.LBFGS's algorithm, its direction computed without waits for a GPU (lbfgs.py)
        optimizer = LBFGS([x], lr=cfg.lr, max_iter=20, history_size=100,
                          tolerance_grad=0.0, tolerance_change=0.0)
    elif cfg.optimizer == "adam":
        optimizer = torch.optim.Adam([x], lr=cfg.lr)
    else:
        optimizer = _NoGrad([x])
    reason = "iterations"
    try:
        stalled = 0
        if cfg.optimizer == "projected_lbfgs":
            reason = projected_lbfgs(x, closure, history=cfg.lbfgs_history)
        while cfg.optimizer != "projected_lbfgs":
            before = len(rows)
            optimizer.step(closure)
            if cfg.optimizer == "lbfgs" and len(rows) - before <= 1:
                stalled += 1
                if stalled >= 3:
                    reason = "converged"
                    break
            else:
                stalled = 0
    except _Stop as stop:
        reason = stop.reason
    except KeyboardInterrupt:
        reason = "interrupted"
    finally:
        bar.close()
    t_optimise = time.perf_counter() - t_opt
    if best["iteration"] == 0:
        if reason == "interrupted":  # Ctrl-C before the first evaluation finished: nothing to return
            raise KeyboardInterrupt
        raise PhotostyleError("the first loss evaluation was not finite; check the inputs and the loss weights "
                              "(a weight of 1e30 overflows float32)")

    raw = best["image"].detach().clamp(0, 1).to("cpu")
    t_post = time.perf_counter()
    final = apply_postprocess(raw, content.to("cpu"), cfg, style=style, masks=masks)
    t_post = time.perf_counter() - t_post
    table = pd.DataFrame(rows, columns=["iteration", "total", "content", "style", "similarity",
                                        "regularization", "tv", "seconds"]).fillna(0.0)
    evals = max(len(rows), 1)
    timings = {"setup": t_setup, "optimise": t_optimise, "postprocess": t_post,
               "total": time.perf_counter() - t_start, "per_step": t_optimise / evals}
    return TransferResult(image=final, raw_image=raw, losses=table, best_iteration=int(best["iteration"]),
                          stop_reason=reason, timings=timings, config=cfg, weights=vgg.weights_label,
                          device=str(device), device_name=device_description(device), network=vgg.describe(),
                          labels=masks.labels if masks is not None else (),
                          notes=tuple(notes))


def plateaued(best_losses: list[float], window: int, tol: float) -> bool:
    """The plateau stop: True once the best loss fell by at most ``tol`` of itself over the last
    ``window`` evaluations.

    ``best_losses[i]`` is the lowest loss of evaluations 1..i+1 (non-increasing). With ``b`` that
    list, the rule is ``b[-window-1] - b[-1] <= tol * |b[-window-1]|``: a relative change, so it does
    not depend on the loss's units (which change with the weights, the network and the image size).
    Not in the paper (its runs have a fixed count); rejected line-search trials count as evaluations.
    """
    if window <= 0 or len(best_losses) <= window:
        return False
    before, now = best_losses[-window - 1], best_losses[-1]
    return before - now <= tol * abs(before)


def pyramid_sizes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """(H, W) of each level of the coarse-to-fine schedule, coarsest first.

    Level k of L (k = 0 the coarsest) has the long side ``round(long / 2^(L-1-k))`` -- octaves
    from 1/2^(L-1) of the long side -- and the short side scaled by the same factor (rounded,
    at least 1); the last level is (height, width) itself.
    """
    check_int("pyramid_levels", levels, low=1)
    return [_scaled((height, width), 0.5 ** (levels - 1 - k)) for k in range(levels)]


def _scaled(size: tuple[int, ...], factor: float) -> tuple[int, int]:
    h, w = int(size[0]), int(size[1])
    if factor == 1.0:
        return h, w
    long_side = max(h, w)
    s = max(1, round(long_side * factor)) / long_side
    return max(1, round(h * s)), max(1, round(w * s))


def _shifted(fn: Callable[[int, Any], None] | None, offset: int) -> Callable[[int, Any], None] | None:
    """A callback that sees iterations numbered across levels (or stages): ``it + offset``."""
    return None if fn is None else (lambda it, value: fn(it + offset, value))


def _upsampled(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(1, 3, h, w) in [0, 1] -> (1, 3, H, W), bilinear (half-pixel centres), still in [0, 1]."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return torch.nn.functional.interpolate(image, size=size, mode="bilinear", align_corners=False).clamp_(0.0, 1.0)


def _stylize_pyramid(content: torch.Tensor, style: torch.Tensor, cfg: TransferConfig, *,
                     masks: SemanticMasks | None, extractor: VGGFeatures | None, progress: bool,
                     init: torch.Tensor | None, callback: Callable[[int, dict[str, float]], None] | None,
                     image_callback: Callable[[int, torch.Tensor], None] | None,
                     notes: tuple[str, ...] = ()) -> TransferResult:
    """The coarse-to-fine schedule: ``cfg.pyramid_levels`` octaves, each one single-level :func:`stylize`.

    Level k optimises the content and the style resized by the level's factor (``pyramid_sizes``;
    antialiased bilinear, ``images.resize_tensor``) with the masks area-averaged to those sizes,
    so the style targets, the layer masks and (with the regularisation) the matting Laplacian are
    built at that level. The coarsest level starts from the requested start (``init``, else
    ``cfg.init``'s image) downsampled; every later one from the previous level's kept image
    upsampled bilinearly. ``cfg.level_iterations[k]`` evaluations per level (default ``iterations``),
    each level with its own plateau and divergence stops. The post-process runs once, on the last
    level's image at full size.

    Returns a TransferResult like :func:`stylize`'s: iterations numbered across levels (the losses
    table gains a ``level`` column, 1 = the coarsest; ``seconds`` count from the schedule's start),
    the best iteration that of the last level (losses at other sizes are not comparable), the last
    level's stop reason (earlier ones in ``notes``). A Ctrl-C in a coarse level skips the rest: the
    image kept so far is upsampled to full size and post-processed (stop reason "interrupted").
    Callbacks see the full run's iteration numbers; ``image_callback`` images have the level's size.

    Not in the paper (one level at full size), nor in Luan et al.'s code.
    """
    t_start = time.perf_counter()
    full = tuple(content.shape[-2:])
    levels = cfg.pyramid_levels
    budgets = cfg.level_iterations or (cfg.iterations,) * levels
    sizes = pyramid_sizes(*full, levels)
    style_sizes = [_scaled(tuple(style.shape[-2:]), max(hw) / max(full)) if hw != full else tuple(style.shape[-2:])
                   for hw in sizes]
    for name, (h, w) in (("content", sizes[0]), ("style", style_sizes[0])):
        if min(h, w) < 16:
            raise PhotostyleError(f"pyramid_levels={levels} brings the {name} to {h}x{w} px at the coarsest level; "
                                  f"every level needs at least 16x16 px: use fewer levels or larger images")
    if init is not None and tuple(init.shape) != tuple(content.shape):
        raise PhotostyleError(f"init has shape {tuple(init.shape)} but content {tuple(content.shape)}")
    if init is not None:
        start = init
    elif cfg.init == "reinhard":
        start = _reinhard_start(content, style, masks)
    else:
        start = content
    x = resize_tensor(start.detach().to("cpu", torch.float32).clamp(0, 1), sizes[0])
    level_cfg = cfg.replace(pyramid_levels=1, level_iterations=None, postprocess="none")
    tables, results, offsets = [], [], []
    offset = 0
    for k, (size, style_size, budget) in enumerate(zip(sizes, style_sizes, budgets)):
        if k:
            x = _upsampled(results[-1].raw_image, size)
        t_level = time.perf_counter() - t_start
        r = stylize(resize_tensor(content, size), resize_tensor(style, style_size), level_cfg.replace(iterations=budget),
                    masks=None if masks is None else masks.resized(size, style_size, "avg"), extractor=extractor,
                    progress=progress, init=x, callback=_shifted(callback, offset),
                    image_callback=_shifted(image_callback, offset))
        tables.append(r.losses.assign(iteration=r.losses["iteration"] + offset, level=k + 1,
                                      seconds=r.losses["seconds"] + t_level + r.timings["setup"]))
        results.append(r)
        offsets.append(offset)
        offset += len(r.losses)
        if r.stop_reason in ("interrupted", STOPPED_BY_USER):
            break
    last = results[-1]
    raw = _upsampled(last.raw_image, full)
    t_post = time.perf_counter()
    final = apply_postprocess(raw, content.to("cpu"), cfg, style=style, masks=masks)
    t_post = time.perf_counter() - t_post
    timings = {key: sum(r.timings[key] for r in results) for key in ("setup", "optimise")}
    timings.update({"postprocess": t_post, "total": time.perf_counter() - t_start,
                    "per_step": timings["optimise"] / max(offset, 1)})
    timings.update({f"optimise_level{k + 1}": r.timings["optimise"] for k, r in enumerate(results)})
    level_notes = [f"level {k + 1} ({h}x{w} px, {len(r.losses)} evaluations) stopped: {r.stop_reason}"
                   for k, (r, (h, w)) in enumerate(zip(results[:-1], sizes))]
    if len(results) < levels:
        level_notes.append(f"levels {len(results) + 1}-{levels} skipped: {last.stop_reason}")
    inner = [n for r in results for n in r.notes if n not in notes]
    return dataclasses.replace(last, image=final, raw_image=raw, losses=pd.concat(tables, ignore_index=True),
                               best_iteration=last.best_iteration + offsets[-1], timings=timings, config=cfg,
                               notes=tuple(notes) + tuple(dict.fromkeys(inner)) + tuple(level_notes))


class _NoGrad:
    """The optimiser interface the closure calls (zero_grad) for optimisers that live outside torch."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.params = params

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None


def apply_postprocess(image: torch.Tensor, content: torch.Tensor, cfg: TransferConfig, *,
                     style: torch.Tensor | None = None, masks: SemanticMasks | None = None) -> torch.Tensor:
    """The config's post-process steps (:func:`postprocess_steps`) on (1, 3, H, W) tensors in [0, 1].

    Returns (1, 3, H, W) float32 on the CPU. ``style`` (1, 3, Hs, Ws) and, for a run
    with masks, ``masks`` are needed by the ``colour_match`` step only.

    ``local_affine`` runs the numpy kernel on the CPU and the torch version on the run's
    device when that is a CUDA GPU (the same result up to rounding). Luan et al. smooth the
    iterate of their 1000th evaluation, unclipped; here it is the returned (best) image.
    """
    out = image.to("cpu", torch.float32).clone()
    for step in postprocess_steps(cfg.postprocess):
        out = _postprocess_step(out, content, step, cfg, style, masks)
    return out


def _postprocess_step(image: torch.Tensor, content: torch.Tensor, step: str, cfg: TransferConfig,
                      style: torch.Tensor | None = None, masks: SemanticMasks | None = None) -> torch.Tensor:
    """One post-process step (POSTPROCESS_STEP_NAMES) -> (1, 3, H, W) float32 on the CPU."""
    if step == "colour_match":
        if style is None:
            raise PhotostyleError("the colour_match post-process needs the style image (apply_postprocess(style=...))")
        cm, sm = _mask_arrays(masks if cfg.uses_masks else None, image, style)
        return array_to_tensor(baselines.masked_idt(tensor_to_array(image), tensor_to_array(style.cpu()), cm, sm,
                                                    seed=cfg.seed))
    if step == "matting_smooth":
        ref = tensor_to_array(content)
        lap = matting.cached_matting_laplacian(ref, eps=cfg.matting_eps, radius=cfg.matting_radius)
        return array_to_tensor(postprocess.matting_smooth(tensor_to_array(image), ref, cfg.smooth_lambda,
                                                          laplacian=lap))
    if step == "local_affine":
        device = resolve_device(cfg.device)
        if device.type == "cuda":
            res = local_affine.smooth_local_affine_torch(image.to(device), content.to(device), cfg.affine_radius,
                                                         cfg.affine_edge)
            return res.to("cpu", torch.float32)
    out, ref = tensor_to_array(image), tensor_to_array(content)
    if step == "local_affine":
        return array_to_tensor(local_affine.smooth_local_affine(out, ref, cfg.affine_radius, cfg.affine_edge))
    if step == "recursive_filter":
        res = postprocess.refine(out, ref, sigma_s=cfg.rf_sigma_s, sigma_r=cfg.rf_sigma_r,
                                 num_iterations=cfg.rf_iterations)
    else:
        res = postprocess.screened_poisson(out, ref, lam=cfg.poisson_lambda)
    return array_to_tensor(np.clip(res, 0.0, 1.0))
