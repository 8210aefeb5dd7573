"""From files to a saved result: load images, make masks, run the engine, write metadata.

Shared by the doors (CLI, experiment runner, notebooks) so they all make
masks and record provenance the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import load_image
from photostyle_lib.io.results import write_result_files
from photostyle_lib.semantic.cut import DEFAULT_THETA_S
from photostyle_lib.semantic.masks import SemanticMasks
from photostyle_lib.semantic.merge import merge_labels
from photostyle_lib.semantic.request import MaskRequest, make_masks
from photostyle_lib.semantic.segmenter import segmenter_for
from photostyle_lib.io.metadata import file_digest
from photostyle_lib.engine.presets import get_preset
from photostyle_lib.engine.config import POSTPROCESS_STEP_FIELDS, TransferConfig, TransferResult, postprocess_steps
from photostyle_lib.engine.transfer import stylize


@dataclass(frozen=True)
class Run:
    """A finished run with its inputs: what :func:`save_run` writes."""

    result: TransferResult
    content: torch.Tensor
    style: torch.Tensor
    masks: SemanticMasks | None
    preset: str | None
    inputs: dict[str, Any] = field(default_factory=dict)
    mask_metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def interrupted(self) -> bool:
        """True if Ctrl-C stopped the run (or the first stage of a two-stage one): a partial result."""
        r = self.result
        return r.stop_reason == "interrupted" or any("stopped: interrupted" in str(n) for n in r.notes)

    @property
    def random_weights(self) -> bool:
        """True if the VGG or the segmenter had random weights: a smoke test, not a style transfer."""
        return self.result.random_weights or bool(self.inputs.get("segmenter_random_weights"))

    @property
    def weights_warning(self) -> str | None:
        """The run's banner: random weights (VGG or segmenter) first, else the stand-in VGG's, else None."""
        return self.result.banner(bool(self.inputs.get("segmenter_random_weights")))


def files_mask_request(config: TransferConfig, *, masks_given: bool, segmenter: Any = None,
                       theta_s: float = DEFAULT_THETA_S, unmatched: str = "error") -> MaskRequest:
    """The :class:`~photostyle_lib.semantic.request.MaskRequest` of a run from files (CLI, batch).

    Parameters
    ----------
    config : TransferConfig
        The run's config: no masks when it uses none (``segmentation="none"``),
        else its mode.
    masks_given : bool
        Mask files were given: gold masks, whatever the preset's mode.
    segmenter : str, os.PathLike, ADE20KSegmenter or None
        A segmenter name goes on the request; a built segmenter is passed to
        ``make_masks`` by the caller instead.
    theta_s : float
        The soft cutoff, in (0, 1] (``--theta-s``).
    unmatched : {"error", "drop"}
        Gold masks' content labels absent from the style.

    Raises
    ------
    PhotostyleError
        As :class:`MaskRequest` (theta_s outside (0, 1], ...).
    """
    mode = "none" if not config.uses_masks else ("gold" if masks_given else config.segmentation)
    name = os.fspath(segmenter) if isinstance(segmenter, (str, os.PathLike)) else None
    return MaskRequest(mode, segmenter=name, theta_s=theta_s, unmatched=unmatched)


@dataclass(frozen=True)
class FileTransfer:
    """One run from files, checked and resolved once: what ``photostyle transfer`` and a batch row run.

    Built by :func:`file_transfer`; run by :func:`run_files` (:func:`run_to_files` also saves it).

    Attributes
    ----------
    content, style
        The photos (any size; brought to ``size``).
    config
        The preset's TransferConfig with the overrides (resolved once; with mask files given,
        :attr:`run_config` says ``segmentation="gold"``).
    masks
        The mask request: mode ("none", "gold", "hard", "soft"), segmenter name, ``theta_s``
        (the soft cutoff, in (0, 1]) and what to do with unmatched gold labels.
    preset
        The preset's name (recorded in the metadata).
    size
        Long side in pixels, or None for the photos' own size.
    content_mask, style_mask
        Gold mask files, or None.
    """

    content: Path
    style: Path
    config: TransferConfig
    masks: MaskRequest
    preset: str = "full"
    size: int | None = 512
    content_mask: Path | None = None
    style_mask: Path | None = None

    @property
    def run_config(self) -> TransferConfig:
        """The config the engine runs: with mask files given, ``segmentation="gold"`` (so the metadata says so)."""
        if self.config.uses_masks and self.content_mask is not None:
            return self.config.replace(segmentation="gold")
        return self.config

    def inputs(self) -> dict[str, Path | None]:
        """The files this run reads, by role (never written): photos, masks, a weights file."""
        return input_files(self.content, self.style, self.content_mask, self.style_mask, self.config.weights)

    def record(self) -> dict[str, Any]:
        """What the run depends on, for the metadata's ``request`` (:func:`request_record`)."""
        return request_record(self)


