"""Figure grids of the paper's experiments (Figures 1 and 4-8), from images.

This module only draws: it takes images (arrays or tensors) and titles and
returns matplotlib figures; which runs make which image is
:mod:`photostyle_lib.experiments.recipes`'s business. Mask views (Figures 3 and 8)
come from :mod:`photostyle_lib.plots.mask_views`.

A figure is described by a :class:`Grid` -- rows of :class:`Panel` (an image,
its title as in the paper, a file name, and the cache key of the run that
made it) -- and drawn by :func:`grid_figure` with one axis per grid cell, so
``len(fig.axes) == rows * columns``. Figures are built without pyplot, so
nothing is kept open: save them with :func:`save_grid` / :func:`save_figure`
or show them in a notebook.

Figures made with randomly initialised weights carry the line
:data:`RANDOM_WEIGHTS_BANNER` in their title: they exercise the code, they are
not style transfers. Figures made with the trained stand-in network
(``weights="hed-vgg16"``) carry :data:`STAND_IN_BANNER`. A figure's banner
(its ``weights_warning``) is drawn in :data:`WARNING_COLOUR`, written into
each saved panel's PNG text chunk and stamped under each saved panel as a
strip of text (:func:`stamp_warning`), so a panel cut out of its figure still
says what made it.

Images: (H, W, 3) float arrays or (1, 3, H, W) tensors with values in [0, 1].
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure

from photostyle_lib.checks import check_number
from photostyle_lib.errors import PhotostyleError
# The banners, their colour and merge_warnings are re-exported here for the figure makers.
from photostyle_lib.io.images import (RANDOM_WEIGHTS_BANNER, as_image_array, STAND_IN_BANNER, merge_warnings,  # noqa: F401
                                      is_caution, ORIGINAL_VGG19_BANNER, save_image, weights_text, write_file_atomically)
from photostyle_lib.plots.mask_views import PROBABILITY_CMAP, WARNING_COLOUR, add_label_legend, label_map_rgb

#: Colour of the zoom rectangle drawn on full-size panels (RGB in [0, 1]).
ZOOM_COLOUR = (1.0, 0.85, 0.0)


_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def file_name(text: str) -> str:
    """``text`` made safe as a file stem: runs of other characters become ``-``.

    Raises
    ------
    PhotostyleError
        If ``text`` has no letter or digit to make a name from.
    """
    out = _NAME.sub("-", str(text)).strip("-.")
    if not out:
        raise PhotostyleError(f"cannot make a file name from {text!r}; use letters or digits")
    return out


@dataclass(frozen=True)
class Panel:
    """One image of a figure.

    Attributes
    ----------
    name
        file stem of the panel's own PNG (``panels/<figure>_<name>.png``).
    title
        the panel's title, as in the paper ("Content", "Full model", ...).
    image
        (H, W, 3) float64 in [0, 1] (tensors and other arrays are converted).
    source
        cache key of the run the image comes from (None for inputs
        drawn from files or images computed from another panel).
    """

    name: str
    title: str
    image: np.ndarray
    source: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", file_name(self.name))
        object.__setattr__(self, "image", as_image_array(f"panel {self.name!r}", self.image))


@dataclass(frozen=True)
class Grid:
    """A figure as a grid of panels.

    Attributes
    ----------
    name
        file stem of the figure ("figure4").
    title
        first title line ("Figure 4: ablation study").
    rows
        rows of panels, all of the same length; a None cell is left blank.
    row_labels
        one label per row (drawn left of the row), or empty.
    weights_warning
        the weights banner (:data:`RANDOM_WEIGHTS_BANNER`,
        :data:`STAND_IN_BANNER`) added to the title and stamped on saved
        panels, or None for the paper's network.
    notes
        further title lines (e.g. the pair ids, a setting).
    legend
        mask labels whose colours panels show (label maps, :func:`label_map_image`):
        drawn as a legend of swatches under the grid (mask_views.add_label_legend); empty: none.
    """

    name: str
    title: str
    rows: tuple[tuple[Panel | None, ...], ...]
    row_labels: tuple[str, ...] = ()
    weights_warning: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    legend: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", file_name(self.name))
        object.__setattr__(self, "legend", tuple(str(lab) for lab in self.legend))
        rows = tuple(tuple(r) for r in self.rows)
        if not rows or not rows[0]:
            raise PhotostyleError(f"figure {self.name!r} has no panels")
        if len({len(r) for r in rows}) != 1:
            raise PhotostyleError(f"figure {self.name!r}: rows have different lengths {[len(r) for r in rows]}")
        for r in rows:
            for p in r:
                if p is not None and not isinstance(p, Panel):
                    raise PhotostyleError(f"figure {self.name!r}: cells must be Panel or None, "
                                          f"got {type(p).__name__}")
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "row_labels", tuple(self.row_labels))
        if self.row_labels and len(self.row_labels) != len(rows):
            raise PhotostyleError(f"figure {self.name!r}: {len(self.row_labels)} row labels for {len(rows)} rows")
        names = [p.name for p in self.panels]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise PhotostyleError(f"figure {self.name!r}: panel names {dup} are used twice")
        object.__setattr__(self, "notes", tuple(self.notes))

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        return len(self.rows), len(self.rows[0])

    @property
    def panels(self) -> list[Panel]:
        """The non-empty panels, row by row."""
        return [p for r in self.rows for p in r if p is not None]

    @property
    def random_weights(self) -> bool:
        """True when the grid's banner is :data:`RANDOM_WEIGHTS_BANNER`."""
        return self.weights_warning == RANDOM_WEIGHTS_BANNER

    @property
    def title_lines(self) -> list[str]:
        """The title lines drawn above the grid (:func:`title_lines` of title, banner and notes)."""
        return title_lines(self.title, weights_warning=self.weights_warning, notes=self.notes)


