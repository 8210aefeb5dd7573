"""Tests of photostyle_lib.plots.mask_views: figure layouts, titles, bad input."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from matplotlib.colors import same_color
from matplotlib.figure import Figure

from photostyle_lib.plots import mask_views as mv
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.semantic.masks import SemanticMasks

LABELS = ("sky", "water", "tree", "building", "road")


@pytest.fixture
def soft() -> SemanticMasks:
    g = torch.Generator().manual_seed(0)
    c = torch.softmax(3 * torch.randn(5, 32, 48, generator=g), 0)
    s = torch.softmax(3 * torch.randn(5, 20, 30, generator=g), 0)
    return SemanticMasks(c, s, LABELS, kind="soft")


@pytest.fixture
def hard(soft) -> SemanticMasks:
    one_hot = lambda p: torch.zeros_like(p).scatter_(0, p.argmax(0, keepdim=True), 1.0)  # noqa: E731
    return SemanticMasks(one_hot(soft.content), one_hot(soft.style), LABELS, kind="hard")


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(1)
    return torch.rand(1, 3, 32, 48, generator=g), torch.rand(20, 30, 3, generator=g).numpy()


def _suptitle(fig: Figure) -> str:
    return fig._suptitle.get_text() if fig._suptitle is not None else ""


def test_label_map_figure_axes_and_legend(hard, images):
    fig = mv.label_map_figure(hard)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    fig = mv.label_map_figure(hard, content_image=images[0], style_image=images[1], title="hard",
                              weights_note="RANDOM weights")
    assert len(fig.axes) == 4
    assert _suptitle(fig) == "hard\nRANDOM weights"
    assert same_color(fig._suptitle.get_color(), mv.WARNING_COLOUR)  # a note is a warning: in red
    assert not same_color(mv.label_map_figure(hard, title="hard")._suptitle.get_color(), mv.WARNING_COLOUR)
    legend_names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend_names == list(LABELS)


def test_probability_maps_show_top_k_labels_by_area(soft, images):
    fig = mv.probability_maps_figure(soft, top_k=3)
    assert len(fig.axes) == 2 * 3 + 1  # content and style per label, one colour bar
    fig = mv.probability_maps_figure(soft, top_k=99, content_image=images[0], style_image=images[1])
    assert len(fig.axes) == 2 * 5 + 2 + 1
    # the biggest label by area comes first
    c = soft.content.clone()
    c[3] = 1.0
    big = SemanticMasks(c.clamp(0, 1), soft.style, LABELS, kind="soft")
    assert mv.top_labels_by_area(big, 2)[0] == "building"
    titles = [ax.get_title() for ax in mv.probability_maps_figure(big, top_k=1).axes]
    assert titles[0] == "building (content)"


def test_masks_figure_dispatches_on_kind(soft, hard, images):
    assert len(mv.masks_figure(*images, hard).axes) == 4
    assert len(mv.masks_figure(*images, soft, top_k=2).axes) == 2 * 3 + 1


def test_hard_soft_figure_is_figure_3(soft, hard, images):
    fig = mv.hard_soft_figure(*images, hard, soft, top_k=4, title="Figure 3",
                              weights_note=mv.describe_weights(SimpleNamespace(weights="random", seed=0)))
    assert len(fig.axes) == 2 * (2 + 4) + 1
    assert "RANDOM segmentation weights (seed 0)" in _suptitle(fig)
    assert mv.describe_weights(SimpleNamespace(weights="pretrained")) is None


def test_per_label_figure_is_figure_8(hard):
    fig = mv.per_label_figure(hard, labels=("tree", "sky"))
    assert len(fig.axes) == 5  # 2 labels x (content, style) + the colour bar
    assert [fig.axes[i].get_title() for i in (0, 1)] == ["tree", "sky"]
    assert len(mv.per_label_figure(hard, max_labels=3).axes) == 7
    with pytest.raises(PhotostyleError, match="not in the masks"):
        mv.per_label_figure(hard, labels=("lava",))


def test_bad_inputs(hard, images):
    with pytest.raises(PhotostyleError, match="both"):
        mv.label_map_figure(hard, content_image=images[0])
    with pytest.raises(PhotostyleError, match=r"\[0, 1\]"):
        mv.masks_figure(images[0], np.full((20, 30, 3), 255.0), hard)
    with pytest.raises(PhotostyleError, match="top_k"):
        mv.probability_maps_figure(hard, top_k=0)


def test_figures_render_to_png(soft, hard, images, tmp_path):
    fig = mv.hard_soft_figure(*images, hard, soft)
    fig.savefig(tmp_path / "fig3.png")
    assert (tmp_path / "fig3.png").stat().st_size > 1000


def test_stand_in_banner_as_a_weights_note(soft, images):
    from photostyle_lib.io.images import STAND_IN_BANNER

    fig = mv.per_label_figure(soft, labels=("sky", "tree"), title="Figure 8", weights_note=STAND_IN_BANNER)
    assert _suptitle(fig).replace("\n", " ") == f"Figure 8 {STAND_IN_BANNER}"  # wrapped to the width
    assert same_color(fig._suptitle.get_color(), mv.WARNING_COLOUR)


def test_per_label_figure_with_one_label_shows_title_and_warning_whole(soft):
    """One label used to make a 260 px figure that cut off its title; now >= 640 px, the title inside."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from photostyle_lib.io.images import RANDOM_WEIGHTS_BANNER

    title = "Figure 8: masks of pair 8, a failure case (top: content, bottom: style)"
    fig = mv.per_label_figure(soft, labels=("sky",), title=title, weights_note=RANDOM_WEIGHTS_BANNER)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    width, height = canvas.get_width_height()
    assert width >= 640
    box = fig._suptitle.get_window_extent(canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= width and box.y1 <= height
    assert _suptitle(fig).replace("\n", " ") == f"{title} {RANDOM_WEIGHTS_BANNER}"


def test_per_label_figure_colours_equal_the_saved_panels(soft):
    from photostyle_lib.plots.figures import probability_image

    fig = mv.per_label_figure(soft, labels=("water", "tree"))
    for ax, stack in ((fig.axes[0], soft.content), (fig.axes[2], soft.style)):  # row-major: style below
        im = ax.get_images()[0]
        c = LABELS.index("water")
        drawn = im.to_rgba(im.get_array())[..., :3]
        assert np.allclose(drawn, probability_image(stack[c]), atol=1e-6)


def test_gold_mask_labels_are_drawn_in_their_palette_colours():
    c = torch.zeros(2, 8, 8)
    c[0, :4], c[1, 4:] = 1.0, 1.0
    gold = SemanticMasks(c, c.clone(), ("blue", "black"), kind="gold")
    rgb = mv.label_map_rgb(gold.content, gold.labels)
    assert np.allclose(rgb[0, 0], (0, 0, 1)) and np.allclose(rgb[-1, 0], (0, 0, 0))
    assert mv.legend_note(gold.labels) == "labels, drawn in their own colours: blue, black"
    note = mv.legend_note(("sky", "tree"))
    hexes = {lab: "#" + "".join(f"{round(v * 255):02x}" for v in rgb)
             for lab, rgb in mv.label_colours(("sky", "tree")).items()}
    assert note == f"label colours: sky {hexes['sky']}, tree {hexes['tree']}"


def test_titles_of_a_row_align_for_images_of_other_aspects(hard):
    """Content 32 x 48 and a tall style image (60 x 20) in one row: the titles at one height."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    tall = SemanticMasks(hard.content, torch.zeros(5, 60, 20).index_fill_(0, torch.tensor([0]), 1.0), LABELS,
                         kind="user")
    g = torch.Generator().manual_seed(2)
    fig = mv.label_map_figure(tall, content_image=torch.rand(1, 3, 32, 48, generator=g),
                              style_image=torch.rand(1, 3, 60, 20, generator=g))
    FigureCanvasAgg(fig).draw()
    renderer, to_fig = fig.canvas.get_renderer(), fig.transFigure.inverted()
    y = {ax.title.get_text(): ax.title.get_window_extent(renderer).transformed(to_fig).y0 for ax in fig.axes}
    assert abs(y["content"] - y["style"]) < 1e-6
    assert abs(y["content labels (user)"] - y["style labels (user)"]) < 1e-6
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(LABELS)  # user masks get their legend