def file_transfer(content: str | os.PathLike, style: str | os.PathLike, *, preset: str = "full",
                  size: int | None = 512, content_mask: str | os.PathLike | None = None,
                  style_mask: str | os.PathLike | None = None, unmatched: str = "error", segmenter: Any = None,
                  theta_s: float = DEFAULT_THETA_S, **overrides: Any) -> FileTransfer:
    """Check and resolve one run from files: the preset with ``overrides``, and its mask request, once.

    Parameters
    ----------
    content, style : str or os.PathLike
        The photos.
    preset : str
        A key of ``presets.PRESETS``.
    size : int or None
        Long side in pixels (None: the photos' own).
    content_mask, style_mask : path or None
        Gold mask files (both or neither): gold masks, whatever the preset's mode.
    unmatched : {"error", "drop"}
        Gold masks' content labels absent from the style.
    segmenter : str, os.PathLike, ADE20KSegmenter or None
        The segmenter of presets with hard / soft masks and no mask files; a name is recorded
        on the request (a built one is given to :func:`run_files`).
    theta_s : float
        The soft cutoff in (0, 1] (soft masks only).
    **overrides
        TransferConfig fields (weights, iterations, device, content_weight, ...).

    Returns
    -------
    FileTransfer
        The checked run.

    Raises
    ------
    PhotostyleError
        As ``get_preset`` (an unknown preset or a bad field) and :class:`MaskRequest` (theta_s
        outside (0, 1], ...).
    """
    config = get_preset(preset, **overrides)
    request = files_mask_request(config, masks_given=content_mask is not None or style_mask is not None,
                                 segmenter=segmenter, theta_s=theta_s, unmatched=unmatched)
    opt = (lambda p: None if p is None else Path(p))
    return FileTransfer(content=Path(content), style=Path(style), config=config, masks=request, preset=preset,
                        size=size, content_mask=opt(content_mask), style_mask=opt(style_mask))


def run_files(spec: FileTransfer, *, segmenter: Any = None, cache: Any = None, progress: bool = True,
              callback: Any = None, image_callback: Any = None) -> Run:
    """The one run from files: load the two photos (long side ``spec.size``), make ``spec.masks``, :func:`stylize`.

    Every door computes through it: ``photostyle transfer`` and ``batch`` (:func:`run_to_files`)
    and the run cache (``runs.run_cached``). ``segmenter``: a built ADE20KSegmenter to use
    instead of the request's name (None: the name's); ``cache``: a
    ``semantic.cache.SegmentationCache`` keeping the segmenter's probabilities (None: none
    kept). ``callback``: stylize's, called after each evaluation with (iteration, loss
    terms); ``image_callback``: stylize's, with (iteration, the evaluated image).

    Raises
    ------
    PhotostyleError
        Unreadable files, masks that cannot be made.
    """
    request, config = spec.masks, spec.run_config
    c = load_image(spec.content, max_size=spec.size)
    s = load_image(spec.style, max_size=spec.size)
    masks, mask_md = make_masks(request, c, s, content_mask=spec.content_mask, style_mask=spec.style_mask,
                                segmenter=segmenter, cache=cache, device=config.device)
    text = (lambda p: None if p is None else str(p))
    inputs = {"content": str(spec.content), "style": str(spec.style), "size": spec.size,
              "unmatched": request.unmatched, "segmenter_name": request.segmenter,
              "content_mask": text(spec.content_mask), "style_mask": text(spec.style_mask),
              "mask_kind": None if masks is None else masks.kind,
              "mask_pipeline": None if masks is None else masks.pipeline,
              "dropped_content_labels": [] if masks is None else list(masks.dropped_content_labels)}
    inputs.update(mask_md)  # segmenter, its weights, theta_s (soft masks)
    result = stylize(c, s, config, masks=masks, progress=progress, callback=callback,
                     image_callback=image_callback)
    notes = mask_size_notes(masks, spec.content, spec.style, spec.content_mask, spec.style_mask)
    if notes:
        result = dataclasses.replace(result, notes=tuple(result.notes) + notes)
    return Run(result=result, content=c, style=s, masks=masks, preset=spec.preset, inputs=inputs,
               mask_metadata=mask_md)


