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
from photostyle_lib.io.images import RANDOM_WEIGHTS_BANNER, commit_files, load_image, stage_image, weights_text
from photostyle_lib.io.outputs import check_outputs
from photostyle_lib.semantic.cut import DEFAULT_THETA_S
from photostyle_lib.semantic.masks import SemanticMasks
from photostyle_lib.semantic.merge import merge_labels
from photostyle_lib.semantic.request import MaskRequest, make_masks
from photostyle_lib.semantic.segmenter import segmenter_for
from photostyle_lib.io.metadata import file_digest, stage_json
from photostyle_lib.engine.presets import get_preset
from photostyle_lib.engine.config import TransferConfig, TransferResult
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
        return RANDOM_WEIGHTS_BANNER if self.random_weights else self.result.weights_warning


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


def transfer_files(content: str | os.PathLike, style: str | os.PathLike, *, preset: str = "full",
                   size: int | None = 512, content_mask: str | os.PathLike | None = None,
                   style_mask: str | os.PathLike | None = None, unmatched: str = "error",
                   segmenter: Any = None, theta_s: float = DEFAULT_THETA_S, progress: bool = True,
                   callback: Any = None, image_callback: Any = None, **overrides: Any) -> Run:
    """Load two photos (long side ``size``), make the preset's masks, run :func:`stylize`.

    Masks: :func:`files_mask_request` (gold when mask files are given; the
    segmenter ``segmenter`` -- a name, a built ADE20KSegmenter or None -- with
    ``theta_s`` for soft masks) made by ``semantic.request.make_masks``.
    ``overrides``: TransferConfig fields. ``callback``: stylize's, called after
    each evaluation with (iteration, loss terms); ``image_callback``: stylize's,
    with (iteration, the evaluated image).

    Raises
    ------
    PhotostyleError
        Bad options, unreadable files, masks that cannot be made.
    """
    config = get_preset(preset, **overrides)
    masks_given = content_mask is not None or style_mask is not None
    if config.uses_masks and content_mask is not None:
        config = config.replace(segmentation="gold")  # the metadata says which masks were used
    request = files_mask_request(config, masks_given=masks_given, segmenter=segmenter, theta_s=theta_s,
                                 unmatched=unmatched)
    c = load_image(content, max_size=size)
    s = load_image(style, max_size=size)
    built = None if segmenter is None or isinstance(segmenter, (str, os.PathLike)) else segmenter
    masks, mask_md = make_masks(request, c, s, content_mask=content_mask, style_mask=style_mask, segmenter=built,
                                device=config.device)
    inputs = {"content": str(content), "style": str(style), "size": size, "unmatched": unmatched,
              "segmenter_name": None if segmenter is None or not isinstance(segmenter, (str, os.PathLike))
              else str(segmenter),
              "content_mask": None if content_mask is None else str(content_mask),
              "style_mask": None if style_mask is None else str(style_mask),
              "mask_kind": None if masks is None else masks.kind,
              "mask_pipeline": None if masks is None else masks.pipeline,
              "dropped_content_labels": [] if masks is None else list(masks.dropped_content_labels)}
    inputs.update(mask_md)  # segmenter, its weights, theta_s (soft masks)
    result = stylize(c, s, config, masks=masks, progress=progress, callback=callback,
                     image_callback=image_callback)
    notes = mask_size_notes(masks, content, style, content_mask, style_mask)
    if notes:
        result = dataclasses.replace(result, notes=tuple(result.notes) + notes)
    return Run(result=result, content=c, style=s, masks=masks, preset=preset, inputs=inputs)


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


