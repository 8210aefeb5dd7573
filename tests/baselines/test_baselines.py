"""Tests for photostyle_lib.baselines: Reinhard's statistics matching and Pitie's IDT."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.color import rgb2lab

from photostyle_lib.baselines import masked_reinhard, pitie_idt, reinhard
from photostyle_lib.errors import PhotostyleError


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, n_directions: int = 64, n_levels: int = 256) -> float:
    """Mean over seeded random directions of the 1-D Wasserstein-1 distance between projected colours."""
    rng = np.random.default_rng(1234)
    dirs = rng.standard_normal((n_directions, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    levels = (np.arange(n_levels) + 0.5) / n_levels
    pa = np.quantile(a.reshape(-1, 3) @ dirs.T, levels, axis=0)
    pb = np.quantile(b.reshape(-1, 3) @ dirs.T, levels, axis=0)
    return float(np.abs(pa - pb).mean())


@pytest.fixture
def colour_pair():
    """A bluish-grey content (24x30) and a warm style of another size (20x17), both well inside the gamut."""
    rng = np.random.default_rng(21)
    y, x = np.mgrid[0:24, 0:30]
    content = np.stack([0.35 + 0.1 * np.sin(x / 5), 0.4 + 0.1 * np.cos(y / 4), 0.55 + 0.08 * np.sin((x + y) / 7)], -1)
    content = np.clip(content + 0.02 * rng.standard_normal(content.shape), 0, 1)
    ys, xs = np.mgrid[0:20, 0:17]
    style = np.stack([0.65 + 0.12 * np.cos(xs / 3), 0.45 + 0.08 * np.sin(ys / 2), 0.3 + 0.05 * np.cos((xs - ys) / 4)], -1)
    style = np.clip(style + 0.03 * rng.standard_normal(style.shape), 0, 1)
    return content, style


@pytest.fixture
def bimodal_pair():
    """Content: one smooth colour cloud; style: two distinct colour clusters (a harder target)."""
    rng = np.random.default_rng(22)
    content = np.clip(0.5 + 0.1 * rng.standard_normal((30, 32, 3)), 0, 1)
    style = np.empty((28, 25, 3))
    style[:14] = [0.8, 0.3, 0.2]
    style[14:] = [0.15, 0.35, 0.7]
    style = np.clip(style + 0.04 * rng.standard_normal(style.shape), 0, 1)
    return content, style


def test_reinhard_matches_style_lab_statistics(colour_pair):
    content, style = colour_pair
    out = reinhard(content, style)
    assert out.shape == content.shape and out.dtype == np.float64
    assert out.min() >= 0 and out.max() <= 1
    lab_out = rgb2lab(out).reshape(-1, 3)
    lab_style = rgb2lab(style).reshape(-1, 3)
    lab_content = rgb2lab(content).reshape(-1, 3)
    assert np.allclose(lab_out.mean(0), lab_style.mean(0), atol=0.05)
    assert np.allclose(lab_out.std(0), lab_style.std(0), rtol=0.01)
    # and the content's statistics were far from it to begin with
    assert np.abs(lab_content.mean(0) - lab_style.mean(0)).max() > 5


def test_masked_reinhard_without_masks_or_with_one_full_label_is_reinhard(colour_pair):
    content, style = colour_pair
    ref = reinhard(content, style)
    assert np.allclose(masked_reinhard(content, style), ref, atol=1e-12)
    one_c, one_s = np.ones((1,) + content.shape[:2]), np.ones((1,) + style.shape[:2])
    assert np.allclose(masked_reinhard(content, style, one_c, one_s), ref, atol=1e-12)


def _halves(shape, split):
    m = np.zeros((2,) + shape[:2])
    m[0, :, :split] = 1
    m[1, :, split:] = 1
    return m


def test_masked_reinhard_matches_each_region_to_its_style_region(colour_pair):
    """Hard masks: every content region's Lab mean and spread become its style region's
    (two regions whose style statistics differ), not the whole style's."""
    content, style = colour_pair
    style = style.copy()
    style[:, 9:] = np.clip(style[:, 9:][..., ::-1] * 0.8 + 0.1, 0, 1)   # a second, different region
    cm, sm = _halves(content.shape, 12), _halves(style.shape, 9)
    out = masked_reinhard(content, style, cm, sm)
    lab_o, lab_s = rgb2lab(out), rgb2lab(style)
    for k in range(2):
        o = lab_o[cm[k] > 0]
        t = lab_s[sm[k] > 0]
        assert np.allclose(o.mean(0), t.mean(0), atol=0.05)
        assert np.allclose(o.std(0), t.std(0), rtol=0.01, atol=0.02)
    # the two style regions really differ, so a global transfer could not do this
    assert np.abs(lab_s[sm[0] > 0].mean(0) - lab_s[sm[1] > 0].mean(0)).max() > 5