def transfer_files(content: str | os.PathLike, style: str | os.PathLike, *, segmenter: Any = None,
                   progress: bool = True, callback: Any = None, image_callback: Any = None,
                   **settings: Any) -> Run:
    """:func:`file_transfer` then :func:`run_files`: one run from files, not saved.

    ``segmenter``: a name (recorded) or a built ADE20KSegmenter (used as is); ``settings``: the
    other keywords of :func:`file_transfer` (preset, size, masks, theta_s, TransferConfig fields).

    Raises
    ------
    PhotostyleError
        As :func:`file_transfer` and :func:`run_files`.
    """
    named = segmenter is None or isinstance(segmenter, (str, os.PathLike))
    spec = file_transfer(content, style, segmenter=segmenter if named else None, **settings)
    return run_files(spec, segmenter=None if named else segmenter, progress=progress, callback=callback,
                     image_callback=image_callback)


def run_to_files(spec: FileTransfer, output: str | os.PathLike, *, overwrite: bool = False, progress: bool = True,
                 image_callback: Any = None, also: Any = None) -> Run:
    """The one run path from files to a saved result: :func:`run_files`, then :func:`save_run`.

    The image and its metadata (with the run's ``request``, :meth:`FileTransfer.record`) are
    written together and atomically (``io.results.write_result_files``). An interrupted run
    (Ctrl-C while it computed) writes nothing and raises KeyboardInterrupt.

    Parameters
    ----------
    spec : FileTransfer
        The checked run (:func:`file_transfer`).
    output : str or os.PathLike
        The image path; the metadata goes to ``output + '.json'``.
    overwrite : bool
        Replace existing files (never an input).
    progress, image_callback
        As :func:`run_files`.
    also : callable (Run) -> list of (Path, Path), optional
        Further staged files made from the finished run (``--save-every`` snapshots), renamed
        with the image.

    Returns
    -------
    Run
        The finished, saved run.

    Raises
    ------
    PhotostyleError
        As :func:`run_files` and :func:`save_run`.
    KeyboardInterrupt
        If the run was interrupted: nothing is written.
    """
    run = run_files(spec, progress=progress, image_callback=image_callback)
    if run.interrupted:
        raise KeyboardInterrupt  # stylize kept its best image; a partial result never takes the output's name
    save_run(run, output, overwrite=overwrite, record=spec.record(), also=None if also is None else also(run))
    return run


@dataclass(frozen=True)
class EditableMasks:
    """Segmenter masks as palette label maps, for a user to repaint (``photostyle segment``).

    Attributes
    ----------
    content
        (Hc, Wc) int64 indices into ``labels``.
    style
        (Hs, Ws) int64 indices into ``labels``.
    labels
        the merged ADE20K label names in use (at most 9: the palette's size).
    colours
        ``colours[k]`` is the palette colour (``masks.PALETTE`` name) of ``labels[k]``.
    """

    content: Any
    style: Any
    labels: tuple[str, ...]
    colours: tuple[str, ...]


def editable_masks(content: torch.Tensor, style: torch.Tensor, *, segmenter: Any = None,
                   device: str = "auto", min_core_pixels: int = 30, erosion: int = 2) -> EditableMasks:
    """The segmenter's hard masks of two images as label maps that survive a palette round trip.

    The rule of ``cut.semantic_masks(mode="hard")``: merge similar
    labels (``ade20k.DEFAULT_MERGES``), take each style pixel's most probable
    merged label, then each content pixel's most probable among the style's
    labels (the paper's restriction of the content's labels to the style's).
    Two departures, both so that the written PNGs mean what the engine reads
    back (``masks.load_gold_masks``): at most 9 labels (the palette's colours;
    the style's smallest go first), and labels without an interior (which
    ``masks.read_color_mask`` drops as edge noise) are given up; in both cases
    their pixels take their next most probable label
    (``masks.readable_label_map``). Colours are given in palette order, the
    style's largest label first.

    Parameters
    ----------
    content, style : torch.Tensor
        (1, 3, H, W) float in [0, 1].
    segmenter : ADE20KSegmenter, str or None
        An ADE20KSegmenter, a name (``segmenter.segmenter_from_name``) or None.
    """
    from photostyle_lib.semantic.masks import PALETTE, readable_label_map

    seg = segmenter_for(segmenter, device)
    pc, names = merge_labels(seg.probabilities(content), seg.label_names)
    ps, _ = merge_labels(seg.probabilities(style), seg.label_names)
    opts = {"min_core_pixels": min_core_pixels, "erosion": erosion}
    style_map = readable_label_map(ps, **opts)
    used = sorted(set(style_map.ravel().tolist()), key=lambda k: -int((style_map == k).sum()))
    content_map = readable_label_map(pc, used, **opts)
    remap = {k: i for i, k in enumerate(used)}
    lookup = np.vectorize(remap.__getitem__, otypes=[np.int64])
    return EditableMasks(content=lookup(content_map), style=lookup(style_map),
                         labels=tuple(names[k] for k in used), colours=tuple(list(PALETTE)[:len(used)]))