def request_record(content: Any, style: Any, *, content_mask: Any = None, style_mask: Any = None,
                   preset: str = "full", size: int | None = 512, unmatched: str = "error", segmenter: Any = None,
                   theta_s: float = DEFAULT_THETA_S, **overrides: Any) -> dict[str, Any]:
    """What a run from files depends on: its input files' bytes and every setting that changes the image.

    Written into a result's metadata (``request``, with its digest ``request_sha256``) so
    that "done" means done *with these inputs and settings* (``photostyle batch`` skips a
    row only when the record matches). The device, progress and snapshots are left out:
    they do not change the image.

    Parameters
    ----------
    content, style, content_mask, style_mask : path or None
        The files (their sha256 is recorded, not their names).
    preset, size, unmatched, segmenter, theta_s
        As :func:`transfer_files`.
    **overrides
        TransferConfig fields, as :func:`transfer_files` takes them.

    Returns
    -------
    dict
        ``{"content", "style", "content_mask", "style_mask"}`` -> sha256 or None, the
        weights file's sha256 (or its name), the preset, size, mask settings and
        ``config``: the resolved TransferConfig's fields the image depends on
        (``runs.relevant_config``).

    Raises
    ------
    PhotostyleError
        As ``get_preset`` (an unknown preset or a bad field).
    """
    from photostyle_lib.experiments.runs import relevant_config

    config = get_preset(preset, **overrides)
    files = {"content": content, "style": style, "content_mask": content_mask, "style_mask": style_mask}
    record: dict[str, Any] = {k: None if v is None else file_digest(v) for k, v in files.items()}
    weights = input_files(content, style, weights=config.weights)["weights"]
    record["weights"] = file_digest(weights) if weights is not None and Path(weights).is_file() else config.weights
    record.update(preset=preset, size=size, unmatched=unmatched,
                  segmenter=None if segmenter is None else str(segmenter),
                  theta_s=theta_s if config.uses_masks and content_mask is None else None,
                  config=relevant_config(config))
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

    Refuses (PhotostyleError) an output that is one of the run's input files
    (after resolving symlinks and ``..``), whatever ``overwrite`` says. Both
    files are written to temp files in the output's folder, fsync'ed, then
    renamed image first, metadata last (images.commit_files); the metadata's
    ``image_sha256`` is the image file's digest, so a pair torn by a crash
    between the two renames is detectable. Both get the mode of a plain file
    (images.FILE_MODE, 0644 under the usual umask).

    Parameters
    ----------
    run : Run
        A finished run (its result, preset, inputs and weights banner).
    output : str or os.PathLike
        The image path; the metadata goes to ``output + '.json'``.
    overwrite : bool
        Replace existing files at those paths.
    record : dict or None
        The run's :func:`request_record`, written as ``request`` with its digest
        ``request_sha256``.
    also : list of (Path, Path) or None
        Further staged files (``images.stage_file``: temp file, final path), e.g.
        ``--save-every`` snapshots, renamed with the image, before the metadata; they
        must have been checked (``outputs.check_outputs``) by the caller. Removed if
        anything fails.

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
    out = Path(output)
    meta = out.with_name(out.name + ".json")
    i = run.inputs
    also = list(also or [])
    try:
        check_outputs((out, meta), input_files(i.get("content"), i.get("style"), i.get("content_mask"),
                                               i.get("style_mask"), run.result.config.weights),
                      overwrite=overwrite, flag="overwrite=True (--overwrite)")
        image_tmp = stage_image(run.result.image, out, text=weights_text(run.weights_warning))
    except BaseException:
        for tmp, _ in also:
            tmp.unlink(missing_ok=True)
        raise
    try:
        md = run.result.metadata(preset=run.preset, inputs=run.inputs, output=str(out))
        md["random_weights"] = run.random_weights
        md["weights_warning"] = run.weights_warning
        md["image_sha256"] = file_digest(image_tmp)
        if record is not None:
            md["request"] = record
            md["request_sha256"] = record_digest(record)
        meta_tmp = stage_json(md, meta)
    except BaseException:
        for tmp in [image_tmp, *(t for t, _ in also)]:
            tmp.unlink(missing_ok=True)
        raise
    commit_files([(image_tmp, out), *also, (meta_tmp, meta)])
    return out, meta