def title_lines(title: str | None, *, weights_warning: str | None = None, notes: Sequence[str] = ()) -> list[str]:
    """A figure's title lines: the title, the weights banner when there is one, the notes."""
    lines = [title] if title else []
    if weights_warning:
        lines.append(weights_warning)
    lines.extend(n for n in notes if n)
    return lines


def set_title(fig: Figure, lines: Sequence[str], weights_warning: str | None, **kwargs: Any) -> None:
    """``fig.suptitle`` of ``lines``, in :data:`WARNING_COLOUR` (bold) when a weights banner applies.

    matplotlib draws one text in one colour, so the whole title block turns
    red rather than the banner line alone: a figure of random or stand-in
    weights cannot be mistaken for one of the paper's network.
    """
    if not lines:
        return
    style = {"color": WARNING_COLOUR, "fontweight": "bold"} if is_caution(weights_warning) else {}
    fig.suptitle("\n".join(lines), **style, **kwargs)


def grid_figure(grid: Grid, *, panel_size: float = 2.4) -> Figure:
    """Draw ``grid``: one axis per cell (``rows * columns`` axes), row labels on the left.

    Every panel of the first row carries its title; a panel further down
    carries one only where its title differs from its column's first title,
    so a column reads as in the paper (one heading, results below).
    Each image sits at the top of its cell, so the titles of a row are at one
    height even when the images' aspect ratios differ.
    Blank cells (None) are axes with nothing drawn. A grid with a ``legend``
    gets its label swatches under the panels.
    """
    nrows, ncols = grid.shape
    aspect = _mean_aspect(grid.panels)
    fig = Figure(figsize=(panel_size * ncols + (0.4 if grid.row_labels else 0.0),
                          panel_size * aspect * nrows + 0.35 * len(grid.title_lines) + 0.3
                          + (0.35 if grid.legend else 0.0)),
                 layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    heads = [next((r[j].title for r in grid.rows if r[j] is not None), None) for j in range(ncols)]
    for i, row in enumerate(grid.rows):
        for j, panel in enumerate(row):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            # An image keeps its aspect by shrinking inside its cell; anchored at the
            # cell's top, every title of a row sits at one height whatever the aspects.
            ax.set_anchor("N")
            if panel is None:
                for s in ax.spines.values():
                    s.set_visible(False)
                continue
            ax.imshow(panel.image, interpolation="nearest")
            first = all(r[j] is None for r in grid.rows[:i])
            if first or panel.title != heads[j]:
                ax.set_title(panel.title, fontsize=9)
        if grid.row_labels:
            axes[i, 0].set_ylabel(grid.row_labels[i], fontsize=9)
    if grid.legend:
        add_label_legend(fig, grid.legend)
    set_title(fig, grid.title_lines, grid.weights_warning, fontsize=10)
    return fig


def _mean_aspect(panels: Sequence[Panel]) -> float:
    if not panels:
        return 1.0
    return float(np.mean([p.image.shape[0] / p.image.shape[1] for p in panels]))


def comparison_grid(name: str, title: str, rows: Sequence[tuple[str, Mapping[str, Any]]],
                    columns: Sequence[tuple[str, str]], *, sources: Mapping[tuple[str, str], str] | None = None,
                    weights_warning: str | None = None, notes: Sequence[str] = (),
                    legend: Sequence[str] = ()) -> Grid:
    """A grid of examples x methods, as the paper's Figures 1 and 4-6.

    Parameters
    ----------
    name
        file stem of the figure.
    title
        first title line.
    rows
        one (row label, {column key: image}) per example; a column key
        missing from a row leaves that cell blank.
    columns
        (column key, title) in the figure's column order.
    sources
        optional {(row label, column key): cache key of the run}.
    weights_warning
        the weights banner of the runs (Grid), or None.
    notes
        extra title lines.
    legend
        mask labels drawn as a legend under the grid (Grid.legend), e.g. of user masks.


    Panel names are ``<row label>_<column key>``.

    Raises
    ------
    PhotostyleError
        If there is no column, or a row has images for unknown columns.
    """
    if not columns:
        raise PhotostyleError("comparison_grid needs at least one column")
    keys = [k for k, _ in columns]
    for label, images in rows:
        unknown = [k for k in images if k not in keys]
        if unknown:
            raise PhotostyleError(f"row {label!r} has images for unknown columns {unknown}; columns are {keys}")
    sources = sources or {}
    cells = tuple(
        tuple(Panel(f"{label}_{key}", col_title, images[key], sources.get((label, key)))
              if key in images else None for key, col_title in columns)
        for label, images in rows)
    return Grid(name, title, cells, tuple(label for label, _ in rows), weights_warning, tuple(notes), tuple(legend))


def zoom_box(image: Any, fraction: float = 0.3) -> tuple[int, int, int, int]:
    """The square window with the most structure: where a zoom shows distortions best.

    The window's side is ``fraction`` of the image's short side (at least 4 px);
    among all positions, the one with the largest summed gradient magnitude of
    ``image`` (usually the content) is taken -- edges and texture, where a
    stylised image's distortions and a post-process's effect show. Ties: the
    first in row-major order.

    Returns
    -------
    tuple[int, int, int, int]
        (top, left, height, width) in pixels.

    Raises
    ------
    PhotostyleError
        If ``fraction`` is not in (0, 1].
    """
    arr = as_image_array("image", image)
    fraction = check_number("fraction", fraction, low=0.0, high=1.0, low_inclusive=False)
    h, w = arr.shape[:2]
    side = max(4, min(h, w, int(round(fraction * min(h, w)))))
    grey = arr.mean(axis=2)
    mag = np.zeros((h, w))
    mag[:, 1:] += np.abs(np.diff(grey, axis=1))
    mag[1:, :] += np.abs(np.diff(grey, axis=0))
    # Summed-area table: the sum over every side x side window in one pass.
    sat = np.pad(mag.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = sat[side:, side:] - sat[:-side, side:] - sat[side:, :-side] + sat[:-side, :-side]
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(top), int(left), side, side


def crop(image: Any, box: tuple[int, int, int, int]) -> np.ndarray:
    """``image`` (H, W, 3) cut to ``box`` = (top, left, height, width).

    Raises
    ------
    PhotostyleError
        If the box does not fit the image.
    """
    arr = as_image_array("image", image)
    top, left, hh, ww = (int(v) for v in box)
    if top < 0 or left < 0 or hh < 1 or ww < 1 or top + hh > arr.shape[0] or left + ww > arr.shape[1]:
        raise PhotostyleError(f"crop box {box} does not fit an image of {arr.shape[0]}x{arr.shape[1]} px")
    return arr[top:top + hh, left:left + ww].copy()


def outline(image: Any, box: tuple[int, int, int, int], colour: Sequence[float] = ZOOM_COLOUR,
            width: int = 1) -> np.ndarray:
    """A copy of ``image`` with the rectangle ``box`` = (top, left, height, width) drawn on it."""
    arr = as_image_array("image", image).copy()
    top, left, hh, ww = (int(v) for v in box)
    crop(arr, box)  # checks the box fits
    c = np.asarray(colour, dtype=np.float64)
    b, r = top + hh, left + ww
    arr[top:min(top + width, b), left:r] = c
    arr[max(b - width, top):b, left:r] = c
    arr[top:b, left:min(left + width, r)] = c
    arr[top:b, max(r - width, left):r] = c
    return arr


def postprocess_grid(name: str, title: str,
                     rows: Sequence[tuple[str, Mapping[str, Any]]], columns: Sequence[tuple[str, str]], *,
                     zoom_fraction: float = 0.3, sources: Mapping[tuple[str, str], str] | None = None,
                     weights_warning: str | None = None, notes: Sequence[str] = ()) -> Grid:
    """The paper's Figure 7: per example, a row of full images and a row of zoomed crops.

    Parameters
    ----------
    rows
        (row label, {column key: image}); every row must have the key
        ``"content"``, whose structure picks the zoom window (:func:`zoom_box`).
    columns
        (column key, title), e.g. content, before, after (two sigma_r), screened Poisson.
    zoom_fraction
        side of the zoom window as a fraction of the short side.

    Returns
    -------
    Grid
        A Grid of 2 * len(rows) rows: the full images with the zoom window
        outlined, then the crops (row label "<label> (zoom)", panel names
        "<label>_<key>_zoom", titles those of their columns).

    Raises
    ------
    PhotostyleError
        If a row has no 'content' image, or as :func:`comparison_grid` and :func:`zoom_box`.
    """
    cells: list[tuple[Panel | None, ...]] = []
    labels: list[str] = []
    sources = sources or {}
    for label, images in rows:
        if "content" not in images:
            raise PhotostyleError(f"row {label!r} needs a 'content' image to choose the zoom window")
        box = zoom_box(images["content"], zoom_fraction)
        full, zoom = [], []
        for key, col_title in columns:
            if key not in images:
                full.append(None)
                zoom.append(None)
                continue
            src = sources.get((label, key))
            full.append(Panel(f"{label}_{key}", col_title, outline(images[key], box), src))
            zoom.append(Panel(f"{label}_{key}_zoom", col_title, crop(images[key], box), src))
        cells += [tuple(full), tuple(zoom)]
        labels += [label, f"{label} (zoom)"]
    return Grid(name, title, tuple(cells), tuple(labels), weights_warning, tuple(notes))


def label_map_image(stack: torch.Tensor, labels: Sequence[str]) -> np.ndarray:
    """(C, H, W) masks -> (H, W, 3) colours of each pixel's strongest label.

    Same colours as :mod:`photostyle_lib.plots.mask_views` (``label_colours``; grey
    where no label), so a saved panel matches the mask figures' legends.
    """
    return label_map_rgb(stack, labels)


def probability_image(mask: torch.Tensor | np.ndarray) -> np.ndarray:
    """(H, W) mask values in [0, 1] -> (H, W, 3) RGB in mask_views' probability colour map.

    Raises
    ------
    PhotostyleError
        If the mask is not (H, W).
    """
    m = mask.detach().cpu().float().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask, float)
    if m.ndim != 2:
        raise PhotostyleError(f"a mask must have shape (H, W), got {m.shape}")
    return np.asarray(matplotlib.colormaps[PROBABILITY_CMAP](np.clip(m, 0.0, 1.0))[..., :3], dtype=np.float64)


def figure_png(fig: Figure, *, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (for notebooks' rich display and widgets)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


#: Formats :func:`save_figure` writes (matplotlib's names; "pdf" and "svg" are vector).
FIGURE_FORMATS = ("png", "pdf", "svg")


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = 100, format: str | None = None) -> Path:
    """Write ``fig`` to ``path`` (folders created), atomically (images.write_file_atomically).

    Parameters
    ----------
    dpi
        dots per inch, in [10, 1200] (a 6.4-inch figure at 100 dpi is 640 px wide);
        for PDF and SVG it sets the resolution of embedded images only.
    format
        "png", "pdf" or "svg"; default: the path's suffix when it is
        one of them, else "png". A format that contradicts the suffix is an error.

    Raises
    ------
    PhotostyleError
        If ``dpi`` is not an integer in [10, 1200], ``format`` is not one of
        :data:`FIGURE_FORMATS`, or the path's suffix names another format.
    """
    from photostyle_lib.checks import check_choice, check_int

    p = Path(path)
    dpi = check_int("dpi", dpi, low=10, high=1200)
    suffix = p.suffix.lower().lstrip(".")
    if format is None:
        format = suffix if suffix in FIGURE_FORMATS else "png"
    format = check_choice("format", str(format).lower(), FIGURE_FORMATS)
    if suffix in FIGURE_FORMATS and suffix != format:
        raise PhotostyleError(f"{p} ends in .{suffix} but format={format!r}; give a path ending in .{format}")
    p.parent.mkdir(parents=True, exist_ok=True)
    return write_file_atomically(p, lambda f: fig.savefig(f, format=format, dpi=dpi))


def stamp_label(weights_warning: str) -> str:
    """The short form of a banner stamped on panels: the part before its em dash."""
    return weights_warning.split(" \u2014 ")[0]


def stamp_warning(image: Any, weights_warning: str | None, *, font_px: int = 10) -> np.ndarray:
    """``image`` with a white strip below it saying :func:`stamp_label` of the banner, in red.

    image: (H, W, 3) array or (1, 3, H, W) tensor in [0, 1]. Returns
    (H + strip, W, 3) float64 in [0, 1]; the image's own pixels are unchanged
    (rows 0..H-1), the strip is ``font_px`` + 4 px per line of text, the text
    wrapped at word boundaries to the image's width. No banner, or a banner that only
    names the network (:func:`is_caution` false: the original VGG-19's): the image
    unchanged (its PNG text chunk still names the network).
    """
    from PIL import Image, ImageDraw, ImageFont

    arr = as_image_array("image", image)
    if not is_caution(weights_warning):
        return arr
    font = ImageFont.load_default(size=font_px)
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = arr.shape[1]
    lines: list[str] = []
    for word in stamp_label(weights_warning).split():
        trial = f"{lines[-1]} {word}" if lines else word
        if lines and draw.textlength(trial, font=font) <= width - 4:
            lines[-1] = trial
        else:
            lines.append(word)
    line_px = font_px + 4
    strip = Image.new("RGB", (width, line_px * len(lines)), "white")
    pen = ImageDraw.Draw(strip)
    red = tuple(int(WARNING_COLOUR[i:i + 2], 16) for i in (1, 3, 5))
    for i, line in enumerate(lines):
        pen.text((2, i * line_px + 2), line, fill=red, font=font)
    return np.concatenate([arr, np.asarray(strip, dtype=np.float64) / 255.0], axis=0)


def save_panels(figure_name: str, panels: Sequence[Panel], directory: str | os.PathLike, *,
                weights_warning: str | None = None) -> list[dict[str, Any]]:
    """Write every panel to ``directory/panels/<figure>_<panel>.png``; return their listing.

    With a ``weights_warning`` (a banner) each PNG carries it as a text chunk
    (images.weights_text) and shows it in a strip under the image
    (:func:`stamp_warning`; the file is then taller than the panel).

    Listing entries: name, title, file (relative to ``directory``), source
    (cache key or None), size [H, W] of the panel image (without the strip),
    weights_warning (the banner or None).
    """
    d = Path(directory)
    out = []
    for p in panels:
        rel = Path("panels") / f"{file_name(figure_name)}_{p.name}.png"
        save_image(stamp_warning(p.image, weights_warning), d / rel, overwrite=True,
                   text=weights_text(weights_warning))
        out.append({"name": p.name, "title": p.title, "file": str(rel), "source": p.source,
                    "size": list(p.image.shape[:2]), "weights_warning": weights_warning})
    return out


def save_grid(grid: Grid, directory: str | os.PathLike, *, fig: Figure | None = None,
              dpi: int = 100, format: str = "png") -> dict[str, Any]:
    """Write the figure (``<name>.<format>``) and each panel (``panels/``, PNG) of ``grid`` into ``directory``.

    ``dpi`` and ``format`` ("png", "pdf" or "svg") as :func:`save_figure`.
    Returns the figure's listing for metadata: name, title (all lines), file,
    rows, columns, random_weights, weights_warning, legend, panels (see :func:`save_panels`).

    Raises
    ------
    PhotostyleError
        If ``format`` is not one of :data:`FIGURE_FORMATS`.
    """
    from photostyle_lib.checks import check_choice

    format = check_choice("format", str(format).lower(), FIGURE_FORMATS)
    fig = fig if fig is not None else grid_figure(grid)
    path = save_figure(fig, Path(directory) / f"{grid.name}.{format}", dpi=dpi, format=format)
    rows, cols = grid.shape
    return {"name": grid.name, "title": grid.title_lines, "file": path.name, "rows": rows, "columns": cols,
            "random_weights": grid.random_weights, "weights_warning": grid.weights_warning,
            "legend": list(grid.legend),
            "panels": save_panels(grid.name, grid.panels, directory, weights_warning=grid.weights_warning)}
