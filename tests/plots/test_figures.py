"""Figure grids on small synthetic images: panel counts, titles, the weights banners, zooms, saving."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import needs_hed
from matplotlib.colors import same_color
from PIL import Image

from photostyle_lib.plots import figures
from photostyle_lib.io import images
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.plots.figures import RANDOM_WEIGHTS_BANNER, STAND_IN_BANNER, WARNING_COLOUR, Grid, Panel
from photostyle_lib.plots.mask_views import NO_LABEL_COLOUR, label_colours


def _img(seed: int, h: int = 12, w: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3))


def _rows(n_rows: int, keys: list[str]) -> list[tuple[str, dict[str, np.ndarray]]]:
    return [(f"pair {i}", {k: _img(10 * i + j) for j, k in enumerate(keys)}) for i in range(n_rows)]


COLUMNS = [("content", "Content"), ("style", "Style"), ("full", "Full model"), ("gatys", "Gatys et al.")]


@pytest.mark.parametrize("n_rows", [1, 3])
def test_comparison_grid_axes_equal_rows_times_columns(n_rows):
    grid = figures.comparison_grid("figure6", "Figure 6", _rows(n_rows, [k for k, _ in COLUMNS]), COLUMNS)
    assert grid.shape == (n_rows, len(COLUMNS))
    fig = figures.grid_figure(grid)
    assert len(fig.axes) == n_rows * len(COLUMNS)
    # The first row carries the paper's column titles; later rows repeat none.
    assert [ax.get_title() for ax in fig.axes[:len(COLUMNS)]] == [t for _, t in COLUMNS]
    assert all(ax.get_title() == "" for ax in fig.axes[len(COLUMNS):])
    assert [fig.axes[i * len(COLUMNS)].get_ylabel() for i in range(n_rows)] == [f"pair {i}" for i in range(n_rows)]
    assert [p.name for p in grid.panels[:2]] == ["pair-0_content", "pair-0_style"]


@pytest.mark.parametrize("banner", [RANDOM_WEIGHTS_BANNER, STAND_IN_BANNER])
def test_weights_banner_only_when_it_applies_and_in_red(banner):
    rows = _rows(1, ["content", "style"])
    cols = COLUMNS[:2]
    plain = figures.grid_figure(figures.comparison_grid("f", "Figure 4", rows, cols))
    assert plain.get_suptitle() == "Figure 4" and not same_color(plain._suptitle.get_color(), WARNING_COLOUR)
    grid = figures.comparison_grid("f", "Figure 4", rows, cols, weights_warning=banner, notes=["pair 8"])
    warned = figures.grid_figure(grid)
    assert warned.get_suptitle().split("\n") == ["Figure 4", banner, "pair 8"]
    assert same_color(warned._suptitle.get_color(), WARNING_COLOUR)
    assert grid.random_weights == (banner == RANDOM_WEIGHTS_BANNER)
    assert "RANDOM WEIGHTS" in RANDOM_WEIGHTS_BANNER and "not a style transfer" in RANDOM_WEIGHTS_BANNER
    assert STAND_IN_BANNER.startswith("VGG-16 stand-in (HED, BSDS500)")


@needs_hed
def test_stand_in_banner_is_the_networks_own():
    from photostyle_lib.features import vgg

    assert vgg.VGGFeatures("hed-vgg16", ("conv1_1",)).weights_warning == STAND_IN_BANNER
    assert vgg.VGGFeatures("random", ("conv1_1",)).weights_warning == RANDOM_WEIGHTS_BANNER


def test_merge_warnings_puts_random_first():
    assert figures.merge_warnings([None, None]) is None
    assert figures.merge_warnings([None, STAND_IN_BANNER, STAND_IN_BANNER]) == STAND_IN_BANNER
    assert figures.merge_warnings([STAND_IN_BANNER, None, RANDOM_WEIGHTS_BANNER]) == RANDOM_WEIGHTS_BANNER
    assert figures.merge_warnings(["a", "b", "a"]) == "a; b"


def test_stamp_keeps_the_image_and_adds_a_red_strip():
    img = _img(3, 12, 160)
    assert np.array_equal(figures.stamp_warning(img, None), img)
    wide = figures.stamp_warning(img, STAND_IN_BANNER)
    assert wide.shape[1:] == (160, 3) and wide.shape[0] > 12 and (wide.shape[0] - 12) % 14 == 0
    np.testing.assert_array_equal(wide[:12], img)  # the image's own pixels, untouched
    strip = wide[12:]
    red = (strip[..., 0] > 0.5) & (strip[..., 1] < 0.3) & (strip[..., 2] < 0.3)
    assert red.any() and np.all((strip == 1.0).all(-1) | (strip[..., 0] >= strip[..., 1]))  # white + red text
    narrow = figures.stamp_warning(_img(3, 12, 40), STAND_IN_BANNER)
    assert narrow.shape[0] > wide.shape[0]  # wrapped onto more lines
    assert figures.stamp_label(STAND_IN_BANNER) == "VGG-16 stand-in (HED, BSDS500)"


def test_missing_image_leaves_blank_cell_and_sources_are_kept():
    rows = [("pair 1", {"content": _img(0), "style": _img(1), "full": _img(2)}),
            ("pair 2", {"content": _img(3), "style": _img(4)})]
    grid = figures.comparison_grid("f", "t", rows, COLUMNS[:3], sources={("pair 1", "full"): "abc"})
    assert grid.rows[1][2] is None and len(grid.panels) == 5
    assert grid.rows[0][2].source == "abc" and grid.rows[0][0].source is None
    fig = figures.grid_figure(grid)
    assert len(fig.axes) == 6 and not fig.axes[5].images


def test_grid_checks():
    with pytest.raises(PhotostyleError, match="unknown columns"):
        figures.comparison_grid("f", "t", [("r", {"nope": _img(0)})], COLUMNS)
    with pytest.raises(PhotostyleError, match="different lengths"):
        Grid("f", "t", ((Panel("a", "A", _img(0)),), (Panel("b", "B", _img(1)), None)))
    with pytest.raises(PhotostyleError, match="used twice"):
        Grid("f", "t", ((Panel("a", "A", _img(0)), Panel("a", "B", _img(1))),))
    with pytest.raises(PhotostyleError, match="row labels"):
        Grid("f", "t", ((Panel("a", "A", _img(0)),),), row_labels=("x", "y"))
    with pytest.raises(PhotostyleError, match="values must lie in"):
        Panel("a", "A", _img(0) * 3)
    with pytest.raises(PhotostyleError, match="file name"):
        figures.file_name("///")


def test_panel_accepts_tensors():
    t = torch.rand(1, 3, 5, 7)
    p = Panel("x", "X", t)
    assert p.image.shape == (5, 7, 3) and p.image.dtype == np.float64
    np.testing.assert_allclose(p.image, t[0].permute(1, 2, 0).numpy(), atol=1e-7)


def test_zoom_box_finds_the_textured_window_and_matches_brute_force():
    img = np.full((30, 40, 3), 0.5)
    img[18:26, 5:13] = (np.indices((8, 8)).sum(0) % 2)[..., None]  # a checkerboard patch
    top, left, h, w = figures.zoom_box(img, fraction=8 / 30)
    assert (h, w) == (8, 8)
    # Brute force: the window with the largest summed gradient magnitude.
    g = img.mean(2)
    mag = np.zeros_like(g)
    mag[:, 1:] += np.abs(np.diff(g, axis=1))
    mag[1:, :] += np.abs(np.diff(g, axis=0))
    sums = np.array([[mag[i:i + 8, j:j + 8].sum() for j in range(40 - 7)] for i in range(30 - 7)])
    assert (top, left) == np.unravel_index(np.argmax(sums), sums.shape)
    assert 17 <= top <= 18 and 4 <= left <= 5
    with pytest.raises(PhotostyleError, match="fraction"):
        figures.zoom_box(img, fraction=0)


def test_crop_and_outline():
    img = _img(0, 10, 12)
    box = (2, 3, 4, 5)
    np.testing.assert_array_equal(figures.crop(img, box), img[2:6, 3:8])
    out = figures.outline(img, box, colour=(1.0, 0.0, 0.0))
    ring = np.zeros((10, 12), bool)
    ring[2:6, 3:8] = True
    ring[3:5, 4:7] = False
    np.testing.assert_array_equal(out[ring], np.tile([1.0, 0.0, 0.0], (ring.sum(), 1)))
    np.testing.assert_array_equal(out[~ring], img[~ring])
    np.testing.assert_array_equal(img, _img(0, 10, 12))  # input untouched
    with pytest.raises(PhotostyleError, match="does not fit"):
        figures.crop(img, (8, 0, 4, 4))


def test_postprocess_grid_has_a_zoom_row_per_example():
    keys = ["content", "before", "after"]
    cols = [("content", "Content"), ("before", "Before post-processing"), ("after", "After")]
    grid = figures.postprocess_grid("figure7", "Figure 7", _rows(2, keys), cols, zoom_fraction=0.5,
                                    weights_warning=RANDOM_WEIGHTS_BANNER)
    assert grid.shape == (4, 3)
    assert grid.row_labels == ("pair 0", "pair 0 (zoom)", "pair 1", "pair 1 (zoom)")
    zoom = grid.rows[1]
    assert [p.image.shape for p in zoom] == [(6, 6, 3)] * 3
    assert [p.name for p in zoom] == ["pair-0_content_zoom", "pair-0_before_zoom", "pair-0_after_zoom"]
    fig = figures.grid_figure(grid)
    assert len(fig.axes) == 12 and RANDOM_WEIGHTS_BANNER in fig.get_suptitle()
    assert [ax.get_title() for ax in fig.axes[:3]] == ["Content", "Before post-processing", "After"]
    with pytest.raises(PhotostyleError, match="content"):
        figures.postprocess_grid("f", "t", [("r", {"before": _img(0)})], cols)


def test_label_map_and_probability_images():
    stack = torch.zeros(2, 3, 4)
    stack[0, :, :2] = 1.0
    stack[1, :, 2] = 0.7
    rgb = figures.label_map_image(stack, ("sky", "tree"))
    colours = label_colours(("sky", "tree"))
    np.testing.assert_allclose(rgb[0, 0], colours["sky"])
    np.testing.assert_allclose(rgb[0, 2], colours["tree"])
    np.testing.assert_allclose(rgb[0, 3], NO_LABEL_COLOUR)
    prob = figures.probability_image(torch.linspace(0, 1, 12).reshape(3, 4))
    assert prob.shape == (3, 4, 3) and 0 <= prob.min() and prob.max() <= 1
    assert prob[0, 0].sum() < prob[-1, -1].sum()  # darker = less probable
    with pytest.raises(PhotostyleError, match="shape"):
        figures.probability_image(np.zeros((2, 2, 2)))


@pytest.mark.parametrize("banner", [None, RANDOM_WEIGHTS_BANNER, STAND_IN_BANNER])
def test_save_grid_writes_figure_and_panels(tmp_path, banner):
    grid = figures.comparison_grid("figure4", "Figure 4", _rows(2, ["content", "style"]), COLUMNS[:2],
                                   sources={("pair 1", "style"): "k1"}, weights_warning=banner)
    entry = figures.save_grid(grid, tmp_path)
    assert entry["file"] == "figure4.png" and (tmp_path / "figure4.png").exists()
    assert (entry["rows"], entry["columns"]) == (2, 2)
    assert entry["random_weights"] is (banner == RANDOM_WEIGHTS_BANNER) and entry["weights_warning"] == banner
    assert entry["title"] == ["Figure 4"] + ([banner] if banner else [])
    assert len(entry["panels"]) == 4
    for p, panel in zip(entry["panels"], grid.panels):
        assert p["size"] == [12, 16] and p["weights_warning"] == banner
        with Image.open(tmp_path / p["file"]) as im:
            pixels = np.asarray(im.convert("RGB"), dtype=np.float64) / 255
            assert im.text == (images.weights_text(banner) or {})
        if banner is None:
            assert pixels.shape == (12, 16, 3)
        else:  # the stamp below the image; the image itself to 8-bit rounding
            assert pixels.shape[0] > 12 and pixels.shape[1] == 16
            assert np.abs(pixels[:12] - panel.image).max() <= 0.5 / 255 + 1e-9
    assert [p["source"] for p in entry["panels"]] == [None, None, None, "k1"]
    assert figures.figure_png(figures.grid_figure(grid)).startswith(b"\x89PNG")


def test_save_figure_dpi_and_pdf(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2.0, 1.0))
    fig.subplots().plot([0, 1], [1, 0])
    png = figures.save_figure(fig, tmp_path / "f.png", dpi=150)
    assert Image.open(png).size == (300, 150)
    pdf = figures.save_figure(fig, tmp_path / "f.pdf")
    head = pdf.read_bytes()[:5]
    assert head == b"%PDF-"
    assert figures.save_figure(fig, tmp_path / "g", format="svg").read_bytes().lstrip().startswith(b"<?xml")
    with pytest.raises(PhotostyleError, match="ends in .png"):
        figures.save_figure(fig, tmp_path / "h.png", format="pdf")
    with pytest.raises(PhotostyleError, match="dpi"):
        figures.save_figure(fig, tmp_path / "i.png", dpi=0)


def _title_heights(fig) -> dict[str, tuple[float, float]]:
    """Each non-empty axis title's (bottom, top) in figure coordinates, after drawing the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    to_fig = fig.transFigure.inverted()
    out = {}
    for ax in fig.axes:
        if ax.title.get_text():
            box = ax.title.get_window_extent(renderer).transformed(to_fig)
            out[ax.title.get_text()] = (box.y0, box.y1)
    return out


