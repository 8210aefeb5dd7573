"""Argument checks shared by every module, raising :class:`PhotostyleError`.

Each helper quotes what it received, so a message reads like
``alpha must be a finite number >= 0, got -1.0``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from photostyle_lib.errors import PhotostyleError


def check_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    """Return ``value`` as a float after checking it is finite and in range.

    Parameters
    ----------
    name : str
        The argument's name, for the message.
    value : object
        Anything ``float()`` accepts.
    low, high : float or None, keyword-only
        Bounds; None: unbounded on that side.
    low_inclusive, high_inclusive : bool, keyword-only
        Whether a bound itself is allowed.

    Returns
    -------
    float

    Raises
    ------
    PhotostyleError
        If ``value`` is not a number, not finite, or out of range; the message names
        ``name``, the allowed range and the value.
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise PhotostyleError(f"{name} must be a number, got {value!r}") from None
    rng = _describe_range(low, high, low_inclusive, high_inclusive)
    if not math.isfinite(v):
        raise PhotostyleError(f"{name} must be a finite number{rng}, got {value!r}")
    if low is not None and (v < low or (v == low and not low_inclusive)):
        raise PhotostyleError(f"{name} must be a finite number{rng}, got {value!r}")
    if high is not None and (v > high or (v == high and not high_inclusive)):
        raise PhotostyleError(f"{name} must be a finite number{rng}, got {value!r}")
    return v


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int after checking it is an integer in ``[low, high]``.

    Parameters
    ----------
    name : str
        The argument's name, for the message.
    value : object
        An int, a numpy integer or an integral float (``2.0``); bools are refused.
    low, high : int or None, keyword-only
        Inclusive bounds; None: unbounded on that side.

    Returns
    -------
    int

    Raises
    ------
    PhotostyleError
        If ``value`` is not an integer or is out of range.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise PhotostyleError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        raise PhotostyleError(f"{name} must be an integer{_describe_range(low, high, True, True)}, got {v}")
    return v


