"""From files to a saved result: load images, make masks, run the engine, write metadata.

Shared by the doors (CLI, experiment runner, notebooks) so they all make
masks and record provenance the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import (RANDOM_WEIGHTS_BANNER, commit_files, load_image, refuse_overwriting_inputs,
                                   stage_image, weights_text)
from photostyle_lib.semantic.masks import SemanticMasks, load_gold_masks
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


@functools.lru_cache(maxsize=2)
def segmenter_from_name(name: str | None, device: str = "auto"):
    """An ADE20KSegmenter by name, built once per (name, device).

    ``None``: the default checkpoint (or ``$PHOTOSTYLE_SEGMENTER``); a hub id
    or a directory; ``"paper-scales"``: the default checkpoint with softmax
    averaged over the authors' code's four input scales (short sides 300, 400,
    500, 600: ``segmentation.PAPER_SCALES``);
    ``"random"``: random weights, the default architecture (timing);
    ``"random-tiny"``: random weights, a tiny model (tests, CI).
    """
    from photostyle_lib.semantic import segmentation

    if name == "paper-scales":
        return segmentation.ADE20KSegmenter(None, device=device, scales=segmentation.PAPER_SCALES)
    if name == "random-tiny":
        return segmentation.ADE20KSegmenter("random", config=segmentation.architecture_config(tiny=True),
                                            device=device, scales=None)
    return segmentation.ADE20KSegmenter(name, device=device)


def make_masks(content: torch.Tensor, style: torch.Tensor, config: TransferConfig, *,
               content_mask: str | os.PathLike | None = None, style_mask: str | os.PathLike | None = None,
               unmatched: str = "error", segmenter: Any = None,
               soft_pipeline: str = "authors") -> SemanticMasks | None:
    """The masks ``config`` asks for.

    * ``segmentation == "none"``: None.
    * mask files given: gold / user masks read from them (whatever the mode).
    * "soft" / "hard" without files: the ADE20K segmenter (``segmenter``: an
      ADE20KSegmenter, a checkpoint name, or None for the default one), with
      ``config.theta_s`` and ``soft_pipeline`` ("authors", the paper profile,
      or "merged": see ``segmentation.semantic_masks``) for soft masks.
    * "gold" without files: an error.
    """
    if not config.uses_masks:
        return None
    if content_mask is not None or style_mask is not None:
        if content_mask is None or style_mask is None:
            raise PhotostyleError("give both a content mask and a style mask, or neither")
        return load_gold_masks(content_mask, style_mask, unmatched=unmatched)
    if config.segmentation == "gold":
        raise PhotostyleError("this preset uses gold masks: give --content-mask and --style-mask "
                              "(the dataset's segmentation/in<N>.png and tar<N>.png)")
    from photostyle_lib.semantic import segmentation

    seg = segmenter_for(segmenter, config.device)
    return segmentation.semantic_masks(seg.probabilities(content), seg.probabilities(style),
                                       mode=config.segmentation, theta_s=config.theta_s,
                                       soft_pipeline=soft_pipeline)


def segmenter_for(segmenter: Any, device: str = "auto"):
    """An ADE20KSegmenter as given, or built by :func:`segmenter_from_name` from a name / None."""
    if segmenter is None or isinstance(segmenter, (str, os.PathLike)):
        return segmenter_from_name(None if segmenter is None else str(segmenter), device)
    return segmenter


def transfer_files(content: str | os.PathLike, style: str | os.PathLike, *, preset: str = "full",
                   size: int | None = 512, content_mask: str | os.PathLike | None = None,
                   style_mask: str | os.PathLike | None = None, unmatched: str = "error",
                   segmenter: Any = None, progress: bool = True, callback: Any = None, image_callback: Any = None,
                   **overrides: Any) -> Run:
    """Load two photos (long side ``size``), make the preset's masks, run :func:`stylize`.

    ``callback``: stylize's, called after each evaluation with (iteration, loss terms);
    ``image_callback``: stylize's, with (iteration, the evaluated image).
    """
    config = get_preset(preset, **overrides)
    if config.uses_masks and content_mask is not None:
        config = config.replace(segmentation="gold")  # the metadata says which masks were used
    c = load_image(content, max_size=size)
    s = load_image(style, max_size=size)
    masks = make_masks(c, s, config, content_mask=content_mask, style_mask=style_mask,
                       unmatched=unmatched, segmenter=segmenter)
    inputs = {"content": str(content), "style": str(style), "size": size, "unmatched": unmatched,
              "segmenter_name": None if segmenter is None or not isinstance(segmenter, (str, os.PathLike))
              else str(segmenter),
              "content_mask": None if content_mask is None else str(content_mask),
              "style_mask": None if style_mask is None else str(style_mask),
              "mask_kind": None if masks is None else masks.kind,
              "mask_pipeline": None if masks is None else masks.pipeline,
              "dropped_content_labels": [] if masks is None else list(masks.dropped_content_labels)}
    if masks is not None and masks.kind in ("hard", "soft"):
        seg = segmenter_for(segmenter, config.device)
        inputs["segmenter"] = seg.describe()
        inputs["segmenter_random_weights"] = seg.weights == "random"
    result = stylize(c, s, config, masks=masks, progress=progress, callback=callback,
                     image_callback=image_callback)
    notes = mask_size_notes(masks, content, style, content_mask, style_mask)
    if notes:
        result = dataclasses.replace(result, notes=tuple(result.notes) + notes)
    return Run(result=result, content=c, style=s, masks=masks, preset=preset, inputs=inputs)


@dataclass(frozen=True)
class EditableMasks:
    """Segmenter masks as palette label maps, for a user to repaint (``photostyle segment``).

    Attributes:
        content: (Hc, Wc) int64 indices into ``labels``.
        style: (Hs, Ws) int64 indices into ``labels``.
        labels: the merged ADE20K label names in use (at most 9: the palette's size).
        colours: ``colours[k]`` is the palette colour (``masks.PALETTE`` name) of ``labels[k]``.
    """

    content: Any
    style: Any
    labels: tuple[str, ...]
    colours: tuple[str, ...]


def editable_masks(content: torch.Tensor, style: torch.Tensor, *, segmenter: Any = None,
                   device: str = "auto", min_core_pixels: int = 30, erosion: int = 2) -> EditableMasks:
    """The segmenter's hard masks of two images as label maps that survive a palette round trip.

    The rule of ``segmentation.semantic_masks(mode="hard")``: merge similar
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

    Args:
        content, style: (1, 3, H, W) float in [0, 1].
        segmenter: an ADE20KSegmenter, a name (see :func:`segmenter_from_name`) or None.
    """
    from photostyle_lib.semantic import segmentation
    from photostyle_lib.semantic.masks import PALETTE, readable_label_map

    seg = segmenter_for(segmenter, device)
    pc, names = segmentation.merge_labels(seg.probabilities(content), seg.label_names)
    ps, _ = segmentation.merge_labels(seg.probabilities(style), seg.label_names)
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


def save_run(run: Run, output: str | os.PathLike, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write the image to ``output`` and its metadata to ``output + '.json'``, together and atomically.

    Refuses (PhotostyleError) an output that is one of the run's input files
    (after resolving symlinks and ``..``), whatever ``overwrite`` says. Both
    files are written to temp files in the output's folder, fsync'ed, then
    renamed image first, metadata last (images.commit_files); the metadata's
    ``image_sha256`` is the image file's digest, so a pair torn by a crash
    between the two renames is detectable. Both get the mode of a plain file
    (images.FILE_MODE, 0644 under the usual umask).
    """
    out = Path(output)
    meta = out.with_name(out.name + ".json")
    i = run.inputs
    refuse_overwriting_inputs((out, meta), input_files(i.get("content"), i.get("style"), i.get("content_mask"),
                                                       i.get("style_mask"), run.result.config.weights))
    if not overwrite:
        for p in (out, meta):
            if p.exists():
                raise PhotostyleError(f"{p} already exists; choose another path or pass overwrite=True")
    image_tmp = stage_image(run.result.image, out, text=weights_text(run.weights_warning))
    try:
        md = run.result.metadata(preset=run.preset, inputs=run.inputs, output=str(out))
        md["random_weights"] = run.random_weights
        md["weights_warning"] = run.weights_warning
        md["image_sha256"] = file_digest(image_tmp)
        meta_tmp = stage_json(md, meta)
    except BaseException:
        image_tmp.unlink(missing_ok=True)
        raise
    commit_files([(image_tmp, out), (meta_tmp, meta)])
    return out, meta