def test_masked_reinhard_soft_masks_blend_the_region_maps(colour_pair):
    """Soft masks: each pixel gets the mask-weighted mean of the regions' Lab maps (region
    statistics weighted by the masks); a pixel no label covers gets the global map."""
    content, style = colour_pair
    cm, sm = _halves(content.shape, 12), _halves(style.shape, 9)
    soft = cm.copy()
    soft[:, :, 10:14] = [0.25, 0.5, 0.75, 0.9]         # a soft seam
    soft[1, :, 10:14] = 1 - soft[0, :, 10:14]
    soft[:, :, 25] = 0.0                                # a column no label covers
    out = rgb2lab(masked_reinhard(content, style, soft, sm))
    maps = [_region_map_lab(content, style, soft[k], sm[k]) for k in range(2)]
    total = soft.sum(0)[..., None]
    expected = np.where(total > 0, (soft[0][..., None] * maps[0] + soft[1][..., None] * maps[1])
                        / np.maximum(total, 1e-12), rgb2lab(reinhard(content, style)))
    assert np.abs(out - expected).max() < 1e-3    # Lab units (0-100); the colours stay in gamut
    # the seam really mixes: its colours lie strictly between the two maps'
    assert np.abs(maps[0][:, 11] - maps[1][:, 11]).max() > 5


def _region_map_lab(content, style, wc, ws):
    """Independent rewrite of one region's map, weighted statistics by np.average."""
    lc, ls = rgb2lab(content).reshape(-1, 3), rgb2lab(style).reshape(-1, 3)
    wc, ws = wc.reshape(-1), ws.reshape(-1)
    mc, ms = np.average(lc, axis=0, weights=wc), np.average(ls, axis=0, weights=ws)
    sc = np.sqrt(np.average((lc - mc) ** 2, axis=0, weights=wc))
    ss = np.sqrt(np.average((ls - ms) ** 2, axis=0, weights=ws))
    return ((lc - mc) * ss / sc + ms).reshape(content.shape)


def test_masked_reinhard_bad_masks_say_what_to_fix(colour_pair):
    content, style = colour_pair
    cm, sm = _halves(content.shape, 12), _halves(style.shape, 9)
    with pytest.raises(PhotostyleError, match="both"):
        masked_reinhard(content, style, cm, None)
    with pytest.raises(PhotostyleError, match="content_masks must be"):
        masked_reinhard(content, style, cm[:, :10], sm)
    with pytest.raises(PhotostyleError, match="same labels"):
        masked_reinhard(content, style, cm, sm[:1])
    with pytest.raises(PhotostyleError, match=">= 0"):
        masked_reinhard(content, style, -cm, sm)


def test_reinhard_keeps_content_structure_and_is_identity_on_itself(colour_pair):
    content, style = colour_pair
    assert np.allclose(reinhard(content, content), content, atol=1e-6)
    out = reinhard(content, style)
    # a per-channel affine map in Lab: the content's lightness pattern is kept
    corr = np.corrcoef(rgb2lab(out)[..., 0].ravel(), rgb2lab(content)[..., 0].ravel())[0, 1]
    assert corr > 0.99


