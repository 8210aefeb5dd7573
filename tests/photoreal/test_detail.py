"""Per-region multi-scale detail matching (photoreal.detail): closed forms, invariants, checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.photoreal import detail


def _texture(shape, seed):
    """A band-rich grey texture with zero mean: (H, W, 3), the same in every channel."""
    rng = np.random.default_rng(seed)
    t = sum(gaussian_filter(rng.standard_normal(shape), s) * s for s in (0.7, 1.5, 3.0, 6.0))
    t = t / np.abs(t).max()
    return np.repeat(t[:, :, None], 3, axis=2)


def test_the_bands_add_back_to_the_image():
    """L_K + sum_k D_k = I (the decomposition is exact), and each band has (nearly) zero mean."""
    img = np.random.default_rng(0).random((40, 52, 3))
    layers, base = detail.detail_bands(img, 4)
    assert len(layers) == 4
    np.testing.assert_allclose(base + sum(layers), img, atol=1e-12)
    assert all(abs(layer.mean()) < 0.02 for layer in layers)


def test_style_with_the_same_detail_returns_the_image():
    """Image and style with equal detail statistics: every gain is 1 and the image comes back (to rounding)."""
    img = 0.5 + 0.2 * _texture((48, 48), 1)
    out = detail.match_region_detail(img, img.copy())
    np.testing.assert_allclose(out, img, atol=1e-12)


def test_uniformly_stronger_style_detail_is_reproduced_exactly():
    """Closed form: style = 0.5 + 1.5 * (image - 0.5) has every band 1.5x the image's, so every gain is 1.5
    and the output is the image with its detail (not its base) scaled by 1.5."""
    tex = _texture((56, 64), 2)
    img = 0.5 + 0.2 * tex
    sty = 0.5 + 0.3 * tex
    layers, base = detail.detail_bands(img, 3)
    out = detail.match_region_detail(img, sty, bands=3, max_gain=2.0)
    np.testing.assert_allclose(out, np.clip(base + 1.5 * sum(layers), 0, 1), atol=1e-9)


def test_gains_are_clipped_to_max_gain_both_ways():
    """A style with 4x the detail gives gain max_gain; a style with a quarter of it 1 / max_gain."""
    tex = _texture((48, 48), 3)
    img = 0.5 + 0.1 * tex
    layers, base = detail.detail_bands(img, 2)
    up = detail.match_region_detail(img, 0.5 + 0.4 * tex, bands=2, max_gain=2.0)
    np.testing.assert_allclose(up, base + 2.0 * sum(layers), atol=1e-9)
    down = detail.match_region_detail(img, 0.5 + 0.025 * tex, bands=2, max_gain=2.0)
    np.testing.assert_allclose(down, base + 0.5 * sum(layers), atol=1e-9)
    np.testing.assert_allclose(detail.match_region_detail(img, 0.5 + 0.4 * tex, max_gain=1.0), img, atol=1e-12)


def test_each_region_takes_its_own_style_regions_detail():
    """Two regions (left / right halves): the style's left half is 2x as textured, its right half half as
    textured. Away from the (feathered) boundary, each region's detail is scaled by its own gain, the ratio of
    the band's luminance standard deviations (the definition, computed independently here)."""
    h, w = 64, 96
    tex = _texture((h, w), 4)
    img = 0.5 + 0.15 * tex
    sty_tex = _texture((h, w), 5)
    sty = 0.5 + np.concatenate([0.3 * sty_tex[:, : w // 2], 0.075 * sty_tex[:, w // 2:]], axis=1)
    masks = np.zeros((2, h, w))
    masks[0, :, : w // 2] = 1
    masks[1, :, w // 2:] = 1
    out = detail.match_region_detail(img, sty, masks, masks, bands=1, max_gain=4.0, feather=1.0)
    (layer,), base = detail.detail_bands(img, 1)
    (sty_layer,), _ = detail.detail_bands(sty, 1)
    luma = np.array([0.299, 0.587, 0.114])
    gains = [(sty_layer[:, half] @ luma).std() / (layer[:, half] @ luma).std()
             for half in (np.s_[: w // 2], np.s_[w // 2:])]
    assert gains[0] > 1.5 and gains[1] < 0.75
    left, right = np.s_[:, : w // 2 - 8], np.s_[:, w // 2 + 8:]
    np.testing.assert_allclose(out[left], np.clip(base + gains[0] * layer, 0, 1)[left], atol=1e-6)
    np.testing.assert_allclose(out[right], np.clip(base + gains[1] * layer, 0, 1)[right], atol=1e-6)


def test_band_gains_of_flat_regions_and_tiny_labels():
    """A flat image region under a textured style region gets max_gain; a flat style region 1 / max_gain;
    a label with under 16 pixels in either image keeps 1."""
    h, w = 20, 20
    tex = _texture((h, w), 6)[:, :, 0]
    flat = np.zeros((h, w))
    one = np.ones((1, h, w))
    assert detail.band_gains(flat, tex, one, one, 3.0)[0] == 3.0
    assert detail.band_gains(tex, flat, one, one, 3.0)[0] == pytest.approx(1 / 3.0)
    tiny = np.zeros((1, h, w))
    tiny[0, :3, :3] = 1
    assert detail.band_gains(tex, 2 * tex, tiny, one, 3.0)[0] == 1.0


def test_output_stays_in_range_and_keeps_the_size():
    rng = np.random.default_rng(7)
    img, sty = rng.random((30, 40, 3)), rng.random((50, 20, 3))
    masks_i = np.stack([np.ones((30, 40)), np.zeros((30, 40))])
    masks_s = np.stack([np.zeros((50, 20)), np.ones((50, 20))])
    out = detail.match_region_detail(img, sty, masks_i, masks_s, max_gain=3.0)
    assert out.shape == img.shape and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("kwargs, match", [({"bands": 0}, "bands"), ({"max_gain": 0.5}, "max_gain"),
                                           ({"feather": 0.0}, "feather")])
def test_bad_parameters_are_refused(kwargs, match):
    img = np.full((8, 8, 3), 0.5)
    with pytest.raises(PhotostyleError, match=match):
        detail.match_region_detail(img, img, **kwargs)


def test_bad_masks_are_refused():
    img = np.full((8, 8, 3), 0.5)
    with pytest.raises(PhotostyleError, match="both"):
        detail.match_region_detail(img, img, np.ones((1, 8, 8)))
    with pytest.raises(PhotostyleError, match="content_masks must be"):
        detail.match_region_detail(img, img, np.ones((1, 4, 8)), np.ones((1, 8, 8)))
    with pytest.raises(PhotostyleError, match="finite"):
        detail.match_region_detail(img, img, -np.ones((1, 8, 8)), np.ones((1, 8, 8)))
