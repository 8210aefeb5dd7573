"""Colour-coded label maps: the gold masks' palette, reading a painted mask, and writing one to repaint.

A painted mask is an RGB image whose colours are :data:`PALETTE` names (Luan et
al.'s gold masks); :func:`read_color_mask` turns one into a one-hot (C, H, W)
stack and its label names, tolerant of the noise hand-painting leaves at region
edges. :func:`write_palette_masks` writes label maps the other way, for a user
to repaint (``photostyle segment``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
import torch

from photostyle_lib.checks import check_int, check_number
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import PathLike, read_rgb_array


#: Colours of the Luan et al. gold masks (RGB, 0-255), by name.
PALETTE: dict[str, tuple[int, int, int]] = {
    "blue": (0, 0, 255),
    "green": (0, 255, 0),
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "red": (255, 0, 0),
    "yellow": (255, 255, 0),
    "grey": (128, 128, 128),
    "lightblue": (0, 255, 255),
    "purple": (255, 0, 255),
}


def read_color_mask(path: PathLike, *, palette: dict[str, tuple[int, int, int]] | None = None,
                    tolerance: float = 100.0, max_outlier_fraction: float = 0.02,
                    min_core_pixels: int = 30, erosion: int = 2) -> tuple[torch.Tensor, tuple[str, ...]]:
    """Read a colour-coded mask into a one-hot stack and its label names.

    Every pixel takes the nearest palette colour (Euclidean distance in 0-255
    RGB). Hand-painted masks are noisy at region edges (blended or JPEG-era
    colours), so:

    * pixels farther than ``tolerance`` from every palette colour are allowed
      up to ``max_outlier_fraction`` of the image (edge blends); more than that
      means the mask uses colours outside the palette, and a PhotostyleError
      lists the most common offending colours;
    * a label with no interior is edge noise -- e.g. the 1-2 px grey seams
      where black meets white, which can add up to thousands of pixels: a
      label is kept only if at least ``min_core_pixels`` (at most 1% of the
      image, at least 1) of its pixels survive
      ``erosion`` erosions by a 3x3 square (a painted region, however small,
      has an interior; a blend seam does not). The pixels of dropped labels
      go to the nearest kept label.

    Parameters
    ----------
    path : str or os.PathLike
        The mask image (read by ``io.images.read_rgb_array``).
    palette : dict of str to (int, int, int), optional, keyword-only
        Label name -> 0-255 RGB colour; default :data:`PALETTE`.
    tolerance : float >= 0
        Largest distance to a palette colour, in 0-255 RGB units, of a pixel that is
        not an outlier.
    max_outlier_fraction : float in [0, 1]
        Largest share of outlier pixels.
    min_core_pixels : int >= 1
        Interior pixels a label needs (see :func:`core_threshold`).
    erosion : int in [0, 10]
        3x3 erosions that define the interior.

    Returns
    -------
    masks : torch.Tensor, (C, H, W), float32 one-hot
        C = number of labels kept.
    labels : tuple of str
        Their palette names, in palette order.

    Raises
    ------
    PhotostyleError
        If the palette is empty, an argument is out of range, the file cannot be
        read, or too many pixels are outside the palette.
    """
    pal = PALETTE if palette is None else palette
    if not pal:
        raise PhotostyleError("the mask palette is empty")
    tolerance = check_number("tolerance", tolerance, low=0)
    max_outlier_fraction = check_number("max_outlier_fraction", max_outlier_fraction, low=0, high=1)
    min_core_pixels = check_int("min_core_pixels", min_core_pixels, low=1)
    erosion = check_int("erosion", erosion, low=0, high=10)
    rgb = read_rgb_array(path).astype(np.float32) * 255.0
    h, w, _ = rgb.shape
    names = list(pal)
    colours = np.array([pal[n] for n in names], dtype=np.float32)
    flat = rgb.reshape(-1, 3)
    dist = np.sqrt(((flat[:, None, :] - colours[None, :, :]) ** 2).sum(-1))  # (N, P)
    nearest = dist.argmin(1)
    far = dist[np.arange(len(flat)), nearest] > tolerance
    if far.mean() > max_outlier_fraction:
        bad, counts = np.unique(np.round(flat[far]).astype(np.int64), axis=0, return_counts=True)
        order = np.argsort(-counts)[:5]
        listed = ", ".join(f"#{r:02x}{g:02x}{b:02x} ({c} px)" for (r, g, b), c in zip(bad[order], counts[order]))
        allowed = ", ".join(f"{n} #{r:02x}{g:02x}{b:02x}" for n, (r, g, b) in pal.items())
        raise PhotostyleError(
            f"{path}: {far.mean():.1%} of the mask's pixels have colours outside the palette "
            f"(most common: {listed}); repaint those regions with palette colours: {allowed}")
    label_img = nearest.reshape(h, w)
    k = block_factor(rgb.astype(np.int64).reshape(h, w, 3) @ np.array([65536, 256, 1]))  # enlarged: judge as drawn
    drawn = label_img[::k, ::k]
    core = core_sizes(drawn, len(names), erosion)
    keep = np.flatnonzero(core >= core_threshold(*drawn.shape, min_core_pixels))
    if keep.size == 0:
        keep = np.array([int(np.bincount(nearest, minlength=len(names)).argmax())])
    if keep.size < len(names):
        nearest = keep[dist[:, keep].argmin(1)]
    onehot = (nearest[None, :] == keep[:, None]).reshape(len(keep), h, w)
    return torch.from_numpy(onehot.astype(np.float32)), tuple(names[i] for i in keep)


def block_factor(label_img: np.ndarray, largest: int = 8, min_side: int = 64) -> int:
    """The largest k <= ``largest`` such that ``label_img`` is made of k x k blocks of one value, else 1.

    Only factors that leave at least ``min_side`` pixels on the short side count: a
    photo's mask is drawn at the photo's size, while tiny blocky masks (tests,
    thumbnails) are judged as they are.

    A mask enlarged by nearest neighbour (no new colours) is such an image: its
    edge seams are k times wider than drawn, so :func:`read_color_mask` judges
    which regions have an interior at the drawn size (every k-th pixel), and
    the result is the drawn mask's, enlarged.

    Parameters
    ----------
    label_img : numpy.ndarray, (H, W), int
        Labels, or colours packed as one integer per pixel.
    largest : int
        The largest factor tried.
    min_side : int
        The smallest short side, in pixels, of the drawn mask.

    Returns
    -------
    int
        k >= 1.
    """
    h, w = label_img.shape
    for k in range(min(largest, min(h, w) // max(min_side, 1)), 1, -1):
        if h % k or w % k:
            continue
        small = label_img[::k, ::k]
        if np.array_equal(np.repeat(np.repeat(small, k, 0), k, 1), label_img):
            return k
    return 1


def core_threshold(height: int, width: int, min_core_pixels: int = 30) -> int:
    """Interior pixels a painted region needs to count as a label (:func:`read_color_mask`'s rule).

    Parameters
    ----------
    height, width : int
        The mask's size in pixels.
    min_core_pixels : int
        The wanted threshold.

    Returns
    -------
    int
        ``min_core_pixels``, but at most 1% of the image and at least 1: tiny masks
        (tests, thumbnails) cannot have 30 interior pixels per region.
    """
    return max(1, min(int(min_core_pixels), int(0.01 * height * width)))


def core_sizes(label_img: np.ndarray, num_labels: int, erosion: int = 2) -> np.ndarray:
    """Pixels of each label left after ``erosion`` 3x3 erosions.

    Pixels at the image border erode too (scipy's ``border_value=0``).

    Parameters
    ----------
    label_img : numpy.ndarray, (H, W), int
        Label index per pixel, in 0..num_labels-1.
    num_labels : int
    erosion : int >= 0
        Number of erosions by a 3x3 square (0: plain pixel counts).

    Returns
    -------
    numpy.ndarray, (num_labels,), int64
    """
    square = np.ones((3, 3), dtype=bool)
    core = np.zeros(num_labels, dtype=np.int64)
    for k in range(num_labels):
        region = label_img == k
        if erosion and region.any():
            region = ndimage.binary_erosion(region, structure=square, iterations=erosion)
        core[k] = int(region.sum())
    return core


def readable_label_map(scores: torch.Tensor | np.ndarray, allowed: "list[int] | tuple[int, ...] | None" = None, *,
                       max_labels: int = len(PALETTE), min_core_pixels: int = 30,
                       erosion: int = 2) -> np.ndarray:
    """An (H, W) label map that :func:`read_color_mask` reads back unchanged once painted in palette colours.

    Each pixel takes its highest-scoring label among ``allowed`` (default all
    C), then, until nothing changes, labels that :func:`read_color_mask` would
    discard as edge noise (fewer than :func:`core_threshold` interior pixels)
    or that exceed ``max_labels`` (the palette has 9 colours; the labels with
    the fewest pixels go first) are removed and their pixels take their best
    remaining label. Removing a label only adds pixels to the others, so the
    loop ends after at most C rounds.

    Parameters
    ----------
    scores : torch.Tensor or numpy.ndarray, (C, H, W), float
        Scores per label (probabilities, or a one-hot stack).
    allowed : sequence of int, optional
        Indices (in 0..C-1) of the labels a pixel may take; default all.
    max_labels : int in [1, 9], keyword-only
        At most this many labels in the map.
    min_core_pixels, erosion : int, keyword-only
        As :func:`read_color_mask`.

    Returns
    -------
    numpy.ndarray, (H, W), int64
        Values in ``allowed``.

    Raises
    ------
    PhotostyleError
        If ``max_labels`` is outside [1, 9], ``scores`` is not (C, H, W) with C >= 1,
        or ``allowed`` is empty or has indices outside 0..C-1.
    """
    max_labels = check_int("max_labels", max_labels, low=1, high=len(PALETTE))
    s = torch.as_tensor(np.asarray(scores, dtype=np.float32) if isinstance(scores, np.ndarray) else scores)
    s = s.detach().to("cpu", torch.float32)
    if s.ndim != 3 or s.shape[0] == 0:
        raise PhotostyleError(f"scores must be a (C, H, W) stack with C >= 1, got shape {tuple(s.shape)}")
    c, h, w = s.shape
    keep = sorted(set(range(c) if allowed is None else (int(i) for i in allowed)))
    if not keep or keep[0] < 0 or keep[-1] >= c:
        raise PhotostyleError(f"allowed label indices must lie in 0..{c - 1}, got {allowed}")
    threshold = core_threshold(h, w, min_core_pixels)
    while True:
        idx = torch.tensor(keep)
        label_img = idx[s[idx].argmax(0)].numpy()
        core = core_sizes(label_img, c, erosion)[keep]
        area = np.bincount(label_img.ravel(), minlength=c)[keep]
        survivors = [k for k, n in zip(keep, core) if n >= threshold]
        if len(survivors) > max_labels:
            order = sorted(survivors, key=lambda k: -area[keep.index(k)])
            survivors = sorted(order[:max_labels])
        if not survivors:  # nothing has an interior: keep the largest label alone
            survivors = [keep[int(np.argmax(area))]]
        if survivors == keep:
            return label_img.astype(np.int64)
        keep = survivors


def palette_image(label_img: np.ndarray, colours: "list[str] | tuple[str, ...]") -> np.ndarray:
    """Paint a label map in palette colours.

    Parameters
    ----------
    label_img : numpy.ndarray, (H, W), int
        Values in 0..len(colours)-1.
    colours : sequence of str
        :data:`PALETTE` names; label k is painted ``PALETTE[colours[k]]``.

    Returns
    -------
    numpy.ndarray, (H, W, 3), uint8 RGB

    Raises
    ------
    PhotostyleError
        If a colour is not in the palette or a label is outside 0..len(colours)-1.
    """
    unknown = [c for c in colours if c not in PALETTE]
    if unknown:
        raise PhotostyleError(f"colours {unknown} are not in the palette; choose from {', '.join(PALETTE)}")
    table = np.array([PALETTE[c] for c in colours], dtype=np.uint8).reshape(-1, 3)
    labels = np.asarray(label_img)
    if labels.min() < 0 or labels.max() >= len(table):
        raise PhotostyleError(f"label map values must lie in 0..{len(table) - 1}, got "
                              f"{int(labels.min())}..{int(labels.max())}")
    return table[labels]


#: File names ``write_palette_masks`` (``photostyle segment``) writes in its folder.
PALETTE_FILES = {"content": "content_mask.png", "style": "style_mask.png", "legend": "legend.json",
                 "legend_image": "legend.png"}


def legend_image(colours: "list[str] | tuple[str, ...]", labels: "list[str] | tuple[str, ...]") -> np.ndarray:
    """A legend: one row per label, its palette swatch (outlined) and ``colour = label`` in black.

    Parameters
    ----------
    colours : sequence of str
        :data:`PALETTE` names, one per label.
    labels : sequence of str
        The label names.

    Returns
    -------
    numpy.ndarray, (6 + 24 * len(labels), 320, 3), uint8 RGB
    """
    from PIL import Image, ImageDraw

    row, pad = 24, 6
    im = Image.new("RGB", (320, pad + row * len(labels)), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    for i, (colour, label) in enumerate(zip(colours, labels)):
        y = pad + i * row
        draw.rectangle((pad, y, pad + 36, y + row - 6), fill=PALETTE[colour], outline=(90, 90, 90))
        draw.text((pad + 46, y + 4), f"{colour} = {label}", fill=(0, 0, 0))
    return np.asarray(im)


def write_palette_masks(content: np.ndarray, style: np.ndarray, labels: "list[str] | tuple[str, ...]",
                        colours: "list[str] | tuple[str, ...]", folder: PathLike, *, overwrite: bool = False,
                        source: dict | None = None) -> list:
    """Write two label maps as palette PNGs with a legend, for a user to repaint and pass back as gold masks.

    Parameters
    ----------
    content, style : numpy.ndarray, (H, W) and (Hs, Ws), int
        Label maps whose values index ``labels`` (:func:`readable_label_map` makes
        maps that read back unchanged).
    labels : sequence of str
        The label names.
    colours : sequence of str
        One distinct :data:`PALETTE` name per label; ``colours[k]`` paints ``labels[k]``.
    folder : str or os.PathLike
        Gets :data:`PALETTE_FILES`: the two masks (lossless PNG, exact palette
        colours), ``legend.json`` (``{"colours": {colour: label}``, the file names
        and ``source``) and ``legend.png``; written together (staged, then renamed).
    overwrite : bool, keyword-only
        Replace existing files; refused otherwise.
    source : dict, optional, keyword-only
        Provenance recorded in ``legend.json``.

    Returns
    -------
    list of pathlib.Path
        The written paths.

    Raises
    ------
    PhotostyleError
        If colours and labels do not pair one to one, a file exists and not
        ``overwrite``, the folder is not writable, or a label map has values
        outside the labels.
    """
    from pathlib import Path

    from photostyle_lib.io.images import check_writable, commit_files, stage_image
    from photostyle_lib.io.metadata import stage_json

    if len(colours) != len(labels) or len(set(colours)) != len(colours):
        raise PhotostyleError(f"give one distinct palette colour per label: {len(labels)} labels, colours {colours}")
    out = Path(folder)
    targets = {k: out / v for k, v in PALETTE_FILES.items()}
    for p in targets.values():
        if p.exists() and not overwrite:
            raise PhotostyleError(f"{p} already exists; choose another folder or pass --overwrite")
        check_writable(p)
    legend = {"colours": {c: lab for c, lab in zip(colours, labels)},
              "rgb": {c: list(PALETTE[c]) for c in colours},
              "content_mask": PALETTE_FILES["content"], "style_mask": PALETTE_FILES["style"],
              "source": source or {}}
    staged = []
    try:
        for key, label_img in (("content", content), ("style", style)):
            rgb = palette_image(label_img, colours).astype(np.float32) / 255.0
            staged.append((stage_image(rgb, targets[key]), targets[key]))
        staged.append((stage_image(legend_image(colours, labels).astype(np.float32) / 255.0,
                                   targets["legend_image"]), targets["legend_image"]))
        staged.append((stage_json(legend, targets["legend"]), targets["legend"]))
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    commit_files(staged)
    return [dest for _, dest in staged]