def test_reinhard_flat_content_is_shifted_not_nan():
    flat = np.full((5, 6, 3), 0.4)
    style = np.random.default_rng(0).random((4, 4, 3))
    out = reinhard(flat, style)
    assert np.all(np.isfinite(out))
    assert np.allclose(rgb2lab(out).reshape(-1, 3).mean(0), rgb2lab(style).reshape(-1, 3).mean(0), atol=1.0)


@pytest.mark.parametrize("pair", ["colour_pair", "bimodal_pair"])
def test_idt_moves_colour_distribution_to_style(pair, request):
    content, style = request.getfixturevalue(pair)
    out = pitie_idt(content, style)
    assert out.shape == content.shape and out.dtype == np.float64
    assert out.min() >= 0 and out.max() <= 1
    before = sliced_wasserstein(content, style)
    after = sliced_wasserstein(out, style)
    assert after < 0.1 * before


def test_idt_more_iterations_get_closer(bimodal_pair):
    content, style = bimodal_pair
    d1 = sliced_wasserstein(pitie_idt(content, style, iterations=1), style)
    d20 = sliced_wasserstein(pitie_idt(content, style, iterations=20), style)
    assert d20 < 0.5 * d1


def test_idt_is_identity_on_its_own_distribution(colour_pair):
    content, _ = colour_pair
    assert np.allclose(pitie_idt(content, content, iterations=3), content, atol=1e-10)


def test_idt_is_deterministic_for_a_seed(colour_pair):
    content, style = colour_pair
    a = pitie_idt(content, style, iterations=5, seed=3)
    b = pitie_idt(content, style, iterations=5, seed=3)
    c = pitie_idt(content, style, iterations=5, seed=4)
    assert np.array_equal(a, b)
    assert np.abs(a - c).max() > 1e-6


@pytest.fixture
def ramp_pair():
    """Content: smooth colour ramps with faint noise (30x32); style: two colour clusters (28x25).

    IDT has to stretch the ramps into two clusters, which amplifies the noise: the grain regrain removes.
    """
    rng = np.random.default_rng(23)
    y, x = np.mgrid[0:30, 0:32]
    content = np.stack([0.3 + 0.4 * x / 31, 0.5 + 0.1 * np.sin(y / 4), 0.6 - 0.3 * y / 29], -1)
    content = np.clip(content + 0.01 * rng.standard_normal(content.shape), 0, 1)
    style = np.empty((28, 25, 3))
    style[:14] = [0.8, 0.3, 0.2]
    style[14:] = [0.15, 0.35, 0.7]
    return content, np.clip(style + 0.04 * rng.standard_normal(style.shape), 0, 1)


def test_idt_regrain_restores_content_gradients(ramp_pair):
    content, style = ramp_pair
    plain = pitie_idt(content, style)
    regrained = pitie_idt(content, style, regrain=True)
    assert regrained.shape == content.shape and regrained.min() >= 0 and regrained.max() <= 1

    def gradient_error(img):
        return np.abs(np.diff(img - content, axis=0)).mean() + np.abs(np.diff(img - content, axis=1)).mean()

    assert gradient_error(regrained) < 0.6 * gradient_error(plain)
    # the colours are still the style's, far closer than the content's
    assert sliced_wasserstein(regrained, style) < 0.15 * sliced_wasserstein(content, style)
    # a larger regrain weight follows the content's gradients more closely
    strong = pitie_idt(content, style, regrain=True, regrain_lambda=20.0)
    assert gradient_error(strong) < 0.7 * gradient_error(regrained)


@pytest.mark.parametrize("func", [reinhard, pitie_idt])
def test_bad_images(func, colour_pair):
    content, style = colour_pair
    with pytest.raises(PhotostyleError, match="content"):
        func(content[..., 0], style)
    with pytest.raises(PhotostyleError, match="style"):
        func(content, style[..., :2])
    with pytest.raises(PhotostyleError, match=r"\[0, 1\]"):
        func(content * 255, style)
    with pytest.raises(PhotostyleError, match="NaN"):
        func(content, np.full_like(style, np.nan))


