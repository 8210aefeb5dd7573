"""What one run is given and what it returns: TransferConfig, TransferResult and their vocabulary.

The settings of a run (:class:`TransferConfig`, defaults the paper's section 4), the
choices its fields take (:data:`SEGMENTATION_MODES`, :data:`OPTIMIZERS`,
:data:`STYLE_NORMALIZATIONS`, :data:`INITS`, :data:`LEVEL_STARTS`, :data:`POSTPROCESS_STEP_NAMES` and
:func:`postprocess_steps`; which fields only the post-process reads, :data:`POSTPROCESS_FIELDS` and
:func:`same_optimisation`), what a run produced (:class:`TransferResult`), and the
cooperative stop a callback raises (:class:`StopRun`, :data:`STOPPED_BY_USER`).
Nothing here computes a loss; :mod:`photostyle_lib.engine.transfer` runs a config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from photostyle_lib.checks import check_choice, check_int, check_number
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.metadata import base_metadata
from photostyle_lib.engine.lbfgs import LINE_SEARCHES
from photostyle_lib.features.vgg import LAYER_NAMES, NAMED_WEIGHTS
from photostyle_lib.photoreal import detail, local_affine
from photostyle_lib.photoreal.postprocess import DEFAULT_POISSON_LAMBDA, DEFAULT_SIGMA_R, DEFAULT_SIGMA_S, DEFAULT_SMOOTH_LAMBDA

#: Where the masks come from: "soft" / "hard" (a segmenter's probabilities, cut at theta_s or
#: argmax), "gold" (the dataset's hand-drawn masks) or "none" (the plain Gram style loss, eq. 3).
SEGMENTATION_MODES = ("soft", "hard", "gold", "none")
#: Post-process steps: "recursive_filter": eq. (9); "screened_poisson"; "screened_poisson_luminance"
#: (the same on the luminance alone, postprocess.screened_poisson_luminance; this project's);
#: "local_affine": Luan et al.'s final SmoothLocalAffine (local_affine.smooth_local_affine);
#: "colour_match": each semantic region's colours given its style region's distribution
#: (baselines.masked_idt with the run's masks; this project's); "detail_match": each region's detail
#: contrast, octave by octave, scaled to its style region's (detail.match_region_detail with the run's
#: masks; this project's); "matting_smooth": (Id + smooth_lambda L) O = S with the content's matting
#: Laplacian (postprocess.matting_smooth; this project's). ``postprocess`` is one step, "none", or
#: steps joined by "+" and run left to right, e.g. "recursive_filter+colour_match+matting_smooth".
POSTPROCESS_STEP_NAMES = ("recursive_filter", "screened_poisson", "screened_poisson_luminance", "local_affine",
                          "colour_match", "detail_match", "matting_smooth")
#: The config fields each post-process step reads and the optimisation never does (the steps
#: also read ``matting_eps`` / ``matting_radius``, ``seed``, ``segmentation`` and ``device``,
#: which the optimisation reads too, so they are not listed).
POSTPROCESS_STEP_FIELDS: dict[str, tuple[str, ...]] = {
    "recursive_filter": ("rf_sigma_s", "rf_sigma_r", "rf_iterations"),
    "screened_poisson": ("poisson_lambda",),
    "screened_poisson_luminance": ("poisson_lambda",),
    "local_affine": ("affine_radius", "affine_edge"),
    "colour_match": (),
    "detail_match": ("detail_bands", "detail_max_gain"),
    "matting_smooth": ("smooth_lambda",),
}
#: Every field only the post-process reads: two configs equal but for these share their
#: optimisation (one run's raw image serves both; ``studies/quality.py`` derives presets this way).
POSTPROCESS_FIELDS: tuple[str, ...] = ("postprocess",) + tuple(dict.fromkeys(
    f for step in POSTPROCESS_STEP_NAMES for f in POSTPROCESS_STEP_FIELDS[step]))


def same_optimisation(a: "TransferConfig", b: "TransferConfig") -> bool:
    """True when configs ``a`` and ``b`` differ at most in :data:`POSTPROCESS_FIELDS`.

    Such runs optimise the same image: the post-process of one can be applied to the
    other's raw (pre-post-process) result instead of optimising again.
    """
    return a.replace(**{f: getattr(b, f) for f in POSTPROCESS_FIELDS}) == b


def postprocess_steps(postprocess: str) -> tuple[str, ...]:
    """The steps of a ``postprocess`` value, in the order they run.

    Parameters
    ----------
    postprocess : str
        "none", one of :data:`POSTPROCESS_STEP_NAMES`, or several joined by "+"
        (e.g. "recursive_filter+colour_match").

    Returns
    -------
    tuple of str
        The step names, left to right; () for "none".

    Raises
    ------
    PhotostyleError
        When ``postprocess`` is not a non-empty string or names an unknown step.
    """
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
# Line searches of "projected_lbfgs" (lbfgs.LINE_SEARCHES): "adaptive" (the default: quadratic-
# interpolation cuts, first trial twice the last accepted fraction), "interpolate", "halve" (the
# earlier engine's: t = 1, 1/2, ...; it reproduces the runs stored before the field existed).
#: Masked style loss normalisation: "authors" -- the paper's public code as its authors left it
#: (master, since their commit 91c7fb2): one C x C Gram per label, each divided by the whole map's
#: C * H * W, the MSE over the L * C * C entries, every label counted (losses.authors_masked_style_loss);
#: "authors_joint" -- their code before that commit: one joint (L*C) x (L*C) Gram with cross-label
#: blocks, divided by L * C * H * W, mean over (L*C)^2 entries (losses.joint_gram_masked_style_loss;
#: 1 / L^3 of "authors" for hard masks; kept to measure what the fix moved); "area" -- this
#: project's own (each label divided by C times its own area, summed over labels;
#: losses.masked_style_loss); "luan" -- Luan et al.'s code (each label's Gram divided by C times
#: the sum of its mask, its term weighted by the mean of its content mask at the layer, every
#: label present in the content counted; losses.luan_masked_style_loss). The label weighting is
#: part of "luan", not a separate switch: it belongs with that Gram normalisation (with "authors"
#: the area factor is already inside every Gram, divided by the whole map's size).
STYLE_NORMALIZATIONS = ("authors", "authors_joint", "area", "luan")
#: When the plain optimisers clamp x into [0, 1] (``clamp_iterates``): "evaluation" -- before every
#: loss evaluation, behind the optimiser's back (the authors' main.py before their commit 1f5b657,
#: and this engine's runs before the field existed); "step" -- after each ``optimizer.step`` of up
#: to 20 L-BFGS iterations (their final main.py). Unused by "projected_lbfgs" (every preset's).
CLAMP_AT = ("evaluation", "step")
#: The optimisation's starting image: "content" (the paper's code, and Luan et al.'s); "reinhard"
#: -- this project's: the content recoloured per semantic region (baselines.masked_reinhard with
#: the run's masks, global without masks), so the losses refine matched colours instead of
#: pulling them out of the content's.
#: "mean_noise" -- Luan et al.'s first stage (neuralstyle_seg.lua: ``randn * 1e-4`` in their
#: mean-subtracted Caffe input, i.e. the ImageNet mean colour plus noise of 1e-4 / 256).
INITS = ("content", "reinhard", "mean_noise")
#: How a coarse-to-fine level starts from the coarser level's result
#: (:func:`photostyle_lib.engine.schedule.level_start`): "bilinear" (the result upsampled)
#: or "content_detail" (upsampled, plus the content's band the coarser level cannot hold).
LEVEL_STARTS = ("bilinear", "content_detail")


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
    (loss evaluations, >= 1); ``optimizer`` ("lbfgs" | "projected_lbfgs" | "adam");
    ``line_search`` (projected_lbfgs only: "adaptive" | "interpolate" | "halve",
    :data:`LINE_SEARCHES`); ``curvature_cosine`` (projected_lbfgs only: a curvature
    pair (s, y) is stored only when s^T y > curvature_cosine |s| |y|, in [0, 1);
    0 reproduces the earlier engine, :func:`~photostyle_lib.engine.lbfgs.keeps_pair`);
    ``clamp_iterates`` ("lbfgs" and "adam" only: True clamps x into [0, 1] at every
    evaluation, behind the optimiser's back, as the paper's code does; False leaves x
    unbounded while it is optimised, as Luan et al.'s code does, and only the returned
    image is clamped); ``clamp_at`` (with ``clamp_iterates``, "lbfgs" / "adam": "evaluation"
    clamps before every loss evaluation, as the authors' code before their commit 1f5b657;
    "step" clamps after each ``optimizer.step`` (up to 20 L-BFGS iterations), as their
    final main.py); ``seed``;
    ``device`` ("auto", "cpu", "cuda", "cuda:N", "mps"); ``weights`` ("imagenet",
    "random" or a state-dict path); ``mask_downsample`` ("max": the paper's
    code, max-pooled alongside the network; "avg": area average, keeps
    per-pixel label sums); ``divergence_factor``; ``two_stage`` (Luan et al.:
    a first run without regularisation, then one with it from that result);
    ``tv_weight``; ``matting_eps`` / ``matting_radius`` (Levin's Laplacian);
    ``poisson_lambda`` (screened Poisson post-process strength, pixels^2);
    ``detail_bands`` / ``detail_max_gain`` (the ``detail_match`` post-process: octaves
    matched, sigmas 1 .. 2^(bands-1) px, and the largest factor a band's contrast may
    grow or shrink by, :func:`~photostyle_lib.photoreal.detail.match_region_detail`);
    ``affine_radius`` / ``affine_edge`` (the ``local_affine`` post-process: radius of
    its bilateral averaging, pixels, and its range sigma, [0, 1] units; Luan et al.'s
    ``-f_radius 15 -f_edge 0.01``); ``style_normalization`` (see STYLE_NORMALIZATIONS).

    Time-to-quality options (this project's, not in the paper; off by default):
    ``pyramid_levels`` (1: one level at full size, the paper; L > 1: a coarse-to-fine
    schedule over L octaves, :func:`photostyle_lib.engine.schedule.pyramid_sizes`,
    :func:`photostyle_lib.engine.schedule.coarse_to_fine`);
    ``level_iterations`` (evaluations per level, coarsest first, L values; None:
    ``iterations`` at every level); ``plateau_window`` / ``plateau_tol`` (0: off; W > 0:
    stop, reason "plateau", once the best loss fell by less than ``plateau_tol`` of
    itself over the last W evaluations, :func:`photostyle_lib.engine.schedule.plateaued`;
    per level in a pyramid); ``level_start`` (how each level after the coarsest starts
    from the coarser result, one of LEVEL_STARTS,
    :func:`photostyle_lib.engine.schedule.level_start`).

    Raises
    ------
    PhotostyleError
        On construction (and :meth:`replace`) when a field is out of range or not one
        of its choices, naming the field and the values it takes.
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
    detail_bands: int = detail.DEFAULT_DETAIL_BANDS
    detail_max_gain: float = detail.DEFAULT_DETAIL_MAX_GAIN
    content_layers: tuple[str, ...] = ("conv2_2",)
    style_layers: tuple[str, ...] = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1")
    similarity_layers: tuple[str, ...] = ("conv1_1", "conv1_2", "conv2_1")
    mask_downsample: str = "max"
    style_normalization: str = "authors"
    matting_eps: float = 1e-7
    matting_radius: int = 1
    optimizer: str = "lbfgs"
    clamp_iterates: bool = True
    clamp_at: str = "evaluation"
    line_search: str = "adaptive"
    curvature_cosine: float = 1e-2
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
    level_start: str = "bilinear"

    def __post_init__(self) -> None:
        for name in ("content_weight", "style_weight", "similarity_weight", "regularization_weight", "tv_weight"):
            check_number(name, getattr(self, name), low=0)
        check_choice("segmentation", self.segmentation, SEGMENTATION_MODES)
        postprocess_steps(self.postprocess)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("clamp_at", self.clamp_at, CLAMP_AT)
        if not isinstance(self.clamp_iterates, bool):
            raise PhotostyleError(f"clamp_iterates must be True or False, got {self.clamp_iterates!r}")
        check_choice("line_search", self.line_search, LINE_SEARCHES)
        check_number("curvature_cosine", self.curvature_cosine, low=0, high=1, high_inclusive=False)
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
        check_int("detail_bands", self.detail_bands, low=1, high=8)
        check_number("detail_max_gain", self.detail_max_gain, low=1)
        check_number("matting_eps", self.matting_eps, low=0, low_inclusive=False)
        check_int("matting_radius", self.matting_radius, low=1, high=5)
        check_number("lr", self.lr, low=0, low_inclusive=False)
        check_int("iterations", self.iterations, low=1)
        check_number("divergence_factor", self.divergence_factor, low=1, low_inclusive=False)
        check_int("divergence_patience", self.divergence_patience, low=1)
        check_int("lbfgs_history", self.lbfgs_history, low=1, high=1000)
        check_int("seed", self.seed, low=0, high=2 ** 63 - 1)  # torch's generators take 64-bit seeds
        self._check_schedule()
        if not isinstance(self.weights, str) or not self.weights:
            raise PhotostyleError(f"weights must be one of {', '.join(NAMED_WEIGHTS)} or a file path, "
                                  f"got {self.weights!r}")
        check_choice("weights_convention", self.weights_convention, ("auto", "torch", "caffe"))
        if not isinstance(self.device, str):
            raise PhotostyleError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {self.device!r}")
        for name in ("content_layers", "style_layers", "similarity_layers"):
            layers = getattr(self, name)
            if isinstance(layers, str) or not isinstance(layers, (tuple, list)) \
                    or not all(isinstance(n, str) for n in layers):
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
        check_choice("level_start", self.level_start, LEVEL_STARTS)

    @property
    def uses_pyramid(self) -> bool:
        """True when the run follows a per-level schedule (:func:`photostyle_lib.engine.schedule.coarse_to_fine`)."""
        return self.pyramid_levels > 1 or self.level_iterations is not None

    @property
    def uses_masks(self) -> bool:
        """True unless ``segmentation == "none"``: the run needs masks and uses the masked losses (eqs. 6-7)."""
        return self.segmentation != "none"

    def replace(self, **changes: Any) -> "TransferConfig":
        """A copy with some fields changed (validated again).

        Raises
        ------
        PhotostyleError
            When a name is not a field, or a new value is out of range.
        """
        unknown = [k for k in changes if k not in {f.name for f in dataclasses.fields(self)}]
        if unknown:
            raise PhotostyleError(f"unknown TransferConfig field(s) {unknown}")
        return dataclasses.replace(self, **changes)

    def all_layers(self) -> tuple[str, ...]:
        """The VGG layers any term reads (content, style, and similarity when it is on), in network order."""
        used = set(self.content_layers) | set(self.style_layers)
        if self.use_similarity and self.similarity_weight > 0:
            used |= set(self.similarity_layers)
        return tuple(n for n in LAYER_NAMES if n in used)


@dataclass(frozen=True)
class TransferResult:
    """What one run produced.

    Attributes
    ----------
    image : tensor (1, 3, H, W) float32 in [0, 1], on the CPU
        The result, after post-processing.
    raw_image : tensor (1, 3, H, W) float32 in [0, 1], on the CPU
        The optimised (kept) image before post-processing.
    losses : pandas.DataFrame
        One row per loss evaluation: iteration, total, content, style, similarity,
        regularization, tv (weighted terms of eq. 10), seconds since the optimisation
        started; a two-stage run adds ``stage``, a pyramid ``level``.
    best_iteration : int >= 1
        Iteration whose image was kept.
    stop_reason : str
        "iterations", "converged", "diverged: ...", "plateau", "interrupted" (Ctrl-C),
        or :data:`STOPPED_BY_USER` (:class:`StopRun`).
    timings : dict of str to float
        Seconds: setup (targets, Laplacian), optimise, postprocess, total, per_step
        (optimise / evaluations); a pyramid adds optimise_level<k>.
    config : TransferConfig
        The config used.
    weights : str
        Provenance of the VGG weights (e.g. "random (seed 0)").
    device : str
        Where the optimisation ran ("cpu", "cuda:0", ...).
    labels : tuple of str
        Mask labels used ((), when no masks).
    notes : tuple of str
        Remarks recorded during the run (e.g. labels dropped, a stage's stop).
    device_name : str
        The GPU's name, or the CPU and its threads: what the timings were measured on.
    network : dict
        JSON-ready provenance of the network (``VGGFeatures.describe()``).
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
        """True when the network had random weights (a smoke test, not a style transfer)."""
        return self.weights.startswith("random")

    @property
    def stand_in_weights(self) -> bool:
        """True for the trained stand-in network (hed-vgg16), not the paper's ImageNet VGG-19."""
        return self.network.get("kind") == "stand-in"

    @property
    def weights_warning(self) -> str | None:
        """The banner for artefacts of this run: random or stand-in weights (warnings), the original
        VGG-19 (a note naming it), else None (torchvision's ImageNet VGG-19, the paper's)."""
        from photostyle_lib.io.images import ORIGINAL_VGG19_BANNER, RANDOM_WEIGHTS_BANNER, STAND_IN_BANNER
        if self.random_weights:
            return RANDOM_WEIGHTS_BANNER
        if self.network.get("kind") == "original":
            return ORIGINAL_VGG19_BANNER
        return STAND_IN_BANNER if self.stand_in_weights else None

    def banner(self, segmenter_random: bool = False) -> str | None:
        """The banner of everything this run made: random weights of the segmenter that made its masks
        (``segmenter_random``) are a smoke test too, so they give the random banner; else
        :attr:`weights_warning`. The one rule every door (CLI, cache, app) applies."""
        from photostyle_lib.io.images import RANDOM_WEIGHTS_BANNER
        return RANDOM_WEIGHTS_BANNER if segmenter_random else self.weights_warning

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


#: ``TransferResult.stop_reason`` of a run ended by :class:`StopRun` (e.g. an app's Stop button).
STOPPED_BY_USER = "stopped by user"


class StopRun(Exception):
    """Raised by a ``callback`` or ``image_callback`` of :func:`photostyle_lib.engine.transfer.stylize`
    to end the run cleanly.

    The evaluation that raised it still counts (its loss row is kept and its
    image can become the best); then the run stops, the best image so far is
    post-processed and returned with ``stop_reason == STOPPED_BY_USER``. A
    cooperative stop for callers on another thread, where Ctrl-C cannot reach.
    """
