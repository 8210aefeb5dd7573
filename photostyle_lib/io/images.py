"""Image input/output and conversions between tensors and arrays.

Conventions used across the project:

* a *tensor image* is ``torch.float32`` of shape (1, 3, H, W) with values in [0, 1];
* an *array image* is ``numpy`` float of shape (H, W, 3) with values in [0, 1]
  (the maths modules -- matting, postprocess, baselines, metrics -- take these).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from photostyle_lib.checks import check_image_array, check_int
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.outputs import refuse_overwriting_inputs, temp_prefix  # noqa: F401 (re-exported)

PathLike = str | os.PathLike


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


#: The banner of everything made with randomly initialised weights (VGG or segmenter):
#: figure titles, panels, metadata ``weights_warning``.
RANDOM_WEIGHTS_BANNER = "RANDOM WEIGHTS \u2014 smoke test, not a style transfer"
#: The banner of everything made with the trained stand-in network (``weights="hed-vgg16"``;
#: the same text as ``vgg.VGGFeatures.weights_warning``).
STAND_IN_BANNER = "VGG-16 stand-in (HED, BSDS500) \u2014 not the paper's ImageNet VGG-19"
#: The banner of everything made with the original VGG-19 (``weights="imagenet-vgg19-caffe"``): a note
#: naming the network, not a warning (:func:`is_caution`) -- a real ImageNet VGG-19, but not the
#: paper's torchvision one (retrained by torchvision; RGB, mean / std inputs; unquantised).
ORIGINAL_VGG19_BANNER = ("original VGG-19 (Caffe release, 8-bit quantised) \u2014 not the paper's torchvision "
                         "VGG-19, whose weights torchvision retrained")
#: PNG text chunk key saying which weights made an image (see :func:`weights_text`).
WEIGHTS_TEXT_KEY = "photostyle:weights"


def weights_text(warning: str | None) -> dict[str, str] | None:
    """The PNG text chunk for an image made under a weights banner, or None for the real network.

    Parameters
    ----------
    warning : str or None
        A banner (:data:`RANDOM_WEIGHTS_BANNER`, :data:`STAND_IN_BANNER`) or None.

    Returns
    -------
    dict or None
        ``{WEIGHTS_TEXT_KEY: banner}`` with the em dash as " - ", so the chunk is a
        plain Latin-1 tEXt; None when ``warning`` is empty or None.
    """
    if not warning:
        return None
    return {WEIGHTS_TEXT_KEY: warning.replace(" \u2014 ", " - ")}


def is_caution(banner: str | None) -> bool:
    """Whether a weights banner warns (random weights, the stand-in) rather than only names the network.

    Parameters
    ----------
    banner : str or None
        A banner, or several joined by "; " (:func:`merge_warnings`).

    Returns
    -------
    bool
        True when it holds :data:`RANDOM_WEIGHTS_BANNER` or :data:`STAND_IN_BANNER`: drawn in red
        and stamped on panels. :data:`ORIGINAL_VGG19_BANNER` alone is a note (plain title line,
        PNG text chunk, metadata).
    """
    return bool(banner) and (RANDOM_WEIGHTS_BANNER in banner or STAND_IN_BANNER in banner)


def merge_warnings(warnings: Iterable[str | None]) -> str | None:
    """One banner for something made from several runs: random first, then the others, distinct.

    Parameters
    ----------
    warnings : iterable of str or None
        The runs' banners (None or "" for a run with the real network).

    Returns
    -------
    str or None
        :data:`RANDOM_WEIGHTS_BANNER` if any run has it (the strongest claim: not a
        style transfer); otherwise the distinct banners joined by "; " (one, in
        practice); None when no run has one.
    """
    found = list(dict.fromkeys(w for w in warnings if w))
    if RANDOM_WEIGHTS_BANNER in found:
        return RANDOM_WEIGHTS_BANNER
    return "; ".join(found) or None


#: PNG text chunk written into images made with random weights (see save_image).
RANDOM_WEIGHTS_TEXT = weights_text(RANDOM_WEIGHTS_BANNER)
#: PNG text chunk written into images made with the stand-in network.
STAND_IN_TEXT = weights_text(STAND_IN_BANNER)


def _default_file_mode() -> int:
    """0o666 less the process's umask (0o644 under the usual 022): what ``open()`` would create.

    Read once at import, where no other thread can see the umask change.
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