def input_files(content: Any, style: Any, content_mask: Any = None, style_mask: Any = None,
                weights: Any = None) -> dict[str, Path | None]:
    """The files a run reads, by role (for :func:`images.refuse_overwriting_inputs`).

    ``weights``: a VGG weights file; the names of vgg.NAMED_WEIGHTS ("imagenet", "hed-vgg16",
    "auto", "random", ...) are not files.
    """
    from photostyle_lib.features.vgg import NAMED_WEIGHTS

    w = None if weights is None or str(weights) in NAMED_WEIGHTS else Path(weights)
    return {"content": content, "style": style, "content mask": content_mask, "style mask": style_mask,
            "weights": w}


def _image_file_size(path: str | os.PathLike) -> tuple[int, int]:
    """(H, W) of an image file as load_image sees it (EXIF rotation applied), from its header."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated a quarter turn
            w, h = h, w
    return h, w


def mask_size_notes(masks: SemanticMasks | None, content: str | os.PathLike, style: str | os.PathLike,
                    content_mask: str | os.PathLike | None, style_mask: str | os.PathLike | None) -> tuple[str, ...]:
    """Notes for the metadata when a mask file's size differs from its image file's.

    The engine resizes every mask to each layer's resolution (so a mask of
    another size than its photo still works, if it has the photo's aspect
    ratio); the notes record that this one was not drawn at the photo's size.
    """
    if masks is None or masks.kind != "gold" or content_mask is None or style_mask is None:
        return ()
    notes = []
    for role, stack, image, mask in (("content", masks.content, content, content_mask),
                                     ("style", masks.style, style, style_mask)):
        mh, mw = (int(v) for v in stack.shape[-2:])
        ih, iw = _image_file_size(image)
        if (mh, mw) != (ih, iw):
            notes.append(f"{role} mask {mask} is {mh}x{mw} (HxW) but its image {image} is {ih}x{iw}: "
                         f"the mask was resized to the image")
    return tuple(notes)


#: Config fields that only matter when a switch selects them: (field, switch, values that use it);
#: for ``postprocess`` the values are steps, used when any step of the chain is one of them.
#: The post-process fields are keyed only when a step that reads them runs (config.POSTPROCESS_STEP_FIELDS),
#: except the recursive filter's and the screened Poisson step's, keyed always as runs were stored.
_CONDITIONAL_FIELDS = tuple(
    (name, "postprocess", tuple(step for step, names in POSTPROCESS_STEP_FIELDS.items() if name in names))
    for name in ("affine_radius", "affine_edge", "smooth_lambda", "detail_bands", "detail_max_gain")
) + (
    ("line_search", "optimizer", ("projected_lbfgs",)),
    ("curvature_cosine", "optimizer", ("projected_lbfgs",)),
)
#: Fields added to the engine after runs were stored, with the value that reproduces the
#: earlier engine: left out of keys at that value, so stored runs keep their keys (and a
#: result's metadata written before a field existed reruns with that value, ``cli``).
LATER_FIELDS = {"init": "content", "pyramid_levels": 1, "level_iterations": None, "plateau_window": 0,
                 "line_search": "halve", "curvature_cosine": 0.0, "level_start": "bilinear",
                 "clamp_iterates": True, "clamp_at": "evaluation"}
#: Fields that matter only when another is not at its "off" value: (field, switch, off value).
_IDLE_FIELDS = (("plateau_tol", "plateau_window", 0), ("level_start", "pyramid_levels", 1),
                ("clamp_iterates", "optimizer", "projected_lbfgs"), ("clamp_at", "optimizer", "projected_lbfgs"))


def relevant_config(cfg) -> dict[str, Any]:
    """The TransferConfig's fields that its result depends on, for cache keys.

    The device is left out (a result does not depend on where it ran), and so are
    parameters of a part the config does not use (e.g. the local-affine smoothing's
    radius when another post-process runs): adding such an option to the engine
    then keeps every stored run's key.
    """
    config = dataclasses.asdict(cfg)
    config.pop("device")
    for name, switch, used in _CONDITIONAL_FIELDS:
        value = config.get(switch)
        parts = postprocess_steps(value) if switch == "postprocess" else (value,)
        if not any(part in used for part in parts):
            config.pop(name, None)
    for name, switch, off in _IDLE_FIELDS:
        if config.get(switch) == off:
            config.pop(name, None)
    for name, earlier in LATER_FIELDS.items():
        if config.get(name) == earlier:
            config.pop(name)
    return config


def request_record(spec: FileTransfer) -> dict[str, Any]:
    """What a run from files depends on: its input files' bytes and every setting that changes the image.

    Written into a result's metadata (``request``, with its digest ``request_sha256``) so
    that "done" means done *with these inputs and settings* (``photostyle batch`` skips a
    row only when the record matches). The device, progress and snapshots are left out:
    they do not change the image.

    Returns
    -------
    dict
        ``{"content", "style", "content_mask", "style_mask"}`` -> sha256 or None, the
        weights file's sha256 (or its name), the preset, size, mask settings and
        ``config``: the resolved TransferConfig's fields the image depends on
        (:func:`relevant_config`).
    """
    files = {"content": spec.content, "style": spec.style, "content_mask": spec.content_mask,
             "style_mask": spec.style_mask}
    record: dict[str, Any] = {k: None if v is None else file_digest(v) for k, v in files.items()}
    weights = spec.inputs()["weights"]
    record["weights"] = file_digest(weights) if weights is not None and Path(weights).is_file() else spec.config.weights
    record.update(preset=spec.preset, size=spec.size, unmatched=spec.masks.unmatched, segmenter=spec.masks.segmenter,
                  theta_s=spec.masks.theta_s if spec.config.uses_masks and spec.content_mask is None else None,
                  config=relevant_config(spec.config))
    return json.loads(json.dumps(record, sort_keys=True, default=str))


def record_digest(record: dict[str, Any]) -> str:
    """sha256 of a :func:`request_record` as sorted-key JSON."""
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def record_differences(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """The names of what differs between two :func:`request_record` values (config fields by name)."""
    if not isinstance(old, dict):
        return ["no record of its inputs and settings"]
    diff = [k for k in new if k != "config" and old.get(k) != new.get(k)]
    oc, nc = old.get("config") or {}, new.get("config") or {}
    diff += [k for k in sorted(set(oc) | set(nc)) if oc.get(k) != nc.get(k)]
    return diff


def save_run(run: Run, output: str | os.PathLike, *, overwrite: bool = False,
             record: dict[str, Any] | None = None, also: list[tuple[Path, Path]] | None = None) -> tuple[Path, Path]:
    """Write the image to ``output`` and its metadata to ``output + '.json'``, together and atomically.

    ``io.results.write_result_files``: refuses an output that is one of the run's input
    files (after resolving symlinks and ``..``), whatever ``overwrite`` says; stages both
    files, renames image first, metadata last (``image_sha256`` is the image's digest).

    Parameters
    ----------
    run : Run
        A finished run (its result, preset, inputs and weights banner).
    output : str or os.PathLike
        The image path; the metadata goes to ``output + '.json'``.
    overwrite : bool
        Replace existing files at those paths.
    record : dict or None
        The run's :func:`request_record`, written as ``request`` with its digest ``request_sha256``.
    also : list of (Path, Path) or None
        Further staged files (temp file, final path), renamed with the image, before the
        metadata; removed if anything fails.

    Returns
    -------
    tuple of Path
        ``(image path, metadata path)``.

    Raises
    ------
    PhotostyleError
        If the image or metadata path is one of the run's input files (content, style, masks,
        weights file), or exists and ``overwrite`` is False, or cannot be written.
    """
    i = run.inputs
    md = run.result.metadata(preset=run.preset, inputs=run.inputs)
    md["random_weights"] = run.random_weights
    if record is not None:
        md["request"] = record
        md["request_sha256"] = record_digest(record)
    inputs = input_files(i.get("content"), i.get("style"), i.get("content_mask"), i.get("style_mask"),
                         run.result.config.weights)
    return write_result_files(run.result.image, output, md, weights_warning=run.weights_warning,
                              overwrite=overwrite, inputs=inputs, also=also, flag="overwrite=True (--overwrite)")
