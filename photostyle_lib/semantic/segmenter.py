"""The ADE20K segmenter: a pretrained model returning per-pixel class probabilities (section 3.3).

The paper segments content and style with an ADE20K model; this module loads
one (:class:`ADE20KSegmenter`, through ``transformers`` and its Hugging Face
cache, with one error naming the fix when the weights are missing) and returns
its softmax probabilities, (150, H, W), averaged over input scales as the
authors' code did (their four short sides, :data:`PAPER_SCALES`, with
``scales=PAPER_SCALES``; the default is one pass, :data:`DEFAULT_SCALES`).
Turning probabilities into masks is :mod:`photostyle_lib.semantic.cut`'s;
keeping them on disk is :mod:`photostyle_lib.semantic.cache`'s.

The default checkpoint
----------------------
:data:`DEFAULT_CHECKPOINT` is ``openmmlab/upernet-convnext-small``: OpenMMLab's
UPerNet trained on ADE20K-150 (mmsegmentation, converted by Hugging Face and
loaded by ``transformers.UperNetForSemanticSegmentation``). The paper used
CSAIL's ResNet-101 UPerNet, which is not distributed through a maintained
model hub; this checkpoint keeps the same decoder (UPerNet: pyramid pooling +
feature pyramid, 150 classes, the same label order) with a ConvNeXt-S backbone
(about 82 M parameters; its authors report about 49 single-scale mIoU on
ADE20K val, against about 43 for CSAIL's ResNet-101 UPerNet), so its
probabilities play the same role and are, if anything, better. The small
backbone keeps CPU runs to a few seconds per image
(``benchmarks/bench_segmentation.py``). Any other 150-class ADE20K checkpoint
that ``AutoModelForSemanticSegmentation`` loads (e.g.
``nvidia/segformer-b4-finetuned-ade-512-512``) can be passed as ``checkpoint``.

Preprocessing: images are normalised with ImageNet's mean and std (what both
checkpoint families were trained with; ``mean=``/``std=`` override), resized
per scale with antialiasing, and each scale's logits are upsampled back to the
image size before the softmax, as CSAIL's multi-scale test code does.

Getting the weights
-------------------
Weights come from the Hugging Face cache (``$HF_HOME/hub``, by default
``~/.cache/huggingface/hub``) or are downloaded into it. On a machine without
internet, run ``huggingface-cli download openmmlab/upernet-convnext-small`` (or
``hf download ...``) where there is internet and copy the cache over, or save the
model to a directory and pass that directory as ``checkpoint`` (or set
``$PHOTOSTYLE_SEGMENTER`` to it). Missing weights raise a PhotostyleError saying
so; there is no silent fallback. Random weights (tests, CI, timing) are only
built when asked for with ``checkpoint="random"``, and the segmenter then says
``weights == "random"``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from photostyle_lib.checks import check_int, check_number, resolve_device
from photostyle_lib.errors import PhotostyleError, require_extra
from photostyle_lib.features.vgg import IMAGENET_MEAN, IMAGENET_STD
from photostyle_lib.io.images import PathLike, as_image_tensor
from photostyle_lib.semantic.ade20k import ADE20K_LABELS, NUM_ADE20K_LABELS

#: Hub id of the model used when no checkpoint is given (see the module docstring).
DEFAULT_CHECKPOINT = "openmmlab/upernet-convnext-small"
#: Environment variable naming a checkpoint (hub id or directory) to use instead of the default.
CHECKPOINT_ENV = "PHOTOSTYLE_SEGMENTER"
#: Short sides the authors' code averaged softmax over: ``--imgSize`` default
#: ``[300, 400, 500, 600]`` in their segment.py (CSAIL's test code of the time).
PAPER_SCALES: tuple[int, ...] = (300, 400, 500, 600)
#: CSAIL's later multi-scale test setting (semantic-segmentation-pytorch's
#: ``DATASET.imgSizes``), which this project used as "the paper's" before; kept
#: for comparison, not the authors'.
CSAIL_SCALES: tuple[int, ...] = (300, 375, 450, 525, 600)
#: One pass at short side 512: the crop size the default checkpoint was trained on.
DEFAULT_SCALES: tuple[int, ...] = (512,)
#: Cap on the long side of a scaled input, as CSAIL's ``imgMaxSize``.
DEFAULT_MAX_LONG_SIDE = 1000
#: Scaled inputs are rounded to a multiple of the backbone's total stride, so the
#: feature pyramid levels line up exactly.
SIZE_MULTIPLE = 32


def architecture_config(*, tiny: bool = False) -> Any:
    """The ``transformers.UperNetConfig`` of the default checkpoint's architecture, built offline.

    ``tiny=False``: UPerNet (hidden size 512, pooling scales 1, 2, 3, 6) on
    ConvNeXt-S (depths 3-3-27-3, widths 96-192-384-768), 150 ADE20K labels --
    the architecture of ``openmmlab/upernet-convnext-small``; random weights
    built from it cost exactly what the real model costs (benchmarks).

    ``tiny=True``: the same architecture with one block per stage and 8-16
    channels (about 40 k parameters), for fast tests and CI; its head is
    initialised wider (``initializer_range=0.3``) so its random probabilities
    are peaked like a trained model's rather than uniform.

    Raises
    ------
    PhotostyleError
        If transformers (the [segmentation] extra) is not installed.
    """
    require_extra("transformers", "segmentation", "the ADE20K segmenter")
    from transformers import ConvNextConfig, UperNetConfig

    stages = ["stage1", "stage2", "stage3", "stage4"]
    id2label = dict(enumerate(ADE20K_LABELS))
    if tiny:
        backbone = ConvNextConfig(depths=[1, 1, 1, 1], hidden_sizes=[8, 8, 16, 16], out_features=stages)
        # initializer_range 0.3 (not 0.02): the random head's softmax is then peaked as a
        # trained model's is (mean top probability about 0.9, not 1/150), so soft masks of the
        # authors' pipeline at theta_s = 0.2 find labels in smoke tests.
        return UperNetConfig(backbone_config=backbone, hidden_size=16, pool_scales=[1, 2],
                             use_auxiliary_head=False, auxiliary_channels=8, id2label=id2label,
                             initializer_range=0.3)
    backbone = ConvNextConfig(depths=[3, 3, 27, 3], hidden_sizes=[96, 192, 384, 768], out_features=stages,
                              drop_path_rate=0.3)
    return UperNetConfig(backbone_config=backbone, hidden_size=512, pool_scales=[1, 2, 3, 6],
                         auxiliary_in_channels=384, id2label=id2label)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """Whether the Hugging Face hub is switched off (env vars read now, not at import)."""
    if _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE")):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - transformers depends on it
        return False
    return bool(constants.HF_HUB_OFFLINE)


def _hub_cache_dir(cache_dir: PathLike | None) -> str:
    if cache_dir is not None:
        return str(cache_dir)
    try:
        from huggingface_hub import constants
        return str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover
        return "~/.cache/huggingface/hub"


def _missing_weights_error(checkpoint: str, cache_dir: PathLike | None, offline: bool,
                           exc: BaseException) -> PhotostyleError:
    where = _hub_cache_dir(cache_dir)
    why = "the hub is switched off (HF_HUB_OFFLINE / local_files_only)" if offline else \
        "downloading them failed"
    reason = " ".join(str(exc).split())[:300]
    return PhotostyleError(
        f"segmentation weights {checkpoint!r} are not in the Hugging Face cache ({where}) and {why}: "
        f"{type(exc).__name__}: {reason}. To get them: on a machine with internet run "
        f"`huggingface-cli download {checkpoint}` (or `hf download {checkpoint}`) and copy its cache "
        "directory here (point HF_HOME at it, or pass cache_dir=); or save the model with "
        "save_pretrained() to a directory and pass that directory as checkpoint= "
        f"(or set {CHECKPOINT_ENV}=<directory>). For tests only, checkpoint='random' builds the "
        "architecture with random weights (masks are then meaningless).")


def _directory_identity(path: Path) -> str:
    """A key for a local checkpoint directory: its path and its files' sizes and times."""
    h = hashlib.sha1(str(path.resolve()).encode())
    for f in sorted(path.rglob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return f"dir:{path.resolve()}#{h.hexdigest()[:12]}"


def _config_digest(config: Any) -> str:
    d = config.to_dict()
    d.pop("transformers_version", None)
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _looks_like_path(checkpoint: str) -> bool:
    """Hub ids are ``name`` or ``owner/name``; anything else is meant as a directory."""
    return checkpoint.startswith((".", "/", "~")) or "\\" in checkpoint or checkpoint.count("/") > 1


def _load_pretrained(checkpoint: str, revision: str | None, cache_dir: PathLike | None,
                     local_files_only: bool | None) -> tuple[Any, str]:
    """Load a checkpoint (directory or hub id, cache first); return the model and its identity."""
    require_extra("transformers", "segmentation", "the ADE20K segmenter")
    from transformers import AutoModelForSemanticSegmentation

    path = Path(checkpoint).expanduser()
    if path.is_dir():
        try:
            model = AutoModelForSemanticSegmentation.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:  # any failure to read the directory is the user's to fix
            raise PhotostyleError(
                f"cannot load a segmentation model from directory {path} ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:300]}); it must hold config.json and the weights, "
                "as written by save_pretrained()") from exc
        return model, _directory_identity(path)
    if _looks_like_path(checkpoint):
        raise PhotostyleError(f"checkpoint directory {checkpoint!r} does not exist; give an existing "
                              f"directory, a hub id such as {DEFAULT_CHECKPOINT!r}, or 'random'")
    offline = hub_offline() if local_files_only is None else bool(local_files_only)
    kwargs = dict(revision=revision, cache_dir=None if cache_dir is None else str(cache_dir))
    try:
        # The cache first: no network round trip when the weights are already here.
        model = AutoModelForSemanticSegmentation.from_pretrained(checkpoint, local_files_only=True, **kwargs)
    except Exception as cached_exc:  # transformers raises OSError / ValueError / hub errors
        if offline:
            raise _missing_weights_error(checkpoint, cache_dir, True, cached_exc) from cached_exc
        try:
            model = AutoModelForSemanticSegmentation.from_pretrained(checkpoint, local_files_only=False,
                                                                     **kwargs)
        except Exception as exc:
            raise _missing_weights_error(checkpoint, cache_dir, False, exc) from exc
    commit = _cached_commit(checkpoint, revision, cache_dir)
    return model, f"{checkpoint}@{commit or revision or 'main'}"


def _cached_commit(checkpoint: str, revision: str | None, cache_dir: PathLike | None) -> str | None:
    """The commit of the cached snapshot the weights came from (part of the cache key), if known."""
    try:
        from huggingface_hub import try_to_load_from_cache
        found = try_to_load_from_cache(checkpoint, "config.json", cache_dir=cache_dir, revision=revision)
    except Exception:  # an unknown layout only costs the commit in the key
        return None
    if isinstance(found, str) and Path(found).parent.parent.name == "snapshots":
        return Path(found).parent.name
    return None


class ADE20KSegmenter:
    """A 150-class ADE20K segmentation model returning softmax probabilities.

    Parameters
    ----------
    checkpoint
        a Hugging Face hub id, a local directory saved with
        ``save_pretrained``, or ``"random"`` for random weights (tests, CI,
        timing). ``None``: ``$PHOTOSTYLE_SEGMENTER`` if set, else
        :data:`DEFAULT_CHECKPOINT`.
    device
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ...
    scales
        short sides (pixels) at which the image is segmented; softmax
        probabilities are averaged over them, as the authors' code did over
        :data:`PAPER_SCALES` (the paper profile's ``"paper-scales"``).
        ``None``: one pass at the image's own size.
    max_long_side
        cap on a scaled input's long side (pixels).
    revision
        hub revision (branch, tag or commit) to load.
    cache_dir
        Hugging Face cache directory (default: the library's, under ``$HF_HOME``).
    local_files_only
        ``True`` never touches the network; ``False`` downloads
        into the cache when the weights are missing; ``None`` (default)
        downloads unless ``HF_HUB_OFFLINE=1`` is set.
    config
        with ``checkpoint="random"`` only: the ``transformers`` config to
        build (default :func:`architecture_config`, the default checkpoint's
        architecture; ``architecture_config(tiny=True)`` for tests).
    seed
        with ``checkpoint="random"`` only: seeds the random weights.
    mean, std
        per-channel input normalisation of the checkpoint (ImageNet's).

    Attributes
    ----------
    checkpoint
        the checkpoint as resolved (hub id, directory or "random").
    weights
        ``"pretrained"`` or ``"random"`` -- metadata and figures should say which.
    identity
        a string naming the exact weights (hub id @ commit, directory
        digest, or ``random:seed=S:config=DIGEST``); part of the cache key.
    label_names
        the 150 ADE20K label names, index = output channel.

    Raises
    ------
    PhotostyleError
        weights not available (the message says how to get them),
        a checkpoint that is not a 150-class segmentation model, bad options.
    """

    def __init__(self, checkpoint: str | os.PathLike | None = None, *, device: str | torch.device = "auto",
                 scales: Sequence[int] | None = DEFAULT_SCALES, max_long_side: int = DEFAULT_MAX_LONG_SIDE,
                 revision: str | None = None, cache_dir: PathLike | None = None,
                 local_files_only: bool | None = None, config: Any = None, seed: int = 0,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        if checkpoint is None:
            checkpoint = os.environ.get(CHECKPOINT_ENV) or DEFAULT_CHECKPOINT
        if isinstance(checkpoint, os.PathLike):
            checkpoint = os.fspath(checkpoint)
        if not isinstance(checkpoint, str) or not checkpoint.strip():
            raise PhotostyleError(f"checkpoint must be a hub id, a directory or 'random', got {checkpoint!r}")
        self.scales: tuple[int, ...] | None = _check_scales(scales)
        self.max_long_side = check_int("max_long_side", max_long_side, low=SIZE_MULTIPLE)
        self.device = resolve_device(device)
        self.mean = _check_triplet("mean", mean)
        self.std = _check_triplet("std", std, positive=True)
        self.seed: int | None = None
        self.revision: str | None = revision
        if checkpoint == "random":
            self.seed = check_int("seed", seed, low=0)
            model = self._build_random(config, self.seed)
            self.weights = "random"
            self.identity = f"random:seed={self.seed}:config={_config_digest(model.config)}"
        else:
            if config is not None:
                raise PhotostyleError("config= is only used with checkpoint='random'; a pretrained "
                                      "checkpoint brings its own config")
            model, self.identity = _load_pretrained(checkpoint, revision, cache_dir, local_files_only)
            self.weights = "pretrained"
        self.checkpoint = checkpoint
        num = int(getattr(model.config, "num_labels", -1))
        if num != NUM_ADE20K_LABELS:
            raise PhotostyleError(f"checkpoint {checkpoint!r} predicts {num} classes, not ADE20K's "
                                  f"{NUM_ADE20K_LABELS}; give an ADE20K-150 segmentation checkpoint")
        # The auxiliary (FCN) head only serves the training loss; skipping it saves time.
        if getattr(model, "auxiliary_head", None) is not None:
            model.auxiliary_head = None
        model.eval().requires_grad_(False)
        self.model = model.to(self.device)
        self.label_names: tuple[str, ...] = ADE20K_LABELS

    # -- loading --------------------------------------------------------------------------

    @staticmethod
    def _build_random(config: Any, seed: int) -> Any:
        require_extra("transformers", "segmentation", "the ADE20K segmenter")
        from transformers import AutoModelForSemanticSegmentation, PretrainedConfig

        if config is None:
            config = architecture_config()
        if not isinstance(config, PretrainedConfig):
            raise PhotostyleError("config must be a transformers config (e.g. architecture_config(tiny=True)), "
                                  f"got {type(config).__name__}")
        # Seeded in a forked RNG so building a model does not disturb the caller's random stream.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            try:
                return AutoModelForSemanticSegmentation.from_config(config)
            except (ValueError, KeyError, TypeError) as exc:
                raise PhotostyleError(f"cannot build a segmentation model from config "
                                      f"{type(config).__name__}: {exc}") from exc

    # -- inference ------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """What produced the probabilities, for run metadata and cache keys."""
        return {"checkpoint": self.checkpoint, "weights": self.weights, "identity": self.identity,
                "seed": self.seed, "scales": None if self.scales is None else list(self.scales),
                "max_long_side": self.max_long_side, "mean": list(self.mean), "std": list(self.std)}

    def input_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """The (h, w) the model sees for an H x W image, one per scale."""
        if self.scales is None:
            return [scaled_input_size(height, width, None, self.max_long_side)]
        return [scaled_input_size(height, width, s, self.max_long_side) for s in self.scales]

    def probabilities(self, image: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Softmax class probabilities of ``image`` at its own size.

        Parameters
        ----------
        image : torch.Tensor or numpy.ndarray
            (1, 3, H, W) tensor or (H, W, 3) array, float in [0, 1] (as
            :func:`photostyle_lib.io.images.load_image` returns).

        Returns
        -------
        torch.Tensor
            (150, H, W) float32 CPU tensor; each pixel's values sum to 1. For each
            scale the logits are upsampled (bilinear) to H x W and softmaxed;
            the softmaxes are averaged over scales (as the authors' code averages
            its decoder's softmax over its ``--imgSize`` list). To reuse them
            across runs, go through
            :meth:`photostyle_lib.semantic.cache.SegmentationCache.probabilities`.

        Raises
        ------
        PhotostyleError
            ``image`` is not an RGB image of that shape and range.
        """
        return self._compute(as_image_tensor("image", image).cpu())

    @torch.no_grad()
    def _compute(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = x.to(self.device, torch.float32)
        mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)
        sizes = self.input_sizes(h, w)
        total = torch.zeros(NUM_ADE20K_LABELS, h, w, device=self.device)
        for size in sizes:
            xs = x if tuple(size) == (h, w) else F.interpolate(x, size=size, mode="bilinear",
                                                               align_corners=False, antialias=True)
            logits = self.model(pixel_values=(xs - mean) / std).logits
            logits = F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=False)
            total += torch.softmax(logits[0], dim=0)
        return (total / len(sizes)).cpu()


def _check_scales(scales: Sequence[int] | None) -> tuple[int, ...] | None:
    if scales is None:
        return None
    if isinstance(scales, (int, np.integer)):
        scales = (int(scales),)
    try:
        items = tuple(scales)
    except TypeError:
        raise PhotostyleError(f"scales must be a sequence of short sides in pixels or None, got {scales!r}") from None
    if not items:
        raise PhotostyleError("scales is empty; give at least one short side, e.g. scales=(512,), or None")
    return tuple(check_int("each scale", s, low=SIZE_MULTIPLE) for s in items)


def _check_triplet(name: str, values: Sequence[float], *, positive: bool = False) -> tuple[float, float, float]:
    try:
        items = tuple(values)
    except TypeError:
        raise PhotostyleError(f"{name} must be three numbers (R, G, B), got {values!r}") from None
    if len(items) != 3:
        raise PhotostyleError(f"{name} must be three numbers (R, G, B), got {values!r}")
    out = tuple(check_number(f"{name} value", v, low=0, low_inclusive=not positive) for v in items)
    return out  # type: ignore[return-value]


def scaled_input_size(height: int, width: int, short_side: int | None,
                      max_long_side: int = DEFAULT_MAX_LONG_SIDE) -> tuple[int, int]:
    """Size (h, w) the model sees for an H x W image at one scale.

    The short side becomes ``short_side`` (``None``: kept), the long side
    follows the aspect ratio but is capped at ``max_long_side``; both are then
    rounded to the nearest multiple of :data:`SIZE_MULTIPLE` (at least one).
    """
    s = 1.0 if short_side is None else short_side / min(height, width)
    s = min(s, max_long_side / max(height, width))

    def snap(v: float) -> int:
        return max(SIZE_MULTIPLE, int(round(v / SIZE_MULTIPLE)) * SIZE_MULTIPLE)

    return snap(height * s), snap(width * s)


# --------------------------------------------------------------------------- segmenters by name


def segmenter_from_name(name: str | None, device: str = "auto") -> ADE20KSegmenter:
    """An ADE20KSegmenter by name, built once per (name, device, ``$PHOTOSTYLE_SEGMENTER``).

    Parameters
    ----------
    name : str or None
        ``None``: the default checkpoint, or ``$PHOTOSTYLE_SEGMENTER`` when set;
        a hub id or a directory; ``"paper-scales"``: that same checkpoint with
        softmax averaged over the authors' code's four input scales (short
        sides 300, 400, 500, 600: :data:`PAPER_SCALES`); ``"random"``: random
        weights, the default architecture (timing); ``"random-tiny"``: random
        weights, a tiny model (tests, CI).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ...

    Returns
    -------
    ADE20KSegmenter
        The same object for the same name, device and value of
        ``$PHOTOSTYLE_SEGMENTER``: the variable is read at each call and is
        part of the memo's key, so changing it gives the segmenter it names.

    Raises
    ------
    PhotostyleError
        Weights not available (the message says how to get them), a bad device.
    """
    return _built_segmenter(None if name is None else str(name), str(device), os.environ.get(CHECKPOINT_ENV))


@functools.lru_cache(maxsize=2)
def _built_segmenter(name: str | None, device: str, env_checkpoint: str | None) -> ADE20KSegmenter:
    """The segmenter of :func:`segmenter_from_name`: everything it depends on is an argument (the memo's key)."""
    default = env_checkpoint or DEFAULT_CHECKPOINT
    if name == "paper-scales":
        return ADE20KSegmenter(default, device=device, scales=PAPER_SCALES)
    if name == "random-tiny":
        return ADE20KSegmenter("random", config=architecture_config(tiny=True), device=device, scales=None)
    return ADE20KSegmenter(default if name is None else name, device=device)


def segmenter_for(segmenter: ADE20KSegmenter | str | os.PathLike | None, device: str = "auto") -> ADE20KSegmenter:
    """``segmenter`` itself when it is a built segmenter, else :func:`segmenter_from_name` of the name (or None).

    Raises
    ------
    PhotostyleError
        As :func:`segmenter_from_name`.
    """
    if segmenter is None or isinstance(segmenter, (str, os.PathLike)):
        return segmenter_from_name(None if segmenter is None else os.fspath(segmenter), device)
    return segmenter
