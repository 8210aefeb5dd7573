"""Tests for photostyle_lib.metrics: closed forms, bounds, and the orderings the metrics must give
on synthetic and real pairs (content / affine recolouring vs noise / Gatys; blur; Reinhard vs content)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from skimage.color import lab2rgb, rgb2lab
from skimage.filters import gaussian

from photostyle_lib import metrics
from photostyle_lib.baselines import reinhard
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import array_to_tensor, tensor_to_array
from photostyle_lib.semantic.masks import SemanticMasks, load_gold_masks
from photostyle_lib.metrics import (
    METRICS,
    gram_distance,
    image_metrics,
    load_gram_vgg,
    photorealism_score,
    region_style_distances,
    structure_score,
    style_distance,
)
from photostyle_lib.features.vgg import VGGFeatures


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """(40, 48, 3) float64 in [0.1, 0.9]: shaded background, two rectangles, fine texture, seeded."""
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:40, 0:48] / 48.0
    img = np.stack([0.3 + 0.3 * x, 0.35 + 0.2 * y, 0.5 - 0.2 * x * y], axis=-1)
    img[8:22, 6:20] = [0.75, 0.4, 0.25]
    img[20:34, 26:42] = [0.2, 0.55, 0.7]
    img += 0.03 * np.sin(11 * x + 7 * y)[..., None] + 0.01 * rng.standard_normal(img.shape)
    return np.clip(img, 0.1, 0.9)


@pytest.fixture(scope="module")
def warm_style() -> np.ndarray:
    """(30, 36, 3): a warm, darker image of another size."""
    rng = np.random.default_rng(6)
    y, x = np.mgrid[0:30, 0:36] / 36.0
    img = np.stack([0.6 + 0.2 * np.cos(4 * x), 0.35 + 0.1 * np.sin(5 * y), 0.2 + 0.05 * x], axis=-1)
    return np.clip(img + 0.03 * rng.standard_normal(img.shape), 0, 1)


@pytest.fixture
def real_pair(data_dir):
    """Pair 1 of the dataset at 64 px: content, style (arrays) and its gold masks."""
    from photostyle_lib.io.data import get_pair
    from photostyle_lib.io.images import load_image

    p = get_pair(1, data_dir)
    content = tensor_to_array(load_image(p.content, 64))
    style = tensor_to_array(load_image(p.style, 64))
    masks = load_gold_masks(p.content_mask, p.style_mask, unmatched="drop")
    return content, style, masks


# ---------------------------------------------------------------------------
# photorealism_score


def test_content_and_affine_recolouring_are_photorealistic_noise_is_not(scene):
    matrix = np.array([[0.7, 0.2, 0.0], [0.1, 0.6, 0.1], [0.0, 0.15, 0.8]])
    affine = scene @ matrix.T + np.array([0.05, 0.1, 0.02])
    assert 0 <= affine.min() and affine.max() <= 1
    noisy = np.clip(scene + 0.05 * np.random.default_rng(1).standard_normal(scene.shape), 0, 1)
    own, aff, noise = (photorealism_score(x, scene) for x in (scene, affine, noisy))
    # The energy of an exactly affine output is of order eps = 1e-7 (Levin's regulariser).
    assert 0 <= own < 1e-6 and -1e-12 < aff < 1e-6
    assert noise > 1e-3 and noise > 1000 * max(own, aff)


def test_photorealism_is_per_value_and_accepts_tensors(scene):
    from photostyle_lib.photoreal.matting import laplacian_energy

    noisy = np.clip(scene + 0.02 * np.random.default_rng(2).standard_normal(scene.shape), 0, 1)
    score = photorealism_score(noisy, scene)
    assert score == pytest.approx(laplacian_energy(noisy, scene) / noisy.size, rel=1e-12)
    t = photorealism_score(torch.from_numpy(noisy).permute(2, 0, 1)[None], array_to_tensor(scene).double())
    assert t == pytest.approx(score, rel=1e-6)


def test_gatys_output_on_a_real_pair_is_far_less_photorealistic(data_dir, tmp_path):
    from photostyle_lib.experiments.runs import RunSpec, run_cached

    spec = RunSpec(1, "gatys", size=48, iterations=20, weights="random")
    rec = run_cached(spec, cache_dir=tmp_path, data_dir=data_dir, device="cpu", progress=False)
    content, out = rec.content(), rec.image()
    own = photorealism_score(content, content)
    # Reinhard is a global (Lab) recolouring: nearly affine, far below Gatys.
    rein = photorealism_score(reinhard(tensor_to_array(content), tensor_to_array(rec.style())), content)
    gatys = photorealism_score(out, content)
    assert own < 1e-6
    assert gatys > 100 * own and gatys > 3 * rein


def test_photorealism_rejects_bad_input(scene):
    with pytest.raises(PhotostyleError, match="resize"):
        photorealism_score(scene[:-2], scene)
    with pytest.raises(PhotostyleError, match=r"\[0, 1\]"):
        photorealism_score(scene * 3, scene)
    with pytest.raises(PhotostyleError, match="shape"):
        photorealism_score(scene[..., :2], scene)
    with pytest.raises(PhotostyleError, match="batch"):
        photorealism_score(torch.rand(2, 3, 40, 48), scene)


# ---------------------------------------------------------------------------
# structure_score


def test_structure_is_perfect_for_the_content_and_drops_with_blur(scene):
    assert structure_score(scene, scene) == pytest.approx(1.0, abs=1e-12)
    scores = [structure_score(gaussian(scene, sigma=s, channel_axis=-1), scene) for s in (0.5, 1.0, 2.0, 4.0)]
    assert all(a > b for a, b in zip(scores, scores[1:]))
    assert scores[0] < 1 and scores[-1] < 0.8


def test_structure_ignores_a_global_tone_change_but_not_noise(scene):
    darker = 0.05 + 0.45 * scene                     # a global brightness / contrast change
    noisy = np.clip(scene + 0.05 * np.random.default_rng(3).standard_normal(scene.shape), 0, 1)
    tone = structure_score(darker, scene)
    assert tone > 0.97
    # ... which the plain SSIM of luminance would count as lost structure
    assert structure_score(darker, scene, kind="luminance", match_tone=False) < tone - 0.05
    assert structure_score(noisy, scene) < 0.7


def test_structure_accepts_tensors_and_rejects_bad_input(scene):
    blurred = gaussian(scene, sigma=1.0, channel_axis=-1)
    assert structure_score(array_to_tensor(blurred).double(), array_to_tensor(scene).double()) == pytest.approx(
        structure_score(blurred, scene), abs=1e-6)
    with pytest.raises(PhotostyleError, match="resize"):
        structure_score(scene[:30], scene)
    with pytest.raises(PhotostyleError, match="11 px"):
        structure_score(scene[:8, :8], scene[:8, :8])
    with pytest.raises(PhotostyleError, match="kind"):
        structure_score(scene, scene, kind="edges")


# ---------------------------------------------------------------------------
# style_distance


def _shift_lab(image: np.ndarray, shift) -> np.ndarray:
    out = lab2rgb(rgb2lab(image) + np.asarray(shift, dtype=np.float64))
    assert out.min() > 0 and out.max() < 1      # no gamut clipping: the shift is exact
    return out


def test_style_distance_is_zero_for_the_style_and_delta_e_for_a_colour_shift(scene, warm_style):
    assert style_distance(warm_style, warm_style) == 0.0
    shift = np.array([3.0, -4.0, 2.0])
    assert style_distance(_shift_lab(scene, shift), scene) == pytest.approx(np.linalg.norm(shift), rel=1e-9)
    assert style_distance(scene, warm_style) == pytest.approx(style_distance(warm_style, scene), rel=1e-12)


def test_style_distance_is_a_lower_bound_of_the_3d_wasserstein_distance():
    rng = np.random.default_rng(7)
    for _ in range(3):
        a = np.clip(rng.uniform(0.2, 0.8, (8, 8, 3)) ** rng.uniform(0.5, 2), 0, 1)
        b = np.clip(rng.uniform(0.1, 0.9, (8, 8, 3)), 0, 1)
        la, lb = rgb2lab(a).reshape(-1, 3), rgb2lab(b).reshape(-1, 3)
        cost = ((la[:, None] - lb[None]) ** 2).sum(-1)
        rows, cols = linear_sum_assignment(cost)
        w2 = np.sqrt(cost[rows, cols].mean())
        # 64 quantile levels on 64 pixels: the 1-D distances are exact.
        sw = style_distance(a, b, levels=64)
        assert 0.3 * w2 < sw <= w2 + 1e-9


def test_reinhard_is_closer_to_the_style_than_the_content(scene, warm_style):
    assert style_distance(reinhard(scene, warm_style), warm_style) < 0.5 * style_distance(scene, warm_style)


def _two_region_masks(content_hw, style_hw):
    """Content: left third / rest; style: top half / bottom half (aligned labels 'a', 'b')."""
    cm = torch.zeros(2, *content_hw)
    cm[0, :, : content_hw[1] // 3] = 1
    cm[1] = 1 - cm[0]
    sm = torch.zeros(2, *style_hw)
    sm[0, : style_hw[0] // 2] = 1
    sm[1] = 1 - sm[0]
    return SemanticMasks(cm, sm, ("a", "b"), kind="user")


def test_regional_distance_is_the_area_weighted_mean_of_region_distances(scene):
    masks = SemanticMasks(*_two_region_masks(scene.shape[:2], scene.shape[:2]).content.repeat(2, 1, 1, 1),
                          ("a", "b"), kind="user")
    t_a, t_b = np.array([4.0, 0.0, -3.0]), np.array([0.0, 2.0, 0.0])
    out = scene.copy()
    left = masks.content[0].numpy() > 0
    out[left] = _shift_lab(scene, t_a)[left]
    out[~left] = _shift_lab(scene, t_b)[~left]
    terms = region_style_distances(out, scene, masks)
    area_a = left.mean()
    assert [t[0] for t in terms] == [0, 1]
    assert [t[2] for t in terms] == pytest.approx([area_a, 1 - area_a])
    assert terms[0][1] == pytest.approx(5.0, rel=1e-9) and terms[1][1] == pytest.approx(2.0, rel=1e-9)
    assert style_distance(out, scene, masks) == pytest.approx(area_a * 5.0 + (1 - area_a) * 2.0, rel=1e-9)
    # the same stacks given separately, as tensors or arrays
    assert style_distance(out, scene, masks.content, masks.style) == style_distance(out, scene, masks)
    assert style_distance(out, scene, masks.content.numpy(), masks.style.numpy()) == style_distance(out, scene, masks)


def test_per_region_reinhard_is_closer_in_every_region(scene, warm_style):
    masks = _two_region_masks(scene.shape[:2], warm_style.shape[:2])
    out = scene.copy()
    for c in range(2):
        cin, sin = masks.content[c].numpy() > 0, masks.style[c].numpy() > 0
        out[cin] = reinhard(scene[cin][None], warm_style[sin][None])[0]
    before = region_style_distances(scene, warm_style, masks)
    after = region_style_distances(out, warm_style, masks)
    assert all(a[1] < 0.5 * b[1] for a, b in zip(after, before))
    assert style_distance(out, warm_style, masks) < style_distance(reinhard(scene, warm_style), warm_style, masks)


def test_one_all_ones_mask_equals_no_mask_and_masks_are_resized(scene, warm_style):
    ones = SemanticMasks(torch.ones(1, 10, 12), torch.ones(1, 5, 6), ("all",), kind="user")
    assert style_distance(scene, warm_style, ones) == pytest.approx(style_distance(scene, warm_style), rel=1e-8)


def test_subsampling_is_seeded_and_close(scene, warm_style):
    full = style_distance(scene, warm_style)
    sub = style_distance(scene, warm_style, max_pixels=600)
    assert sub == style_distance(scene, warm_style, max_pixels=600)
    assert sub == pytest.approx(full, rel=0.1)


def test_style_distance_rejects_bad_masks(scene, warm_style):
    masks = _two_region_masks(scene.shape[:2], warm_style.shape[:2])
    with pytest.raises(PhotostyleError, match="both"):
        style_distance(scene, warm_style, masks.content)
    with pytest.raises(PhotostyleError, match="labels"):
        style_distance(scene, warm_style, masks.content, masks.style[:1])
    with pytest.raises(PhotostyleError, match="leave style_masks out"):
        style_distance(scene, warm_style, masks, masks.style)
    with pytest.raises(PhotostyleError, match=r"\[0, 1\]"):
        style_distance(scene, warm_style, masks.content * 2, masks.style)
    empty = torch.zeros_like(masks.content)
    with pytest.raises(PhotostyleError, match="no mask label"):
        style_distance(scene, warm_style, empty, masks.style)


def test_real_pair_orderings(real_pair):
    content, style, masks = real_pair
    rein = reinhard(content, style)
    assert style_distance(style, style, masks.style, masks.style) == 0.0
    assert style_distance(rein, style) < style_distance(content, style)
    assert style_distance(rein, style, masks) < style_distance(content, style, masks)
    assert structure_score(content, content) == pytest.approx(1.0, abs=1e-12)
    assert structure_score(gaussian(content, 1.5, channel_axis=-1), content) < structure_score(rein, content)
    noisy = np.clip(content + 0.05 * np.random.default_rng(4).standard_normal(content.shape), 0, 1)
    assert photorealism_score(noisy, content) > 100 * photorealism_score(content, content)


# ---------------------------------------------------------------------------
# gram_distance and image_metrics


def test_gram_distance_is_skipped_without_imagenet_weights(scene, warm_style, tmp_path, monkeypatch):
    monkeypatch.delenv("PHOTOSTYLE_VGG_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    vgg = load_gram_vgg("imagenet")
    assert not vgg.available and vgg.note.startswith("skipped") and "weights" in vgg.note
    assert np.isnan(gram_distance(scene, warm_style, vgg=vgg))
    row = image_metrics(scene, scene, warm_style, vgg=vgg)
    assert tuple(row) == METRICS and np.isnan(row["gram_distance"])
    assert row["style_distance"] == row["style_distance_global"]


def test_gram_distance_with_random_weights(scene, warm_style):
    vgg = load_gram_vgg("random")
    assert vgg.available and "random" in vgg.note
    assert gram_distance(warm_style, warm_style, vgg=vgg) == 0.0
    far = gram_distance(scene, warm_style, vgg=vgg)
    assert far > 0
    ones = SemanticMasks(torch.ones(1, 40, 48), torch.ones(1, 30, 36), ("all",), kind="user")
    assert gram_distance(scene, warm_style, ones, vgg=vgg) == pytest.approx(far, rel=1e-5)
    masks = _two_region_masks(scene.shape[:2], warm_style.shape[:2])
    assert gram_distance(scene, warm_style, masks, vgg=vgg.features) > 0
    with pytest.raises(PhotostyleError, match="load_gram_vgg"):
        gram_distance(scene, warm_style, vgg=VGGFeatures("random", ("conv1_1",)))


def test_image_metrics_with_masks(real_pair):
    content, style, masks = real_pair
    row = image_metrics(reinhard(content, style), content, style, masks)
    assert tuple(row) == METRICS
    assert row["style_distance"] != row["style_distance_global"]
    skipped = ("gram_distance", "judge_gram", "edge_ssim")  # no network asked for
    assert all(np.isnan(row[k]) for k in skipped)
    assert all(np.isfinite(row[k]) for k in METRICS if k not in skipped)
    assert metrics.LOWER_IS_BETTER.keys() == set(METRICS)


# --------------------------------------------------------------------------- edge transition


def _ramp_content(h=16, w=20, g=0.01):
    """Every channel a vertical ramp of slope g per pixel: |grad I| = sqrt(3) g everywhere."""
    y = np.arange(h)[:, None, None] * g + 0.2
    return np.broadcast_to(y, (h, w, 3)).copy()


def _left_right_labels(h=16, w=20, split=10):
    lab = np.zeros((h, w), np.int64)
    lab[:, split:] = 1
    return lab


def test_boundary_band_widths():
    lab = _left_right_labels()
    assert np.array_equal(np.flatnonzero(metrics.boundary_band(lab, 0)[0]), [9, 10])
    assert np.array_equal(np.flatnonzero(metrics.boundary_band(lab, 2)[0]), np.arange(7, 13))
    assert not metrics.boundary_band(np.zeros((5, 5), np.int64), 3).any()


def test_edge_transition_closed_forms():
    con = _ramp_content()
    lab = _left_right_labels()
    assert metrics.edge_transition(con, con, lab) == pytest.approx(1.0)
    # a global affine recolouring O = a I + b scales every gradient by a
    assert metrics.edge_transition(0.5 * con + 0.3, con, lab) == pytest.approx(0.5)
    # a colour step h in the red channel between columns 9 and 10: np.gradient gives h/2 at both columns
    g, h = 0.01, 0.2
    out = con.copy()
    out[:, 10:, 0] += h
    band = metrics.boundary_band(lab, 2.0)        # columns 7..12: 2 of its 6 columns see the step
    want = (2 * np.sqrt(3 * g ** 2 + (h / 2) ** 2) + 4 * np.sqrt(3) * g) / (6 * np.sqrt(3) * g)
    assert band[0].sum() == 6
    assert metrics.edge_transition(out, con, lab, width=2.0) == pytest.approx(want, rel=1e-9)
    # the same step far from the boundary (columns 2-3, outside the band) is not seen
    far = con.copy()
    far[:, 3:, 0] += h
    assert metrics.edge_transition(far, con, lab, width=2.0) == pytest.approx(1.0)


def test_edge_transition_takes_stacks_and_semantic_masks(two_label_masks):
    con = _ramp_content(40, 64)
    out = con.copy()
    out[20:, :, 1] += 0.1  # a step across the content masks' boundary (rows 19 | 20)
    by_stack = metrics.edge_transition(out, con, two_label_masks.content)
    assert by_stack > 1
    assert metrics.edge_transition(out, con, two_label_masks) == pytest.approx(by_stack)
    assert np.isnan(metrics.edge_transition(out, np.full_like(con, 0.5), two_label_masks))
    with pytest.raises(PhotostyleError, match="label map"):
        metrics.edge_transition(out, con, np.zeros((3, 3), np.int64))


# --------------------------------------------------------------------------- structure_error (Figure 7's table)


def test_structure_error_closed_forms():
    from photostyle_lib.metrics import structure_error

    rng = np.random.default_rng(0)
    img = rng.random((8, 9, 3))
    assert structure_error(img, img) == 0.0
    # Colours may change by a constant: the structure is kept exactly.
    assert structure_error(0.5 * img + 0.35, 0.5 * img + 0.25) < 1e-12
    # A horizontal ramp of slope s against a flat image: |D_x| = s everywhere, D_y = 0 -> s / 2.
    ramp = np.repeat(np.repeat((0.05 * np.arange(9))[None, :, None], 8, axis=0), 3, axis=2)
    assert structure_error(ramp, np.full_like(ramp, 0.3)) == pytest.approx(0.05 / 2, rel=1e-12)
    # Brute force over every pixel step and channel.
    other = rng.random((8, 9, 3))
    gx = [abs((img[i, j + 1, c] - img[i, j, c]) - (other[i, j + 1, c] - other[i, j, c]))
          for i in range(8) for j in range(8) for c in range(3)]
    gy = [abs((img[i + 1, j, c] - img[i, j, c]) - (other[i + 1, j, c] - other[i, j, c]))
          for i in range(7) for j in range(9) for c in range(3)]
    assert structure_error(img, other) == pytest.approx((np.mean(gx) + np.mean(gy)) / 2, rel=1e-12)


def test_structure_error_bad_input():
    from photostyle_lib.metrics import structure_error

    with pytest.raises(PhotostyleError, match="resize"):
        structure_error(np.zeros((8, 9, 3)), np.zeros((8, 8, 3)))
    with pytest.raises(PhotostyleError, match="2x2"):
        structure_error(np.zeros((1, 9, 3)), np.zeros((1, 9, 3)))


# --------------------------------------------------------------------------- the judge (HED's network)

from conftest import needs_hed  # noqa: E402


def _brute_relative_gram(fo, fs, mo, ms):
    """||G_o - G_s||_F / ||G_s||_F per label with G = sum_p m(p)^2 f(p) f(p)^T / (C sum_p m(p)^2), in numpy."""
    out = []
    for k in range(mo.shape[0]):
        def gram(f, m):
            c = f.shape[0]
            x = f.reshape(c, -1) * m[k].reshape(1, -1)
            return x @ x.T / (c * (m[k] ** 2).sum())
        go, gs = gram(fo, mo), gram(fs, ms)
        out.append(np.linalg.norm(go - gs) / np.linalg.norm(gs))
    return np.array(out)


def test_judge_gram_distance_equals_brute_force_and_vanishes_on_the_style():
    from photostyle_lib.features.vgg import layer_size
    from photostyle_lib.semantic.masks import resize_masks

    net = VGGFeatures("random", metrics.GRAM_LAYERS, seed=1).double()
    judge = metrics.Judge(net, None, "test")
    rng = np.random.default_rng(4)
    out, sty = rng.random((32, 40, 3)), rng.random((24, 24, 3))
    mo, ms = torch.zeros(2, 32, 40), torch.zeros(2, 24, 24)
    mo[0, :12], mo[1, 12:] = 1, 1
    ms[0, :, :10], ms[1, :, 10:] = 1, 1
    got = metrics.judge_gram_distance(out, sty, mo, ms, judge=judge)
    with torch.no_grad():
        fo = net(torch.from_numpy(out.transpose(2, 0, 1)).unsqueeze(0))
        fs = net(torch.from_numpy(sty.transpose(2, 0, 1)).unsqueeze(0))
    d = np.mean([_brute_relative_gram(fo[n][0].numpy(), fs[n][0].numpy(),
                                      resize_masks(mo, layer_size(n, 32, 40), "avg").double().numpy(),
                                      resize_masks(ms, layer_size(n, 24, 24), "avg").double().numpy())
                 for n in metrics.GRAM_LAYERS], axis=0)
    area = np.array([12 * 40, 20 * 40])
    assert got == pytest.approx(float((d * area).sum() / area.sum()), rel=1e-6)  # float32 images inside
    assert metrics.judge_gram_distance(sty, sty, ms, ms, judge=judge) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(metrics.judge_gram_distance(out, sty, mo, ms, judge=metrics.Judge(None, None, "skipped")))


@needs_hed
def test_edge_ssim_is_one_on_the_content_and_drops_when_edges_are_lost():
    judge = metrics.load_judge("hed-vgg16")
    assert judge.available and "HED" in judge.note
    y, x = np.mgrid[0:64, 0:80] / 80.0
    content = np.stack([0.2 + 0.6 * (x > 0.5), 0.3 + 0.4 * (y > 0.4), 0.5 + 0 * x], -1)
    assert metrics.edge_ssim(content, content, judge=judge) == pytest.approx(1.0, abs=1e-9)
    recoloured = content[..., ::-1].copy()  # the same edges in other colours: still high
    blurred = gaussian(content, sigma=4, channel_axis=-1)
    s_re, s_blur = (metrics.edge_ssim(im, content, judge=judge) for im in (recoloured, blurred))
    assert s_blur < s_re and s_blur < 0.9
    with pytest.raises(PhotostyleError, match="differ in size"):
        metrics.edge_ssim(content[:32], content, judge=judge)
    row = metrics.image_metrics(blurred, content, content, judge=judge)
    assert row["edge_ssim"] == pytest.approx(s_blur) and row["judge_gram"] >= 0
    assert np.isnan(metrics.image_metrics(blurred, content, content)["edge_ssim"])
    with pytest.raises(PhotostyleError, match="hed-vgg16"):
        metrics.load_judge("imagenet")


def test_mask_inputs_are_checked_and_aligned_to_the_images():
    from photostyle_lib.metrics.inputs import aligned_masks, image_tensor, mask_stack

    ones = np.ones((2, 4, 6), dtype=np.float32)
    assert mask_stack("m", ones).dtype == torch.float32 and mask_stack("m", ones).shape == (2, 4, 6)
    with pytest.raises(PhotostyleError, match=r"in \[0, 1\]"):
        mask_stack("m", ones * 2)
    with pytest.raises(PhotostyleError, match=r"\(C, H, W\)"):
        mask_stack("m", ones[0])
    assert aligned_masks(None, None, (4, 6), (8, 12)) is None
    with pytest.raises(PhotostyleError, match="give both"):
        aligned_masks(ones, None, (4, 6), (8, 12))
    cm, sm = aligned_masks(ones, ones, (2, 3), (8, 12))           # each stack at its image's size
    assert cm.shape == (2, 2, 3) and sm.shape == (2, 8, 12) and torch.all(cm == 1) and torch.all(sm == 1)
    img = np.random.default_rng(0).random((4, 6, 3))
    t = image_tensor(img, torch.device("cpu"))
    assert t.shape == (1, 3, 4, 6) and t.dtype == torch.float32
    assert torch.equal(t[0, 1], torch.from_numpy(img[..., 1].astype(np.float32)))


def test_the_package_re_exports_every_measure():
    """``photostyle_lib.metrics`` is the one import callers need: its ``__all__`` covers each module's public names."""
    import importlib

    for name in ("photorealism", "structure", "colour_distance", "gram", "judge", "boundaries", "summary"):
        module = importlib.import_module(f"photostyle_lib.metrics.{name}")
        public = [n for n, v in vars(module).items() if not n.startswith("_") and getattr(v, "__module__", None)
                  == module.__name__ and n not in ("features_and_masks",)]
        assert public and all(getattr(metrics, n) is getattr(module, n) for n in public), name
        assert set(public) <= set(metrics.__all__), name