#: Mode of every file the project writes (images, metadata, cache files): as a plain ``open()``.
FILE_MODE = _default_file_mode()


def stage_file(path: PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a file's new content beside ``path`` without touching ``path``; return the temp file.

    The temp file (``.<name>.<host>~<pid>~*.tmp`` in ``path``'s folder, so the rename is
    within one file system, and a later run can tell it was left by a dead process:
    ``outputs.remove_stale_temps``) gets :data:`FILE_MODE`, is flushed and fsync'ed, then handed
    to :func:`commit_files`.

    Parameters
    ----------
    path : str or os.PathLike
        The final path; its folder must exist.
    write : callable (binary file) -> None
        Fills the binary file it is given.

    Returns
    -------
    pathlib.Path
        The staged temp file.

    Raises
    ------
    PhotostyleError
        If the file cannot be written (full disk, read-only folder): the temp file is
        removed and ``path`` is as it was. Any other exception of ``write`` (a signal)
        propagates unchanged, after the same clean-up.
    """
    p = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=temp_prefix(p.name), suffix=".tmp")
    except OSError as exc:
        raise write_error(p, exc) from None
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise write_error(p, exc) from None
        raise
    return Path(tmp)


def write_error(path: Path, exc: OSError) -> PhotostyleError:
    """One line for a failed write (full disk, read-only folder): what happened and what to do."""
    return PhotostyleError(f"cannot write {path} ({exc.strerror or exc}); free some space or choose a "
                           "writable path (the old file, if any, is unchanged)")


def commit_files(staged: Iterable[tuple[Path, Path]]) -> None:
    """Rename each staged temp file onto its final path, in the order given, then fsync their folders.

    Each rename is atomic: a reader (or a crash) sees the old file or the new
    one, never a part. Several files (an image and its metadata) are renamed
    back to back, the metadata last; a crash between two renames (a window of
    microseconds) is detectable because the metadata records its image's
    sha256. Temp files not renamed (an error mid-way) are removed.

    Parameters
    ----------
    staged : iterable of (pathlib.Path, pathlib.Path)
        (temp file from :func:`stage_file`, final path) pairs.

    Raises
    ------
    PhotostyleError
        If a rename fails (the final path is a folder, the file system refuses).
    """
    staged = list(staged)
    try:
        for tmp, final in staged:
            try:
                os.replace(tmp, final)
            except OSError as exc:
                raise write_error(final, exc) from None
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
    for folder in {final.parent for _, final in staged}:
        _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    """Make renames in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_file_atomically(path: PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """:func:`stage_file` then :func:`commit_files`: ``path`` holds the old bytes or all the new ones.

    Parameters
    ----------
    path : str or os.PathLike
    write : callable (binary file) -> None
        As :func:`stage_file`.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    p = Path(path)
    commit_files([(stage_file(p, write), p)])
    return p


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


def check_writable(path: PathLike) -> Path:
    """Make ``path``'s folder if needed and check that ``path`` can be written as a file.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    PhotostyleError
        If ``path`` is a directory, its folder cannot be created, or the folder is not writable.
    """
    p = Path(path)
    if p.is_dir():
        raise PhotostyleError(f"{p} is a directory; give a file path such as {p / 'out.png'}")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PhotostyleError(f"cannot create the folder {p.parent} ({exc.strerror or exc}); "
                              "choose another output path") from None
    if not os.access(p.parent, os.W_OK):
        raise PhotostyleError(f"the folder {p.parent} is not writable; choose another output path")
    return p