def check_choice(name: str, value: Any, choices: tuple[str, ...] | list[str]) -> str:
    """Return ``value`` if it is one of ``choices``.

    Parameters
    ----------
    name : str
        The argument's name, for the message.
    value : object
    choices : sequence of str

    Returns
    -------
    str
        ``value``, unchanged.

    Raises
    ------
    PhotostyleError
        If ``value`` is not one of ``choices``, listing them.
    """
    if value not in choices:
        raise PhotostyleError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_image_array(name: str, image: Any, *, channels: int | None = 3) -> np.ndarray:
    """Check an image array (H, W, C) float with values in [0, 1]; return it as float64.

    Parameters
    ----------
    name : str
        The image's role ("content", "style", ...), for the message.
    image : array_like, (H, W, C)
        Any real floating dtype.
    channels : int or None, keyword-only
        Required C; None: any.

    Returns
    -------
    numpy.ndarray, (H, W, C), float64 in [0, 1]
        No copy when ``image`` is already float64.

    Raises
    ------
    PhotostyleError
        For integer or complex dtypes (an 8-bit image is 0-255: divide by 255), wrong
        rank, channel count, an empty image, non-finite values or values outside
        [0, 1] (beyond 1e-6 slack).
    """
    arr = np.asarray(image)
    if arr.ndim != 3 or (channels is not None and arr.shape[2] != channels):
        want = f"(H, W, {channels})" if channels is not None else "(H, W, C)"
        raise PhotostyleError(f"{name} must be an array of shape {want}, got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise PhotostyleError(f"{name} is empty (shape {arr.shape})")
    if not np.issubdtype(arr.dtype, np.floating):
        hint = "; divide 8-bit images by 255" if np.issubdtype(arr.dtype, np.integer) else ""
        raise PhotostyleError(f"{name} must be a float array in [0, 1], got dtype {arr.dtype}{hint}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise PhotostyleError(f"{name} contains NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise PhotostyleError(
            f"{name} values must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}]; "
            "divide 8-bit images by 255 (photostyle_lib.io.images.load_image does this)")
    return arr


def check_same_size(name_a: str, a_shape: tuple[int, ...], name_b: str, b_shape: tuple[int, ...]) -> None:
    """Check that the spatial sizes (H, W) of two arrays agree.

    Parameters
    ----------
    name_a, name_b : str
        The arrays' roles, for the message.
    a_shape, b_shape : tuple of int
        Shapes starting with (H, W).

    Raises
    ------
    PhotostyleError
        If the (H, W) differ.
    """
    if tuple(a_shape[:2]) != tuple(b_shape[:2]):
        raise PhotostyleError(
            f"{name_a} is {a_shape[0]}x{a_shape[1]} (HxW) but {name_b} is {b_shape[0]}x{b_shape[1]}; "
            "resize one to the other's size first")


def check_region_masks(content_masks: Any, style_masks: Any, image_shape: tuple[int, ...],
                  style_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The per-region transfers' mask stacks checked: (C, H, W) and (C, H', W') float64, finite, >= 0.

    Parameters
    ----------
    content_masks, style_masks : array-like (C, H, W) and (C, H', W')
        Weights in [0, 1] per label for the image being changed and for the style.
    image_shape, style_shape : tuple
        The two images' shapes ((H, W, ...) and (H', W', ...)).

    Raises
    ------
    PhotostyleError
        When a stack's shape does not fit its image, the label counts differ, or a value
        is negative or not finite.
    """
    cm = np.asarray(content_masks, dtype=np.float64)
    sm = np.asarray(style_masks, dtype=np.float64)
    if cm.ndim != 3 or cm.shape[1:] != tuple(image_shape[:2]):
        raise PhotostyleError(f"content_masks must be (C, {image_shape[0]}, {image_shape[1]}), got {cm.shape}; "
                              "resize them to the image (masks.resize_masks)")
    if sm.ndim != 3 or sm.shape[1:] != tuple(style_shape[:2]) or sm.shape[0] != cm.shape[0]:
        raise PhotostyleError(f"style_masks must be ({cm.shape[0]}, {style_shape[0]}, {style_shape[1]}), got "
                              f"{sm.shape}; give the same labels as the content's, at the style's size")
    if not (np.isfinite(cm).all() and np.isfinite(sm).all()) or cm.min() < 0 or sm.min() < 0:
        raise PhotostyleError("masks must be finite and >= 0 (weights in [0, 1])")
    return cm, sm


def _describe_range(low, high, low_inclusive, high_inclusive) -> str:
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>=' if low_inclusive else '>'} {low}"
    if low is None:
        return f" {'<=' if high_inclusive else '<'} {high}"
    lb = "[" if low_inclusive else "("
    hb = "]" if high_inclusive else ")"
    return f" in {lb}{low}, {high}{hb}"


def resolve_device(device: str | torch.device) -> torch.device:
    """Resolve a device: "auto" -> CUDA if available, else Apple MPS, else CPU; others checked as given.

    Parameters
    ----------
    device : str or torch.device
        "auto", "cpu", "cuda", "cuda:N", "mps", or a torch.device.

    Returns
    -------
    torch.device

    Raises
    ------
    PhotostyleError
        If the name is unknown, or names CUDA (or a CUDA index) or MPS that this
        machine does not have.
    """
    if isinstance(device, torch.device):
        if device.type == "cuda" and not torch.cuda.is_available():
            raise PhotostyleError(f"device {str(device)!r} asked for but CUDA is not available here; "
                                  "use --device cpu or auto")
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise PhotostyleError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PhotostyleError(f"device {device!r} asked for but CUDA is not available here; use --device cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise PhotostyleError(f"device {device!r} asked for but this machine has {torch.cuda.device_count()} "
                              "CUDA device(s); use cuda:0 or auto")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) is not None
                                  and torch.backends.mps.is_available()):
        raise PhotostyleError(f"device {device!r} asked for but Apple MPS is not available here; use cpu or auto")
    return dev