def test_column_titles_align_whatever_the_aspect_ratios():
    """Wide (20 x 60), tall (60 x 20) and square images in one row: their titles at one height, at the top.

    Before, each image was centred in its cell, so the wide image's title sat far below the tall one's.
    """
    rng = np.random.default_rng(0)
    shapes = {"r1": ((20, 60), (60, 20), (30, 30)), "r2": ((40, 30), (30, 40), (30, 30))}
    rows = [(label, {key: rng.random((h, w, 3)) for key, (h, w) in zip(("wide", "tall", "square"), hw)})
            for label, hw in shapes.items()]
    cols = [("wide", "Wide"), ("tall", "Tall"), ("square", "Square")]
    fig = figures.grid_figure(figures.comparison_grid("f", "Aspects", rows, cols))
    heights = _title_heights(fig)
    assert set(heights) == {"Wide", "Tall", "Square"}
    bottoms = [b for b, _ in heights.values()]
    assert max(bottoms) - min(bottoms) < 1e-6
    # each title sits just above its own image, the top edge of the image's drawn box
    for ax in fig.axes[:3]:
        image_top = ax.get_position().y1
        assert 0 <= heights[ax.title.get_text()][0] - image_top < 0.05


def test_grid_legend_of_user_mask_labels(tmp_path):
    from photostyle_lib.plots.mask_views import label_colours

    labels = ("blue", "black")  # palette names: user / gold masks, drawn in their own colours
    stack = torch.zeros(2, 12, 16)
    stack[0, :6], stack[1, 6:] = 1.0, 1.0
    images = {"img": _img(0), "mask": figures.label_map_image(stack, labels)}
    grid = figures.comparison_grid("m", "User masks", [("p", images)],
                                   [("img", "Content"), ("mask", "Content mask (user)")], legend=labels)
    fig = figures.grid_figure(grid)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == list(labels)
    colours = label_colours(labels)
    for patch, lab in zip(legend.get_patches(), labels):
        assert same_color(patch.get_facecolor(), colours[lab])
    # the swatch colours are the panel's own pixels
    panel = grid.rows[0][1].image
    assert np.allclose(panel[0, 0], colours["blue"]) and np.allclose(panel[-1, 0], colours["black"])
    plain = figures.comparison_grid("n", "x", [("p", {"img": _img(0)})], [("img", "C")])
    assert figures.grid_figure(plain).legends == []
    entry = figures.save_grid(grid, tmp_path, format="pdf", dpi=150)
    assert entry["file"] == "m.pdf" and (tmp_path / "m.pdf").read_bytes()[:5] == b"%PDF-"
    assert entry["legend"] == ["blue", "black"] and (tmp_path / "panels" / "m_p_mask.png").exists()
    with pytest.raises(PhotostyleError, match="format"):
        figures.save_grid(grid, tmp_path, format="tiff")