def test_idt_bad_parameters(colour_pair):
    content, style = colour_pair
    with pytest.raises(PhotostyleError, match="iterations"):
        pitie_idt(content, style, iterations=0)
    with pytest.raises(PhotostyleError, match="seed"):
        pitie_idt(content, style, seed=-1)
    with pytest.raises(PhotostyleError, match="seed"):
        pitie_idt(content, style, seed="a")
    with pytest.raises(PhotostyleError, match="regrain"):
        pitie_idt(content, style, regrain="yes")
    with pytest.raises(PhotostyleError, match="regrain_lambda"):
        pitie_idt(content, style, regrain=True, regrain_lambda=-1)


# ---------------------------------------------------------------------------
# The compiled IDT against the exact rank-based reference


def _exact_idt(content, style, iterations, seed):
    """pitie_idt's rotations with the exact quantile match (baselines._idt_exact), clipped."""
    from photostyle_lib.baselines import _idt_exact, _random_rotation

    rng = np.random.default_rng(seed)
    rotations = np.stack([_random_rotation(rng) for _ in range(iterations)])
    colours = np.ascontiguousarray(content.reshape(-1, 3).T)
    _idt_exact(colours, np.ascontiguousarray(style.reshape(-1, 3).T), rotations)
    return np.clip(colours.T.reshape(content.shape), 0, 1)


needs_kernels = pytest.mark.skipif(not __import__("importlib").import_module("photostyle_lib.photoreal.image_kernels").AVAILABLE,
                                   reason="numba is not installed")


@needs_kernels
@pytest.mark.parametrize("pair", ["colour_pair", "bimodal_pair", "ramp_pair"])
def test_compiled_idt_close_to_exact_match(pair, request):
    content, style = request.getfixturevalue(pair)
    fast = pitie_idt(content, style, iterations=10, seed=5)
    exact = _exact_idt(content, style, 10, 5)
    assert np.abs(fast - exact).mean() < 0.01
    d_fast, d_exact = sliced_wasserstein(fast, style), sliced_wasserstein(exact, style)
    assert abs(d_fast - d_exact) < 0.1 * d_exact + 2e-3


@needs_kernels
def test_binned_match_against_rank_match_and_its_invariants():
    from photostyle_lib.baselines import _match_1d
    from photostyle_lib.photoreal.image_kernels import _match_axis

    rng = np.random.default_rng(31)
    # content: continuous values plus two tied groups (an atom at 0.2, one at 0.75);
    # reference: two clusters with a gap, of another size
    x = np.concatenate([rng.normal(0.5, 0.1, 3000), np.full(400, 0.2), np.full(300, 0.75)])
    rng.shuffle(x)
    ref = np.concatenate([rng.normal(0.3, 0.05, 1500), rng.normal(0.8, 0.05, 1100)])
    lo, hi = min(x.min(), ref.min()), max(x.max(), ref.max())
    change = np.empty_like(x)
    n_bins = 4096
    _match_axis(x, ref, lo, hi, n_bins, change, np.empty((8, n_bins + 1)))
    fast = x + change
    exact = _match_1d(x, np.sort(ref))
    # order kept, ties kept
    order = np.argsort(x, kind="stable")
    assert np.all(np.diff(fast[order]) >= -1e-12)
    for atom in (0.2, 0.75):
        assert np.ptp(fast[x == atom]) == 0.0
        # a tied group alone in its bin goes where its mid-rank does
        assert abs(fast[x == atom][0] - exact[x == atom][0]) < 0.01
    # the matched 1-D distribution is the rank match's (tied groups stay atoms in both)
    levels = np.linspace(0.01, 0.99, 99)
    assert np.abs(np.quantile(fast, levels) - np.quantile(exact, levels)).max() < 0.01
    # and it moved: the content's own quantiles are far from it
    assert np.abs(np.quantile(x, levels) - np.quantile(exact, levels)).max() > 0.1
    # and most values land where the rank match sends them (bins with several
    # distinct values may differ, by at most their own quantile mass)
    assert np.median(np.abs(fast - exact)) < 1e-3
    assert np.abs(fast - exact).mean() < 5e-3


