"""Hard and soft semantic segmentation for the masked style loss (sections 3.3 and 4).

The paper segments content and style with an ADE20K model and uses either the
argmax (*hard* masks, one-hot) or the softmax probabilities with values below a
cutoff theta_s set to zero (*soft* masks) as the masks M_{l,c} of eqs. (6)-(7);
similar labels are merged, and the content's labels are restricted to those
present in the style image. In what order and by which rules the paper does not
say; :func:`semantic_masks` offers two answers, ``soft_pipeline="authors"``
(the authors' public code, step for step: cut each raw class, restrict and
renormalise the content, then merge; the default) and ``"merged"`` (our own:
merge, restrict and renormalise both images, then cut).

The authors' code is ``segment.py`` of Billijk/Deep-Photo-Style-Transfer-PyTorch
(the repository the paper names), branch master for soft masks; branch
``hard_seg`` holds their hard masks (merge by the members' maximum, argmax),
which this module does not reproduce: hard masks here follow the ``"merged"``
steps.

Three pieces, in the order a run uses them:

* :class:`ADE20KSegmenter` -- a pretrained ADE20K model loaded through
  ``transformers`` and its Hugging Face cache; ``probabilities(image)`` returns
  (150, H, W) softmax probabilities at the image's size, averaged over input
  scales as the authors' code did (their four short sides, :data:`PAPER_SCALES`,
  with ``scales=PAPER_SCALES``; the default is one pass, :data:`DEFAULT_SCALES`).
* :func:`semantic_masks` -- pure function from two probability stacks to a
  :class:`photostyle_lib.semantic.masks.SemanticMasks` (kind ``"hard"`` or ``"soft"``),
  the same type gold masks have, so the engine takes either.
* :class:`SegmentationCache` -- probabilities on disk and/or in memory, keyed by
  image content, checkpoint identity and scales, so variants of a run share one
  segmentation.

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

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from photostyle_lib.semantic.ade20k import AUTHORS_MERGES, ADE20K_LABELS, DEFAULT_MERGES, NUM_ADE20K_LABELS, MergeGroup
from photostyle_lib.checks import check_choice, check_int, check_number, resolve_device
from photostyle_lib.errors import PhotostyleError, require_extra
from photostyle_lib.io.images import PathLike, array_to_tensor, as_image_tensor
from photostyle_lib.semantic.masks import SemanticMasks, align_labels
from photostyle_lib.features.vgg import IMAGENET_MEAN, IMAGENET_STD

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
#: ImageNet normalisation, used to train both OpenMMLab's UPerNet and NVIDIA's SegFormer ADE20K models.

MaskMode = Literal["hard", "soft"]
#: The probability -> soft masks maths (see :func:`semantic_masks`).
SoftPipeline = Literal["authors", "merged"]
SOFT_PIPELINES: tuple[str, ...] = ("authors", "merged")
#: The soft pipeline segmenter runs use (the paper profile's): the authors' ``segment.py`` maths.
SOFT_PIPELINE: SoftPipeline = "authors"
#: Smallest normal float32: guards divisions without distorting tiny probabilities.
_TINY = float(torch.finfo(torch.float32).tiny)
MergeSpec = Sequence[MergeGroup] | Mapping[str, Sequence[str]] | None


# --------------------------------------------------------------------------- the model


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


def _hub_offline() -> bool:
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
    offline = _hub_offline() if local_files_only is None else bool(local_files_only)
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

    Args:
        checkpoint: a Hugging Face hub id, a local directory saved with
            ``save_pretrained``, or ``"random"`` for random weights (tests, CI,
            timing). ``None``: ``$PHOTOSTYLE_SEGMENTER`` if set, else
            :data:`DEFAULT_CHECKPOINT`.
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ...
        scales: short sides (pixels) at which the image is segmented; softmax
            probabilities are averaged over them, as the authors' code did over
            :data:`PAPER_SCALES` (the paper profile's ``"paper-scales"``).
            ``None``: one pass at the image's own size.
        max_long_side: cap on a scaled input's long side (pixels).
        revision: hub revision (branch, tag or commit) to load.
        cache_dir: Hugging Face cache directory (default: the library's, under ``$HF_HOME``).
        local_files_only: ``True`` never touches the network; ``False`` downloads
            into the cache when the weights are missing; ``None`` (default)
            downloads unless ``HF_HUB_OFFLINE=1`` is set.
        config: with ``checkpoint="random"`` only: the ``transformers`` config to
            build (default :func:`architecture_config`, the default checkpoint's
            architecture; ``architecture_config(tiny=True)`` for tests).
        seed: with ``checkpoint="random"`` only: seeds the random weights.
        mean, std: per-channel input normalisation of the checkpoint (ImageNet's).

    Attributes:
        checkpoint: the checkpoint as resolved (hub id, directory or "random").
        weights: ``"pretrained"`` or ``"random"`` -- metadata and figures should say which.
        identity: a string naming the exact weights (hub id @ commit, directory
            digest, or ``random:seed=S:config=DIGEST``); part of the cache key.
        label_names: the 150 ADE20K label names, index = output channel.

    Raises:
        PhotostyleError: weights not available (the message says how to get them),
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

    def probabilities(self, image: torch.Tensor | np.ndarray, *,
                      cache: "SegmentationCache | None" = None) -> torch.Tensor:
        """Softmax class probabilities of ``image`` at its own size.

        Args:
            image: tensor (1, 3, H, W) or array (H, W, 3), values in [0, 1]
                (as :func:`photostyle_lib.io.images.load_image` returns).
            cache: if given, probabilities are looked up there first and stored after.

        Returns:
            (150, H, W) float32 CPU tensor; each pixel's values sum to 1. For each
            scale the logits are upsampled (bilinear) to H x W and softmaxed;
            the softmaxes are averaged over scales (as the authors' code averages
            its decoder's softmax over its ``--imgSize`` list).
        """
        if cache is not None:
            return cache.probabilities(self, image)
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


def _normalise_groups(merge: MergeSpec) -> tuple[MergeGroup, ...]:
    if merge is None:
        return ()
    if isinstance(merge, Mapping):
        return tuple(MergeGroup(str(k), tuple(v), "") for k, v in merge.items())
    groups = tuple(merge)
    for g in groups:
        if not isinstance(g, MergeGroup):
            raise PhotostyleError("merge must be a sequence of ade20k.MergeGroup, a mapping "
                                  f"{{name: [labels]}} or None, got an item {g!r}")
    return groups


def _checked_groups(names: tuple[str, ...], merge: MergeSpec) -> tuple[MergeGroup, ...]:
    """The merge groups, each member a label name of ``names`` and in one group at most."""
    groups = _normalise_groups(merge)
    owner: dict[str, MergeGroup] = {}
    for g in groups:
        if not g.members:
            raise PhotostyleError(f"merge group {g.name!r} has no members")
        for m in g.members:
            if m not in names:
                raise PhotostyleError(
                    f"merge group {g.name!r} names label {m!r}, which is not among the label names; "
                    "fix the merge table, or pass merge=() for label sets other than ADE20K's")
            if m in owner:
                raise PhotostyleError(f"label {m!r} is in two merge groups ({owner[m].name!r} and {g.name!r}); "
                                      "put each label in one group at most")
            owner[m] = g
    return groups


def _check_unique_names(out_names: Sequence[str]) -> None:
    if len(set(out_names)) != len(out_names):
        dup = sorted({n for n in out_names if list(out_names).count(n) > 1})
        raise PhotostyleError(f"merged label names clash with other labels: {', '.join(dup)}; "
                              "name each merge group after one of its members or a new name")


def merge_labels(prob: torch.Tensor, label_names: Sequence[str],
                 merge: MergeSpec = DEFAULT_MERGES) -> tuple[torch.Tensor, tuple[str, ...]]:
    """Merge similar labels by adding their probabilities (the ``"merged"`` pipeline's merge).

    Args:
        prob: (K, H, W) probabilities (any float dtype), K = len(label_names).
        label_names: the K names.
        merge: groups to merge (:data:`photostyle_lib.semantic.ade20k.DEFAULT_MERGES`, a
            mapping ``{merged name: [member labels]}``, or None / () for none).

    Returns:
        (K', H, W) probabilities and the K' names: a group's channel, named after
        the group, sits where its first member in label order was; unmerged
        labels keep their order. Per-pixel sums are unchanged.
    """
    names = tuple(label_names)
    owner = {m: g for g in _checked_groups(names, merge) for m in g.members}
    out_names: list[str] = []
    rows: list[torch.Tensor] = []
    done: set[str] = set()
    for i, n in enumerate(names):
        g = owner.get(n)
        if g is None:
            out_names.append(n)
            rows.append(prob[i])
        elif g.name not in done:
            done.add(g.name)
            out_names.append(g.name)
            rows.append(prob[[names.index(m) for m in g.members]].sum(0))
    _check_unique_names(out_names)
    return torch.stack(rows), tuple(out_names)


def present_labels(prob: torch.Tensor, label_names: Sequence[str], min_fraction: float) -> tuple[str, ...]:
    """Labels that are the argmax of at least ``min_fraction`` of the pixels (the ``"merged"`` rule).

    The label covering the most pixels is always returned, so the result is
    never empty. Order follows ``label_names``.
    """
    k = prob.shape[0]
    counts = torch.bincount(prob.argmax(0).flatten(), minlength=k).double() / prob[0].numel()
    keep = (counts >= min_fraction)
    keep[int(counts.argmax())] = True
    return tuple(n for n, kept in zip(label_names, keep.tolist()) if kept)


def _check_probabilities(name: str, prob: Any, num_labels: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(prob) if not isinstance(prob, torch.Tensor) else prob)
    t = t.detach().to("cpu", torch.float32)
    if t.ndim != 3:
        raise PhotostyleError(f"{name} must have shape (K, H, W), got {tuple(t.shape)}")
    if t.shape[0] != num_labels:
        raise PhotostyleError(f"{name} has {t.shape[0]} channels but {num_labels} label names were given; "
                              "pass the label_names of the segmenter that made it")
    if t.shape[1] < 1 or t.shape[2] < 1:
        raise PhotostyleError(f"{name} is empty (shape {tuple(t.shape)})")
    if not torch.isfinite(t).all():
        raise PhotostyleError(f"{name} contains NaN or infinite values")
    sums = t.sum(0)
    if float(t.min()) < -1e-6 or float((sums - 1).abs().max()) > 1e-2:
        raise PhotostyleError(
            f"{name} is not a probability stack (values in [{float(t.min()):.3g}, {float(t.max()):.3g}], "
            f"pixel sums in [{float(sums.min()):.3g}, {float(sums.max()):.3g}]); pass softmax probabilities "
            "such as ADE20KSegmenter.probabilities(), not logits")
    return t.clamp_(min=0.0)


def semantic_masks(content_prob: torch.Tensor | np.ndarray, style_prob: torch.Tensor | np.ndarray,
                   mode: MaskMode = "soft", *, theta_s: float = 0.2, soft_pipeline: SoftPipeline = "authors",
                   merge: MergeSpec | str = "pipeline", label_names: Sequence[str] = ADE20K_LABELS,
                   min_style_fraction: float = 0.01) -> SemanticMasks:
    """Hard or soft masks for the masked style loss (eqs. 6-7, section 3.3) from two probability stacks.

    The paper says only that soft masks are the softmax values "with a cutoff
    threshold theta_s to ignore labels with small possibilities", that similar
    labels are merged and that the content's labels are restricted to the
    style's (sections 3.3 and 4). Two pipelines fill in the rest:

    * ``soft_pipeline="authors"`` (the default: the paper profile) -- what the
      authors' public code does, step for step; see :func:`_authors_soft_masks`.
      Cut each raw ADE20K class at theta_s, restrict and renormalise the
      content over the style's raw classes, then add merged classes with the
      authors' merge table (:data:`ade20k.AUTHORS_MERGES`). Style masks are
      not renormalised.
    * ``soft_pipeline="merged"`` -- our own choice (not the authors'): merge
      first with :data:`ade20k.DEFAULT_MERGES`, restrict both images to the
      style's present merged labels and renormalise both, then cut; see
      :func:`_merged_masks`.

    Hard masks (``mode="hard"``) always follow the ``"merged"`` steps and take
    the argmax (``soft_pipeline`` is ignored for them).

    Args:
        content_prob: (K, Hc, Wc) softmax probabilities of the content (tensor or array).
        style_prob: (K, Hs, Ws) softmax probabilities of the style.
        mode: "hard" or "soft".
        theta_s: the soft cutoff, in (0, 1]: values below it become 0, values
            equal to it are kept. The paper gives no value; 0.2 is the default
            ``cutoff`` of the authors' ``segment_img`` and
            ``TransferConfig.theta_s``'s.
        soft_pipeline: "authors" or "merged" (above); soft masks only.
        merge: groups of labels to merge: ``"pipeline"`` (default) for the
            pipeline's own table (``AUTHORS_MERGES`` for "authors",
            ``DEFAULT_MERGES`` for "merged" and for hard masks), a sequence of
            ``ade20k.MergeGroup``, a mapping ``{name: [labels]}``, or ``()`` /
            None for none.
        label_names: the K label names (default the 150 ADE20K labels).
        min_style_fraction: in [0, 1); the ``"merged"`` pipeline's presence
            rule (see :func:`_merged_masks`); unused by ``"authors"``.

    Returns:
        SemanticMasks of kind ``mode`` whose ``pipeline`` names the maths
        ("authors" or "merged"; "merged" for hard masks), float32 stacks in [0, 1].
    """
    mode = check_choice("mode", mode, ("hard", "soft"))
    soft_pipeline = check_choice("soft_pipeline", soft_pipeline, SOFT_PIPELINES)
    theta_s = check_number("theta_s", theta_s, low=0.0, high=1.0, low_inclusive=False)
    min_style_fraction = check_number("min_style_fraction", min_style_fraction, low=0.0, high=1.0,
                                      high_inclusive=False)
    names = tuple(label_names)
    if len(set(names)) != len(names):
        raise PhotostyleError("label_names contains duplicates; give each channel a distinct name")
    c = _check_probabilities("content_prob", content_prob, len(names))
    s = _check_probabilities("style_prob", style_prob, len(names))
    pipeline = soft_pipeline if mode == "soft" else "merged"
    if isinstance(merge, str):
        if merge != "pipeline":
            raise PhotostyleError(f"merge={merge!r} is not a merge table; pass 'pipeline', a sequence of "
                                  "ade20k.MergeGroup, a mapping {name: [labels]}, or () for none")
        merge = AUTHORS_MERGES if pipeline == "authors" else DEFAULT_MERGES
    if pipeline == "authors":
        return _authors_soft_masks(c, s, theta_s=theta_s, merge=merge, label_names=names)
    return _merged_masks(c, s, mode, theta_s=theta_s, merge=merge, label_names=names,
                        min_style_fraction=min_style_fraction)


def _authors_soft_masks(content_prob: torch.Tensor, style_prob: torch.Tensor, *, theta_s: float = 0.2,
                       merge: MergeSpec = AUTHORS_MERGES,
                       label_names: Sequence[str] = ADE20K_LABELS) -> SemanticMasks:
    """Soft masks as the authors' code makes them (``segment_img`` and ``test`` in their ``segment.py``).

    With P_S, P_C the (K, H, W) probabilities of style and content (the
    segmenter's softmax averaged over scales) and theta = ``theta_s``:

    1. **Style, cut per raw class, not renormalised**:
       ``S_k = P_S,k * [P_S,k >= theta]``.
    2. **Presence** of a raw class in the style: ``S_k`` is non-zero at some
       pixel, i.e. ``max_pixels P_S,k >= theta``. V = the present classes.
    3. **Content, restricted to V and renormalised over it, then cut**:
       ``Q_k = P_C,k [k in V] / (sum_{j in V} P_C,j + 1e-6)`` and
       ``C_k = Q_k [Q_k >= theta]`` (the 1e-6 is theirs).
    4. **Merge after the cut**: for each group (``merge``, default
       :data:`ade20k.AUTHORS_MERGES`, whose first member receives the sum) the
       cut values of its members are added into the first member's channel
       and the other members' channels become 0, in both images.
    5. **Keep** the channels that are non-zero somewhere in the merged style,
       in channel order. A kept label may be empty in the content; it is kept
       (as in their code) and adds nothing to the style loss.

    Consequences worth knowing: a merged group is present when any member
    reaches theta somewhere in the style, but a content member that is absent
    from the style (lake when the style shows only sea) is dropped before the
    merge; per-pixel sums of the style masks lie in [0, 1] and the merged
    channels of both images can exceed any single class's value.

    Args:
        content_prob: (K, Hc, Wc) float32 probabilities (pixels sum to 1).
        style_prob: (K, Hs, Ws) float32 probabilities.
        theta_s: the cutoff, in (0, 1].
        merge: groups to merge, ``members[0]`` receiving the sum; () for none.
        label_names: the K names.

    Returns:
        SemanticMasks (kind "soft", pipeline "authors"); ``dropped_content_labels``
        lists the labels that pass the presence rule in the content but not in
        the style; ``dropped_style_labels`` is empty (nothing present in the
        style is dropped).

    Raises:
        PhotostyleError: no class reaches theta_s anywhere in the style (their
            code would then have no masks and a NaN style loss), or no kept
            label is non-empty in the content.
    """
    names = tuple(label_names)
    groups = _checked_groups(names, merge)
    s_cut = _cut(style_prob, theta_s)
    present = s_cut.flatten(1).amax(1) > 0
    if not bool(present.any()):
        raise PhotostyleError(
            f"no class reaches theta_s={theta_s} anywhere in the style (largest probability "
            f"{float(style_prob.max()):.3g}), so the authors' soft pipeline finds no label; lower theta_s "
            "below that value or use soft_pipeline='merged' (random segmenter weights give probabilities "
            "near 1/150)")
    c_kept = content_prob * present.to(content_prob.dtype)[:, None, None]
    c_cut = _cut(c_kept / (c_kept.sum(0, keepdim=True) + 1e-6), theta_s)
    c_merged, merged_names = _merge_into_first_member(c_cut, names, groups)
    s_merged, _ = _merge_into_first_member(s_cut, names, groups)
    keep = torch.nonzero(s_merged.flatten(1).amax(1) > 0).flatten()
    labels = tuple(merged_names[i] for i in keep.tolist())
    cm, sm = c_merged[keep].clamp_(0.0, 1.0).contiguous(), s_merged[keep].clamp_(0.0, 1.0).contiguous()
    if not bool((cm.flatten(1).amax(1) > 0).any()):
        raise PhotostyleError(f"no label of the style keeps a content pixel at theta_s={theta_s}; lower theta_s "
                              "or use mode='hard'")
    content_alone, _ = _merge_into_first_member(_cut(content_prob, theta_s), names, groups)
    in_content = content_alone.flatten(1).amax(1) > 0
    dropped = tuple(n for i, n in enumerate(merged_names) if bool(in_content[i]) and n not in labels
                    and i not in _absorbed_channels(names, groups))
    return SemanticMasks(content=cm, style=sm, labels=labels, kind="soft", dropped_content_labels=dropped,
                         dropped_style_labels=(), pipeline="authors")


def _cut(prob: torch.Tensor, theta_s: float) -> torch.Tensor:
    """Values below theta_s set to 0 (the authors' ``pred[pred < cutoff] = 0``), as a new tensor."""
    return torch.where(prob >= theta_s, prob, torch.zeros_like(prob))


def _absorbed_channels(names: tuple[str, ...], groups: Sequence[MergeGroup]) -> set[int]:
    """Channels emptied by a merge: every member but the first of each group."""
    return {names.index(m) for g in groups for m in g.members[1:]}


def _merge_into_first_member(prob: torch.Tensor, names: tuple[str, ...],
                             groups: Sequence[MergeGroup]) -> tuple[torch.Tensor, tuple[str, ...]]:
    """The authors' merge: (K, H, W) -> (K, H, W), a group's sum in its first member's channel, the rest 0.

    Channel positions do not move (the group's channel is where ``members[0]``
    is, and takes the group's name), as in their ``pred[cat[0]] = pred[cat].sum(0)``.
    """
    out = prob.clone()
    out_names = list(names)
    for g in groups:
        idx = [names.index(m) for m in g.members]
        out[idx[0]] = prob[idx].sum(0)
        out[idx[1:]] = 0.0
        out_names[idx[0]] = g.name
    absorbed = _absorbed_channels(names, groups)
    _check_unique_names([n for i, n in enumerate(out_names) if i not in absorbed])
    return out, tuple(out_names)


def _merged_masks(content_prob: torch.Tensor, style_prob: torch.Tensor, mode: MaskMode = "soft", *,
                 theta_s: float = 0.2, merge: MergeSpec = DEFAULT_MERGES,
                 label_names: Sequence[str] = ADE20K_LABELS, min_style_fraction: float = 0.01) -> SemanticMasks:
    """Hard masks, and soft masks of the ``"merged"`` pipeline: our choices, not the authors' code's.

    Steps, in order:

    1. **Merge** similar labels first (:func:`merge_labels`, default our
       :data:`ade20k.DEFAULT_MERGES`): the probabilities of a group's members
       are added before anything is cut.
    2. **Restrict** to the style's labels. A label is *present* in an image
       when it is the argmax of at least ``min_style_fraction`` of its pixels
       (after merging); specks below that are segmentation noise whose few
       pixels would make a poor style sample. Both stacks keep only the
       style's present labels and are renormalised over them, so each pixel's
       values again sum to 1: a content pixel's distribution becomes the
       segmenter's distribution *given* that the label is one the style has,
       and every content pixel receives some style. (This is
       ``masks.align_labels(..., unmatched="drop", renormalize=True)``.) A
       content pixel whose every kept probability underflowed to 0 gets no
       label and no style.
    3. **Hard** (``mode="hard"``): one-hot of the argmax, each pixel sums to 1.
       **Soft**: values below ``theta_s`` are set to 0 and the remainder is
       *not* renormalised, so an uncertain pixel weighs less in every label's
       Gram matrix than a confident one; per-pixel sums lie in [0, 1].
    4. Labels whose mask is empty in the content (after the cutoff) are
       dropped as style-only; labels empty in the style are dropped too.

    How this departs from the authors' code (:func:`_authors_soft_masks`):
    merging before the cutoff (so a merged group's summed probability can pass
    theta_s where no member does), the argmax-fraction presence rule, the
    renormalisation of the style as well as the content, our merge table,
    and dropping labels empty in the content.

    ``mode="hard"`` equals the one-hot of the argmax of ``mode="soft"`` for any
    theta_s <= 1 / (number of kept labels), since the cutoff never removes a
    pixel's largest value then.

    Args:
        content_prob, style_prob: (K, H, W) float32 probabilities.
        mode: "hard" or "soft".
        theta_s: the soft cutoff, in (0, 1].
        merge: groups to merge; ``()`` or None for none.
        label_names: the K names.
        min_style_fraction: in [0, 1); see step 2.

    Returns:
        SemanticMasks of kind ``mode`` (pipeline "merged"): ``content`` (C, Hc, Wc)
        and ``style`` (C, Hs, Ws) float32 in [0, 1], the C shared (merged) label
        names, ``dropped_content_labels`` (content labels the style lacks: those
        that are the argmax of at least ``min_style_fraction`` of the content,
        plus kept labels whose style mask the cutoff emptied) and
        ``dropped_style_labels`` (style labels with an empty content mask).
    """
    names = tuple(label_names)
    c, merged = merge_labels(content_prob, names, merge)
    s, _ = merge_labels(style_prob, names, merge)

    style_labels = present_labels(s, merged, min_style_fraction)
    s_idx = [merged.index(n) for n in style_labels]
    s_kept = s[s_idx]
    s_kept = s_kept / s_kept.sum(0, keepdim=True).clamp_min(_TINY)
    aligned = align_labels(c, merged, s_kept.clamp(0.0, 1.0), style_labels, kind=mode,
                           unmatched="drop", renormalize=True)
    content_present = set(present_labels(c, merged, min_style_fraction))
    cm, sm = aligned.content, aligned.style
    # align_labels rescales each pixel's kept values to its old total (1 for a
    # probability stack); divide by the sum explicitly to remove rounding drift.
    cm = cm / cm.sum(0, keepdim=True).clamp_min(_TINY)

    if mode == "hard":
        cm = _one_hot_argmax(cm)
        sm = _one_hot_argmax(sm)
    else:
        cm, sm = _cut(cm, theta_s), _cut(sm, theta_s)

    c_any = cm.flatten(1).amax(1) > 0
    s_any = sm.flatten(1).amax(1) > 0
    keep = c_any & s_any
    labels = aligned.labels
    if not bool(keep.any()):
        raise PhotostyleError(
            f"no label has a non-empty mask in both images after the cutoff theta_s={theta_s}; "
            "lower theta_s (at most 1 / number of labels keeps every pixel's top label) or use mode='hard'")
    dropped_content = [n for n in merged if n not in labels and n in content_present]
    dropped_content += [n for n, ci, si in zip(labels, c_any.tolist(), s_any.tolist()) if ci and not si]
    dropped_style = [n for n, ci in zip(labels, c_any.tolist()) if not ci]
    kept_idx = torch.nonzero(keep).flatten()
    return SemanticMasks(content=cm[kept_idx].float().clamp_(0.0, 1.0).contiguous(),
                         style=sm[kept_idx].float().clamp_(0.0, 1.0).contiguous(),
                         labels=tuple(labels[i] for i in kept_idx.tolist()), kind=mode,
                         dropped_content_labels=tuple(dropped_content),
                         dropped_style_labels=tuple(dropped_style), pipeline="merged")


def _one_hot_argmax(prob: torch.Tensor) -> torch.Tensor:
    """(C, H, W) -> one-hot (C, H, W) of the argmax over C (ties: lowest index); all-zero pixels stay zero."""
    idx = prob.argmax(0, keepdim=True)
    one_hot = torch.zeros_like(prob).scatter_(0, idx, 1.0)
    return one_hot * (prob.amax(0, keepdim=True) > 0)


# --------------------------------------------------------------------------- the cache


_CACHE_FORMAT = 2


def image_digest(image: torch.Tensor | np.ndarray) -> str:
    """sha1 of an image's float32 (H, W, 3) bytes and its shape: the cache's image key."""
    t = as_image_tensor("image", image).cpu()
    arr = np.ascontiguousarray(t[0].permute(1, 2, 0).numpy(), dtype=np.float32)
    h = hashlib.sha1(repr(arr.shape).encode())
    h.update(arr.tobytes())
    return h.hexdigest()


class SegmentationCache:
    """Probabilities keyed by image content, checkpoint identity and scales.

    Args:
        directory: where to keep ``<key>.npz`` files (float16 log-probabilities
            and the key's ingredients as JSON); None for memory only.
        memory: also keep entries in memory (float16, the ``max_memory_items``
            most recently used ones).
        max_memory_items: bound on in-memory entries (a 700 px image's
            probabilities take ~110 MB at float16).

    The key (:meth:`key`) is the sha1 of the image's float32 bytes and shape
    (:func:`image_digest`) together with the segmenter's
    :meth:`ADE20KSegmenter.describe` (checkpoint identity -- hub id @ commit,
    directory digest or ``random:seed=..:config=..`` -- scales, size cap and
    normalisation).

    Stored values are float16 *log*-probabilities: float16 probabilities would
    flush values below 6e-8 to zero, and those tails matter -- restricting a
    content pixel to the style's labels renormalises exactly such small
    values. Log storage keeps them (down to float32's 1e-45) with relative
    error <= 0.1 % for probabilities above 0.02 and a few percent in the far
    tail. Every value returned, first computation included, is the softmax
    over labels of the stored values in float32 (so each pixel sums to 1), and
    a hit returns exactly what the miss returned.

    Disk writes go to a temporary file in ``directory`` that is then renamed
    over the entry (atomic on POSIX and Windows), so an interrupted run leaves
    either the old entry or none; an unreadable entry counts as a miss and is
    rewritten.
    """

    def __init__(self, directory: PathLike | None = None, *, memory: bool = True,
                 max_memory_items: int = 8) -> None:
        if directory is None and not memory:
            raise PhotostyleError("a SegmentationCache needs a directory, memory=True, or both")
        self.directory = None if directory is None else Path(directory)
        if self.directory is not None:
            if self.directory.exists() and not self.directory.is_dir():
                raise PhotostyleError(f"cache directory {self.directory} is a file; give a directory path")
            self.directory.mkdir(parents=True, exist_ok=True)
        self.memory = bool(memory)
        self.max_memory_items = check_int("max_memory_items", max_memory_items, low=1)
        self._mem: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key_parts(segmenter: ADE20KSegmenter, image: torch.Tensor | np.ndarray) -> dict[str, Any]:
        t = as_image_tensor("image", image).cpu()
        return {"format": _CACHE_FORMAT, "image_sha1": image_digest(t), "shape": list(t.shape[-2:]),
                "segmenter": segmenter.describe()}

    @staticmethod
    def key_from_parts(parts: dict[str, Any]) -> str:
        return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def key(self, segmenter: ADE20KSegmenter, image: torch.Tensor | np.ndarray) -> str:
        """The hex key under which ``segmenter``'s probabilities of ``image`` are stored."""
        return self.key_from_parts(self.key_parts(segmenter, image))

    def path(self, key: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{key}.npz"

    def probabilities(self, segmenter: ADE20KSegmenter, image: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``segmenter.probabilities(image)``, from the cache when there; (150, H, W) float32."""
        t = as_image_tensor("image", image).cpu()
        parts = self.key_parts(segmenter, t)
        key = self.key_from_parts(parts)
        q = self._load(key, parts)
        if q is not None:
            self.hits += 1
            return _dequantise(q)
        self.misses += 1
        q = _quantise(segmenter._compute(t))
        self._store(key, parts, q)
        return _dequantise(q)

    def _load(self, key: str, parts: dict[str, Any]) -> torch.Tensor | None:
        if key in self._mem:
            self._mem.move_to_end(key)
            return self._mem[key]
        p = self.path(key)
        if p is None or not p.exists():
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                q = torch.from_numpy(np.array(z["log_probabilities"], dtype=np.float16))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
            return None
        if meta != parts or tuple(q.shape) != (NUM_ADE20K_LABELS, *parts["shape"]):
            return None
        self._remember(key, q)
        return q

    def _store(self, key: str, parts: dict[str, Any], q: torch.Tensor) -> None:
        self._remember(key, q)
        p = self.path(key)
        if p is None:
            return
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(f, log_probabilities=q.numpy(), meta=np.array(json.dumps(parts, sort_keys=True)))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _remember(self, key: str, q: torch.Tensor) -> None:
        if not self.memory:
            return
        self._mem[key] = q
        self._mem.move_to_end(key)
        while len(self._mem) > self.max_memory_items:
            self._mem.popitem(last=False)

    def clear_memory(self) -> None:
        """Forget the in-memory entries (disk entries stay)."""
        self._mem.clear()


def _quantise(prob: torch.Tensor) -> torch.Tensor:
    """(K, H, W) float32 probabilities -> float16 log-probabilities (zeros become log of 1e-45)."""
    return torch.log(prob.float().clamp_min(1e-45)).to(torch.float16)


def _dequantise(q: torch.Tensor) -> torch.Tensor:
    """float16 log-probabilities -> float32 probabilities summing to 1 per pixel."""
    return torch.softmax(q.float(), dim=0)


__all__ = [
    "ADE20KSegmenter", "SegmentationCache", "semantic_masks", "merge_labels", "present_labels",
    "architecture_config", "scaled_input_size", "image_digest",
    "DEFAULT_CHECKPOINT", "CHECKPOINT_ENV", "PAPER_SCALES", "CSAIL_SCALES", "DEFAULT_SCALES",
    "DEFAULT_MAX_LONG_SIDE", "ADE20K_LABELS", "DEFAULT_MERGES", "AUTHORS_MERGES", "SOFT_PIPELINES",
]
