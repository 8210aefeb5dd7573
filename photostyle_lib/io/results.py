"""A result on disk: the image, labelled with its weights, and its metadata beside it, written together.

:func:`save_result` is what a user calls after ``stylize`` (the README's example);
:func:`write_result_files` is the writer every door shares (``photostyle transfer`` and
``batch`` through ``experiments.pipeline.run_to_files``, the app's Save): both files are
staged in the output's folder, fsync'ed and renamed image first, metadata last
(``images.commit_files``); the metadata's ``image_sha256`` is the image file's digest, so a
pair torn by a crash between the two renames is detectable. An existing file is never
replaced without ``overwrite``, and an input of the run never, whatever ``overwrite`` says.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import commit_files, stage_image, weights_text
from photostyle_lib.io.metadata import file_digest, stage_json
from photostyle_lib.io.outputs import check_outputs

#: Suffixes :func:`save_result` writes (the image format follows the suffix).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


class ResultLike(Protocol):
    """What :func:`save_result` reads of an ``engine.config.TransferResult``."""

    image: Any
    weights_warning: str | None

    def metadata(self, **extra: Any) -> dict[str, Any]:
        """JSON-ready provenance of the run (config, network, timings, stop reason), ``extra`` added."""
        ...


def metadata_path(image_path: str | os.PathLike) -> Path:
    """Where an image's metadata goes: ``<image path>.json`` (``out.png`` -> ``out.png.json``)."""
    p = Path(image_path)
    return p.with_name(p.name + ".json")


def write_result_files(image: Any, path: str | os.PathLike, metadata: dict[str, Any], *,
                       weights_warning: str | None, overwrite: bool = False,
                       inputs: Mapping[str, Any] | None = None, also: list[tuple[Path, Path]] | None = None,
                       flag: str = "overwrite=True") -> tuple[Path, Path]:
    """Write ``image`` to ``path`` (PNG text chunk: its weights banner) and ``metadata`` to ``path.json``, atomically.

    Parameters
    ----------
    image : torch.Tensor (1, 3, H, W) or array (H, W, 3), float in [0, 1]
        The result image (8-bit on disk).
    path : str or os.PathLike
        The image path (``~`` expanded); the metadata goes to :func:`metadata_path`.
    metadata : dict
        JSON-ready provenance; ``output`` and ``image_sha256`` are added.
    weights_warning : str or None
        The banner of the weights that made the image (``images.weights_text``); None for the
        paper's network (no text chunk).
    overwrite : bool
        Replace existing files at the two paths.
    inputs : mapping of role to path or None, optional
        The files the run read (content, style, masks, a weights file): never replaced.
    also : list of (Path, Path), optional
        Further staged files (temp file, final path), renamed with the image before the
        metadata (e.g. ``--save-every`` snapshots, checked by the caller); removed if anything fails.
    flag : str
        How the caller says ``overwrite``, for the refusal's message.

    Returns
    -------
    tuple of Path
        ``(image path, metadata path)``.

    Raises
    ------
    PhotostyleError
        If either path is one of ``inputs``, exists and ``overwrite`` is False, is a folder, or
        cannot be written.
    """
    out = Path(path).expanduser()
    meta = metadata_path(out)
    also = list(also or [])
    try:
        check_outputs((out, meta), inputs, overwrite=overwrite, flag=flag)
        image_tmp = stage_image(image, out, text=weights_text(weights_warning))
    except BaseException:
        for tmp, _ in also:
            tmp.unlink(missing_ok=True)
        raise
    try:
        md = {**metadata, "output": str(out), "weights_warning": weights_warning,
              "image_sha256": file_digest(image_tmp)}
        meta_tmp = stage_json(md, meta)
    except BaseException:
        for tmp in [image_tmp, *(t for t, _ in also)]:
            tmp.unlink(missing_ok=True)
        raise
    commit_files([(image_tmp, out), *also, (meta_tmp, meta)])
    return out, meta


def save_result(result: ResultLike, path: str | os.PathLike, *, overwrite: bool = False,
                inputs: Mapping[str, Any] | None = None) -> Path:
    """Save a ``stylize`` result: the image at ``path``, its metadata at ``path + '.json'``, together.

    The image (8-bit, format from the suffix) carries the weights banner in a PNG text chunk
    (``images.weights_text(result.weights_warning)``: random weights, the VGG-16 stand-in or
    the original VGG-19 say so in the file itself); the JSON is ``result.metadata()`` (the
    config, the network, timings, stop reason, versions) with the image's sha256.

    Parameters
    ----------
    result : TransferResult
        What ``photostyle_lib.stylize`` returned.
    path : str or os.PathLike
        The image path, ending in an image suffix (:data:`IMAGE_SUFFIXES`, e.g. ``.png``).
    overwrite : bool, keyword-only
        Replace an existing image or metadata file (default: refuse).
    inputs : mapping of role to path, optional, keyword-only
        The files the result was made from (``{"content": ..., "style": ...}``): never replaced.

    Returns
    -------
    pathlib.Path
        The image path written (its metadata: the same path + ``.json``).

    Raises
    ------
    PhotostyleError
        If ``path`` has no image suffix, is one of ``inputs``, exists without ``overwrite``, or
        cannot be written.
    """
    out = Path(path).expanduser()
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise PhotostyleError(f"save_result: {out} needs an image suffix such as .png")
    written, _ = write_result_files(result.image, out, result.metadata(), weights_warning=result.weights_warning,
                                    overwrite=overwrite, inputs=inputs)
    return written