@needs_kernels
def test_binned_match_of_equal_or_flat_inputs():
    from photostyle_lib.photoreal.image_kernels import _match_axis

    x = np.random.default_rng(32).random(500)
    change = np.empty_like(x)
    _match_axis(x, x.copy(), x.min(), x.max(), 256, change, np.empty((8, 257)))
    assert np.abs(change).max() < 1e-12            # a distribution matched onto itself stays
    flat = np.full(50, 0.4)
    _match_axis(flat, flat[:20].copy(), 0.4, 0.4, 256, change[:50], np.empty((8, 257)))
    assert np.all(change[:50] == 0.0)
    # a flat content matched onto a spread reference lands on its median (mid-rank 1/2)
    ref = np.linspace(0.0, 1.0, 1001)
    _match_axis(flat, ref, 0.0, 1.0, 4096, change[:50], np.empty((8, 4097)))
    assert np.allclose(flat + change[:50], 0.5, atol=1e-3)


@needs_kernels
def test_idt_on_the_dataset_pair_beats_the_content_and_stays_near_exact(data_dir):
    from PIL import Image

    def small(path):
        img = Image.open(path).convert("RGB")
        return np.asarray(img.resize((img.width // 4, img.height // 4), Image.BILINEAR), dtype=np.float64) / 255

    content, style = small(data_dir / "input" / "in1.png"), small(data_dir / "style" / "tar1.png")
    fast = pitie_idt(content, style)
    exact = _exact_idt(content, style, 20, 0)
    d_fast, d_exact = sliced_wasserstein(fast, style), sliced_wasserstein(exact, style)
    assert d_fast < 0.1 * sliced_wasserstein(content, style)
    assert d_fast < 1.1 * d_exact
    assert np.abs(fast - exact).mean() < 0.01


def test_without_numba_pitie_idt_runs_the_exact_match(colour_pair, monkeypatch):
    from photostyle_lib.photoreal import image_kernels

    content, style = colour_pair
    monkeypatch.setattr(image_kernels, "AVAILABLE", False)
    assert np.allclose(pitie_idt(content, style, iterations=4, seed=2), _exact_idt(content, style, 4, 2),
                       rtol=0, atol=1e-14)


def test_masked_idt_without_masks_is_pitie_idt(colour_pair):
    from photostyle_lib.baselines import masked_idt
    content, style = colour_pair
    assert np.array_equal(masked_idt(content, style, seed=3), pitie_idt(content, style, seed=3))


def test_masked_idt_moves_each_region_to_its_style_region(colour_pair):
    """Per region: the output region's colour distribution is close to its style region's and far
    from the other region's; pixels no label covers get the global IDT."""
    from photostyle_lib.baselines import masked_idt
    content, style = colour_pair
    style = style.copy()
    style[:, 9:] = np.clip(style[:, 9:][..., ::-1] * 0.8 + 0.1, 0, 1)
    cm, sm = _halves(content.shape, 12), _halves(style.shape, 9)
    cm[:, :, 29] = 0.0                                    # the last column: no label
    out = masked_idt(content, style, cm, sm)
    for k in range(2):
        region = out[cm[k] > 0]
        own = sliced_wasserstein(region, style[sm[k] > 0])
        other = sliced_wasserstein(region, style[sm[1 - k] > 0])
        before = sliced_wasserstein(content[cm[k] > 0], style[sm[k] > 0])
        assert own < 0.2 * before and own < 0.2 * other
    glob = pitie_idt(content, style)
    assert np.array_equal(out[:, 29], glob[:, 29])


def test_masked_idt_soft_masks_go_to_the_largest_label(colour_pair):
    from photostyle_lib.baselines import masked_idt
    content, style = colour_pair
    cm, sm = _halves(content.shape, 12), _halves(style.shape, 9)
    soft = 0.3 + 0.4 * cm                                 # 0.7 / 0.3: the same argmax as the hard masks
    assert np.array_equal(masked_idt(content, style, soft, sm), masked_idt(content, style, cm, sm))
    with pytest.raises(PhotostyleError, match="both"):
        masked_idt(content, style, cm, None)
    with pytest.raises(PhotostyleError, match="same labels"):
        masked_idt(content, style, cm, sm[:1])
