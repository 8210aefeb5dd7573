"""Image input/output and conversions between tensors and arrays.

Conventions used across the project:

* a *tensor image* is ``torch.float32`` of shape (1, 3, H, W) with values in [0, 1];
* an *array image* is ``numpy`` float of shape (H, W, 3) with values in [0, 1]
  (the maths modules -- matting, postprocess, baselines, metrics -- take these).

Atomic writes live in :mod:`photostyle_lib.io.atomic` and the weights banners in
:mod:`photostyle_lib.io.provenance`; their names are re-exported here.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from photostyle_lib.checks import check_image_array, check_int
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.outputs import refuse_overwriting_inputs, temp_prefix  # noqa: F401 (re-exported)
from photostyle_lib.io.atomic import (  # re-exported
    FILE_MODE,
    check_writable,
    commit_files,
    stage_file,
    write_error,
    write_file_atomically,
)
from photostyle_lib.io.provenance import (  # re-exported
    ORIGINAL_VGG19_BANNER,
    RANDOM_WEIGHTS_BANNER,
    RANDOM_WEIGHTS_TEXT,
    STAND_IN_BANNER,
    STAND_IN_TEXT,
    WEIGHTS_TEXT_KEY,
    is_caution,
    merge_warnings,
    weights_text,
)

PathLike = str | os.PathLike

__all__ = [
    "FILE_MODE", "ORIGINAL_VGG19_BANNER", "PathLike", "RANDOM_WEIGHTS_BANNER", "RANDOM_WEIGHTS_TEXT",
    "STAND_IN_BANNER", "STAND_IN_TEXT", "WEIGHTS_TEXT_KEY", "array_to_tensor", "as_image_array",
    "as_image_tensor", "check_writable", "commit_files", "is_caution", "load_image", "merge_warnings",
    "read_rgb_array", "refuse_overwriting_inputs", "resize_tensor", "save_image", "scaled_size", "stage_file",
    "stage_image", "temp_prefix", "tensor_to_array", "weights_text", "write_error", "write_file_atomically",
]


def _pil_to_rgb_array(img: Image.Image) -> np.ndarray:
    """PIL image of any common mode -> (H, W, 3) float32 in [0, 1]."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit integer) greyscale: scale by the type's range, not 255.
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() <= 65535 else float(arr.max())
        grey = np.clip(arr / top, 0.0, 1.0).astype(np.float32)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "F":
        grey = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # Composite onto white: transparent pixels of a photo carry no colour.
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(base, rgba)
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return arr


