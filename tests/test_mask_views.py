"""Tests of photostyle_lib.mask_views: figure layouts, titles, bad input."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from matplotlib.colors import same_color
from matplotlib.figure import Figure

from photostyle_lib import mask_views as mv
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.masks import SemanticMasks

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
    assert len(fig.axes) == 4
    assert [fig.axes[i].get_title() for i in (0, 1)] == ["tree", "sky"]
    assert len(mv.per_label_figure(hard, max_labels=3).axes) == 6
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
    from photostyle_lib.images import STAND_IN_BANNER

    fig = mv.per_label_figure(soft, labels=("sky", "tree"), title="Figure 8", weights_note=STAND_IN_BANNER)
    assert _suptitle(fig).split("\n") == ["Figure 8", STAND_IN_BANNER]
    assert same_color(fig._suptitle.get_color(), mv.WARNING_COLOUR)
