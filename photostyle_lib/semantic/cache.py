"""Segmenter probabilities on disk and in memory, keyed by what they depend on (house style 8).

A run's variants (theta_s, the soft pipeline, hard against soft) share one
segmentation: :class:`SegmentationCache` keeps the (150, H, W) probabilities
of :meth:`photostyle_lib.semantic.segmenter.ADE20KSegmenter.probabilities`,
keyed by the image's bytes and the segmenter's :meth:`describe` (checkpoint
identity, scales, normalisation).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from photostyle_lib.checks import check_int
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import PathLike, as_image_tensor
from photostyle_lib.io.outputs import remove_stale_temps, temp_prefix
from photostyle_lib.semantic.ade20k import NUM_ADE20K_LABELS

if TYPE_CHECKING:
    from photostyle_lib.semantic.segmenter import ADE20KSegmenter

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

    Parameters
    ----------
    directory : str or os.PathLike or None
        Where to keep ``<key>.npz`` files (float16 log-probabilities and the
        key's ingredients as JSON); None for memory only.
    memory : bool
        Also keep entries in memory (float16, the ``max_memory_items`` most
        recently used ones).
    max_memory_items : int
        Bound on in-memory entries, >= 1 (a 700 px image's probabilities take
        ~110 MB at float16).

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
    either the old entry or none (a killed writer's temp file is removed by the
    next write of that entry). A damaged entry (zeroed, truncated, flipped bytes,
    another key) is discarded with one warning line on stderr, counts as a miss
    and is rewritten.

    Raises
    ------
    PhotostyleError
        Neither a directory nor memory, a directory path that is a file, a bad
        ``max_memory_items``.
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
    def key_parts(segmenter: "ADE20KSegmenter", image: torch.Tensor | np.ndarray) -> dict[str, Any]:
        """What a cached probability map depends on.

        Parameters
        ----------
        segmenter : ADE20KSegmenter
        image : torch.Tensor (1, 3, H, W) or array (H, W, 3), float in [0, 1]

        Returns
        -------
        dict
            ``format`` (of the cache files), ``image_sha1``, ``shape`` [H, W] and
            ``segmenter`` (its ``describe()``): hashed by :meth:`key_from_parts`.

        Raises
        ------
        PhotostyleError
            If ``image`` is not an image in [0, 1] (``io.images.as_image_tensor``).
        """
        t = as_image_tensor("image", image).cpu()
        return {"format": _CACHE_FORMAT, "image_sha1": image_digest(t), "shape": list(t.shape[-2:]),
                "segmenter": segmenter.describe()}

    @staticmethod
    def key_from_parts(parts: dict[str, Any]) -> str:
        """The sha1 hex digest of ``parts`` as sorted-key JSON: the cache key."""
        return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def key(self, segmenter: "ADE20KSegmenter", image: torch.Tensor | np.ndarray) -> str:
        """The hex key under which ``segmenter``'s probabilities of ``image`` are stored."""
        return self.key_from_parts(self.key_parts(segmenter, image))

    def path(self, key: str) -> Path | None:
        """The ``<key>.npz`` file of ``key`` in the cache folder, or None for a memory-only cache."""
        return None if self.directory is None else self.directory / f"{key}.npz"

    def probabilities(self, segmenter: "ADE20KSegmenter", image: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``segmenter.probabilities(image)``, from the cache when there.

        Parameters
        ----------
        segmenter : ADE20KSegmenter
            Anything with ``describe()`` (the key) and ``probabilities(image)``.
        image : torch.Tensor or numpy.ndarray
            (1, 3, H, W) or (H, W, 3), float in [0, 1].

        Returns
        -------
        torch.Tensor
            (150, H, W) float32 probabilities, each pixel summing to 1: the
            softmax of the stored float16 log-probabilities, on a miss as on a hit.
        """
        t = as_image_tensor("image", image).cpu()
        parts = self.key_parts(segmenter, t)
        key = self.key_from_parts(parts)
        q = self._load(key, parts)
        if q is not None:
            self.hits += 1
            return _dequantise(q)
        self.misses += 1
        q = _quantise(segmenter.probabilities(t))
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
            problem = None if meta == parts and tuple(q.shape) == (NUM_ADE20K_LABELS, *parts["shape"]) \
                else "its key or shape does not match"
        except Exception as exc:  # noqa: BLE001 -- zeroed or flipped bytes fail in zipfile, zlib, numpy, json
            problem = f"unreadable: {type(exc).__name__}"
        if problem is not None:
            self._discard(p, problem)
            return None
        self._remember(key, q)
        return q

    @staticmethod
    def _discard(path: Path, problem: str) -> None:
        """Remove a damaged entry with one warning line, so the next call recomputes and rewrites it."""
        print(f"photostyle: warning: segmentation cache entry {path} is damaged ({problem}); discarding and "
              "recomputing it", file=sys.stderr, flush=True)
        with contextlib.suppress(OSError):
            path.unlink()

    def _store(self, key: str, parts: dict[str, Any], q: torch.Tensor) -> None:
        self._remember(key, q)
        p = self.path(key)
        if p is None:
            return
        remove_stale_temps(p)  # left by a killed writer
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(p.name), suffix=".tmp", dir=p.parent)
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