def read_rgb_array(path: PathLike) -> np.ndarray:
    """Read an image file as an (H, W, 3) float32 array in [0, 1].

    Greyscale, palette, RGBA (composited on white) and 16-bit files are all
    converted to RGB; 16-bit files are scaled by 65535 and keep their full
    precision. The EXIF orientation is applied (pixels as the camera was held).

    Parameters
    ----------
    path : str or os.PathLike
        An image file PIL can read (PNG, JPEG, TIFF, BMP, ...).

    Returns
    -------
    numpy.ndarray, (H, W, 3), float32 in [0, 1]

    Raises
    ------
    PhotostyleError
        If the file is missing, a directory, not a readable image, 48-bit RGB, or declares more
        pixels than Pillow's bomb limit (``Image.MAX_IMAGE_PIXELS``).
    """
    p = Path(path)
    if not p.exists():
        raise PhotostyleError(f"image file not found: {p}; check the path")
    if p.is_dir():
        raise PhotostyleError(f"{p} is a directory, not an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # one line, not Pillow's two
            img = Image.open(p)
        with img:
            img.load()
            img = ImageOps.exif_transpose(img)  # phone photos: pixels as the camera was held
            if img.mode in ("RGB;16", "RGB;16B"):
                raise PhotostyleError(f"{p}: unsupported 48-bit mode {img.mode}; save it as 8- or 16-bit PNG")
            return _pil_to_rgb_array(img)
    except PhotostyleError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotostyleError(f"{p} declares more than {Image.MAX_IMAGE_PIXELS} pixels (a damaged file or a "
                              "decompression bomb); give a photo of at most ~89 megapixels, downscaled first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise PhotostyleError(
            f"cannot read {p} as an image ({type(exc).__name__}: {exc}); "
            "give a PNG, JPEG, TIFF or BMP file") from None


def array_to_tensor(array: np.ndarray) -> torch.Tensor:
    """Convert an array image to the tensor layout.

    Parameters
    ----------
    array : array_like, (H, W, 3), float in [0, 1]
        Values are converted, not checked (see :func:`as_image_tensor` for the checked form).

    Returns
    -------
    torch.Tensor, (1, 3, H, W), float32, contiguous, on the CPU

    Raises
    ------
    PhotostyleError
        If the array is not (H, W, 3).
    """
    arr = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise PhotostyleError(f"expected an array of shape (H, W, 3), got {arr.shape}")
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def _hwc64(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """(1, 3, H, W) or (3, H, W) tensor -> (H, W, 3) float64 CPU tensor, shape-checked."""
    t = tensor.detach()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise PhotostyleError(f"{name} must be one image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.ndim != 3 or t.shape[0] != 3:
        raise PhotostyleError(f"{name} must be a tensor of shape (1, 3, H, W), got {tuple(tensor.shape)}")
    return t.permute(1, 2, 0).to("cpu", torch.float64)


def tensor_to_array(tensor: torch.Tensor) -> np.ndarray:
    """Convert a tensor image to the array layout.

    Parameters
    ----------
    tensor : torch.Tensor, (1, 3, H, W) or (3, H, W), float
        On any device; detached.

    Returns
    -------
    numpy.ndarray, (H, W, 3), float64, clipped to [0, 1]

    Raises
    ------
    PhotostyleError
        If the tensor is not (1, 3, H, W) or (3, H, W) (e.g. a batch of several images).
    """
    return _hwc64(tensor, "the image").clamp(0, 1).numpy()


def as_image_array(name: str, image: torch.Tensor | np.ndarray) -> np.ndarray:
    """The project's one image check, array side: checked (H, W, 3) float64 in [0, 1].

    Parameters
    ----------
    name : str
        What the image is, for the error message ("content", "panel 'full'").
    image : tensor (1, 3, H, W) or (3, H, W), or array (H, W, 3); floating dtype
        Values in [0, 1] (1e-6 slack). Nothing is clamped: a value outside is an error, and so
        is an integer dtype (8-bit images are 0-255: divide by 255).

    Returns
    -------
    ndarray (H, W, 3) float64, a new array or ``image`` itself when already float64.

    Raises
    ------
    PhotostyleError
        Naming ``name``: wrong shape, a batch of more than one, empty, NaN / inf, or values
        outside [0, 1].
    """
    if isinstance(image, torch.Tensor):
        if not image.is_floating_point():
            hint = "" if image.is_complex() else "; divide 8-bit images by 255"
            raise PhotostyleError(f"{name} must be a float tensor in [0, 1], got dtype {image.dtype}{hint}")
        image = _hwc64(image, name).numpy()
    return check_image_array(name, image)


def as_image_tensor(name: str, image: torch.Tensor | np.ndarray, *, min_side: int = 1) -> torch.Tensor:
    """The project's one image check, tensor side: checked (1, 3, H, W) float32 in [0, 1].

    The same rules as :func:`as_image_array` (it is the check for arrays), plus a smallest
    side. A tensor keeps its device.

    Parameters
    ----------
    name : str
        What the image is, for the error message.
    image : tensor (1, 3, H, W) or (3, H, W), or array (H, W, 3); values in [0, 1]
    min_side : int
        Smallest allowed height and width in pixels (the engine needs 16).

    Returns
    -------
    Tensor (1, 3, H, W) float32, contiguous.

    Raises
    ------
    PhotostyleError
        As :func:`as_image_array`, or when H or W is below ``min_side``.
    """
    if isinstance(image, torch.Tensor):
        t = image.detach()
        if t.ndim == 3:
            t = t.unsqueeze(0)
        if t.ndim == 4 and t.shape[0] != 1:
            raise PhotostyleError(f"{name} must be one image, got a batch of {t.shape[0]}")
        if t.ndim != 4 or t.shape[1] != 3:
            raise PhotostyleError(f"{name} must be a tensor of shape (1, 3, H, W) "
                                  f"(photostyle_lib.io.images.load_image), got {tuple(image.shape)}")
        if not t.is_floating_point():
            hint = "" if t.is_complex() else "; divide 8-bit images by 255"
            raise PhotostyleError(f"{name} must be a float tensor in [0, 1], got dtype {t.dtype}{hint}")
        t = t.to(torch.float32)
        if t.shape[2] < 1 or t.shape[3] < 1:
            raise PhotostyleError(f"{name} is empty (shape {tuple(t.shape)})")
        if not torch.isfinite(t).all():
            raise PhotostyleError(f"{name} contains NaN or infinite values")
        lo, hi = float(t.min()), float(t.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise PhotostyleError(f"{name} values must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}]; "
                                  "divide 8-bit images by 255 (photostyle_lib.io.images.load_image does this)")
    else:
        t = array_to_tensor(check_image_array(name, image))
    if t.shape[2] < min_side or t.shape[3] < min_side:
        raise PhotostyleError(f"{name} is {t.shape[2]}x{t.shape[3]} px; images need at least "
                              f"{min_side}x{min_side} px")
    return t.contiguous()


def scaled_size(height: int, width: int, max_size: int | None) -> tuple[int, int]:
    """Size (H, W) scaled so that the long side is at most ``max_size`` (never upscaled).

    Parameters
    ----------
    height, width : int
        The image's size in pixels.
    max_size : int >= 8 or None
        Largest long side in pixels; None keeps the size.

    Returns
    -------
    (int, int)
        (H', W'), the aspect ratio kept up to rounding, each side >= 1.

    Raises
    ------
    PhotostyleError
        If ``max_size`` is not an integer >= 8.
    """
    if max_size is None:
        return height, width
    max_size = check_int("max_size", max_size, low=8)
    long_side = max(height, width)
    if long_side <= max_size:
        return height, width
    s = max_size / long_side
    return max(1, round(height * s)), max(1, round(width * s))


def resize_tensor(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a tensor image to ``size`` (bilinear, antialiased).

    Parameters
    ----------
    t : torch.Tensor, (1, 3, H, W), float in [0, 1]
    size : (int, int)
        Target (H', W') in pixels.

    Returns
    -------
    torch.Tensor, (1, 3, H', W'), clamped to [0, 1]
        ``t`` itself when it already has that size.
    """
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    out = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out.clamp_(0.0, 1.0)


def load_image(path: PathLike, max_size: int | None = None) -> torch.Tensor:
    """Load an image file as a float32 tensor (1, 3, H, W) with values in [0, 1].

    Parameters
    ----------
    path : str or os.PathLike
        Image file (PNG, JPEG, ...; greyscale, palette, RGBA, 16-bit), read by
        :func:`read_rgb_array`.
    max_size : int >= 8 or None
        If given, the long side in pixels after downscaling (aspect ratio kept;
        images are never upscaled).

    Returns
    -------
    torch.Tensor, (1, 3, H, W), float32 in [0, 1], on the CPU

    Raises
    ------
    PhotostyleError
        As :func:`read_rgb_array`, or if ``max_size`` is not an integer >= 8.
    """
    t = array_to_tensor(read_rgb_array(path))
    return resize_tensor(t, scaled_size(t.shape[2], t.shape[3], max_size))


def stage_image(image: torch.Tensor | np.ndarray, path: PathLike, *,
                text: dict[str, str] | None = None) -> Path:
    """Encode an image for ``path`` (format from its suffix) into a staged temp file (:func:`stage_file`).

    Parameters
    ----------
    image : torch.Tensor (1, 3, H, W) or array (H, W, 3), float in [0, 1]
        Clipped to [0, 1] and written as 8-bit (rounded, times 255).
    path : str or os.PathLike
        The final path; its folder is created if needed.
    text : dict of str to str, optional, keyword-only
        PNG text chunks (ignored for other formats).

    Returns
    -------
    pathlib.Path
        The staged temp file, for :func:`commit_files`.

    Raises
    ------
    PhotostyleError
        Naming the file: the image is not (H, W, 3), the suffix is unknown, the
        path is a folder or not writable, or the disk is full.
    """
    p = Path(path)
    arr = tensor_to_array(image) if isinstance(image, torch.Tensor) else np.asarray(image, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise PhotostyleError(f"expected an image of shape (H, W, 3), got {arr.shape}")
    check_writable(p)
    fmt = Image.registered_extensions().get(p.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise PhotostyleError(f"cannot write {p} (unknown image suffix {p.suffix!r}); use a .png or .jpg suffix")
    u8 = np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    extra = {}
    if text and fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        for k, v in text.items():
            info.add_text(str(k), str(v))
        extra["pnginfo"] = info
    try:
        return stage_file(p, lambda f: Image.fromarray(u8, "RGB").save(f, format=fmt, **extra))
    except (KeyError, ValueError) as exc:
        raise PhotostyleError(f"cannot write {p} ({exc}); use a .png or .jpg suffix") from None
    except OSError as exc:
        raise PhotostyleError(f"cannot write {p} ({exc.strerror or exc}); free some space or choose "
                              "a writable path (the old file, if any, is unchanged)") from None


def save_image(image: torch.Tensor | np.ndarray, path: PathLike, *, overwrite: bool = False,
               text: dict[str, str] | None = None) -> Path:
    """Write an image as 8-bit, atomically.

    The format follows the suffix (PNG recommended). Written to a temp file in the
    same folder, fsync'ed and renamed (:func:`stage_image`, :func:`commit_files`): a
    kill or a full disk mid-write leaves the old file (or none), never a truncated one.

    Parameters
    ----------
    image : torch.Tensor (1, 3, H, W) or array (H, W, 3), float in [0, 1]
    path : str or os.PathLike
    overwrite : bool, keyword-only
        Replace an existing file; refused otherwise.
    text : dict of str to str, optional, keyword-only
        Key/value pairs stored as PNG text chunks (e.g. :data:`RANDOM_WEIGHTS_TEXT`
        or :data:`STAND_IN_TEXT`, so the file itself says it came from random or
        stand-in weights).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    PhotostyleError
        If ``path`` exists and not ``overwrite``, or as :func:`stage_image`.
    """
    p = Path(path)
    if p.exists() and not overwrite:
        raise PhotostyleError(f"{p} already exists; choose another path or pass overwrite=True (--overwrite)")
    commit_files([(stage_image(image, p, text=text), p)])
    return p
