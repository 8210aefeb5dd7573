"""mask_errors: the error model's stated properties, the soft masks' invariants, the theta_s cut."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from photostyle_lib.semantic import mask_errors as me
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.semantic.cut import semantic_masks


def _halves(h=24, w=30, split=12, unlabelled_cols=0):
    """Label 0 above row ``split``, label 1 below, a third label (2) absent; optional unlabelled columns."""
    lab = np.zeros((h, w), np.int64)
    lab[split:] = 1
    lab[:, :unlabelled_cols] = -1
    return lab


def _three_regions(seed=0):
    lab = np.zeros((32, 40), np.int64)
    lab[16:] = 1
    yy, xx = np.mgrid[0:32, 0:40]
    lab[(yy - 20) ** 2 + (xx - 28) ** 2 < 36] = 2
    lab[:, :3] = -1
    return lab


def _is_one_hot(m):
    return set(np.unique(m)) <= {0.0, 1.0} and (m.sum(0) <= 1).all()


# --------------------------------------------------------------------------- boundary shift


@pytest.mark.parametrize("k", [1, 3, 5, -1, -4])
def test_boundary_shift_moves_a_straight_boundary_by_k(k):
    lab = _halves(unlabelled_cols=2)
    out = me.label_map(me.boundary_shift(me.one_hot(lab, 3), k, label=0))
    rows_of_0 = (out == 0)[:, 5:].sum(0)
    assert (rows_of_0 == 12 + k).all()
    assert (out[:, :2] == -1).all(), "unlabelled pixels stay unlabelled"
    assert np.array_equal(np.unique(out[:, 2:]), [0, 1])


def test_boundary_shift_dilation_is_the_euclidean_ball():
    lab = np.ones((21, 21), np.int64)
    lab[10, 10] = 0
    out = me.label_map(me.boundary_shift(me.one_hot(lab, 2), 4, label=0))
    yy, xx = np.mgrid[0:21, 0:21]
    assert np.array_equal(out == 0, (yy - 10) ** 2 + (xx - 10) ** 2 <= 16)


def test_boundary_shift_erosion_gives_pixels_to_the_nearest_neighbour():
    lab = np.zeros((20, 30), np.int64)
    lab[:, :10], lab[:, 20:] = 1, 2
    out = me.label_map(me.boundary_shift(me.one_hot(lab, 3), -3, label=0))
    assert np.array_equal(np.flatnonzero((out == 0)[0]), np.arange(13, 17))
    assert (out[:, 10:13] == 1).all() and (out[:, 17:20] == 2).all()


def test_zero_shift_is_the_identity_and_seeds_reproduce():
    m = me.one_hot(_three_regions(), 3)
    assert np.array_equal(me.boundary_shift(m, 0), m)
    a, b = me.boundary_shift(m, 3, seed=5), me.boundary_shift(m, 3, seed=5)
    assert np.array_equal(a, b) and _is_one_hot(a)
    differ = [not np.array_equal(me.boundary_shift(m, 3, seed=s), a) for s in range(10)]
    assert any(differ), "different seeds choose different labels"


# --------------------------------------------------------------------------- region swap


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 1.0])
def test_region_swap_changes_the_stated_fraction_as_one_connected_part(fraction):
    lab = _three_regions()
    area = int((lab == 1).sum())
    out = me.label_map(me.region_swap(me.one_hot(lab, 3), fraction, label=1, to=0, seed=3))
    changed = out != lab
    assert changed.sum() == round(fraction * area)
    assert (lab[changed] == 1).all() and (out[changed] == 0).all()
    _, n = ndimage.label(changed)  # 4-connected
    assert n == 1
    assert (out[lab == -1] == -1).all()


def test_region_swap_is_seeded_and_one_hot():
    m = me.one_hot(_three_regions(), 3)
    a = me.region_swap(m, 0.4, seed=11)
    assert np.array_equal(a, me.region_swap(m, 0.4, seed=11)) and _is_one_hot(a)
    assert not all(np.array_equal(a, me.region_swap(m, 0.4, seed=s)) for s in range(5))


def test_region_swap_refuses_its_own_label():
    with pytest.raises(PhotostyleError, match="own label"):
        me.region_swap(me.one_hot(_three_regions(), 3), 0.5, label=1, to=1)


# --------------------------------------------------------------------------- speckle


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.2, 0.5])
def test_speckle_relabels_the_stated_fraction_to_other_present_labels(fraction):
    lab = _three_regions()
    m = me.one_hot(np.where(lab == 2, 1, lab), 3)  # label 2 absent: never drawn
    out = me.label_map(me.speckle(m, fraction, seed=2))
    before = me.label_map(m)
    changed = out != before
    labelled = int((before >= 0).sum())
    assert changed.sum() == round(fraction * labelled)
    assert set(np.unique(out[changed])) <= {0, 1} and (out[before == -1] == -1).all()
    assert _is_one_hot(me.one_hot(out, 3))


def test_speckle_draws_wrong_labels_uniformly():
    lab = np.zeros((60, 60), np.int64)
    lab[:, 20:40], lab[:, 40:] = 1, 2
    out = me.label_map(me.speckle(me.one_hot(lab, 3), 0.6, seed=0))
    new = out[(lab == 0) & (out != 0)]
    share = (new == 1).mean()
    assert abs(share - 0.5) < 4 * np.sqrt(0.25 / new.size)


def test_apply_error_and_check_error_spec():
    m = me.one_hot(_three_regions(), 3)
    assert me.check_error_spec("swap", 0) == ("none", 0.0)
    assert me.check_error_spec("boundary", 4) == ("boundary", 4.0)
    assert np.array_equal(me.apply_error(m, "none", 0), m)
    assert np.array_equal(me.apply_error(m, "speckle", 0.1, seed=1), me.speckle(m, 0.1, seed=1))
    with pytest.raises(PhotostyleError, match="integer"):
        me.check_error_spec("boundary", 2.5)
    with pytest.raises(PhotostyleError, match="fraction"):
        me.check_error_spec("swap", 1.5)
    with pytest.raises(PhotostyleError, match="one-hot"):
        me.label_map(np.full((2, 4, 4), 0.5))


# --------------------------------------------------------------------------- soft masks


def test_signed_distances_closed_form():
    d = me.signed_distances(_halves(split=12), 3)
    assert np.allclose(d[0][:12, 7], np.arange(11, -1, -1) + 0.5)   # inside label 0: + (m - 1/2)
    assert np.allclose(d[0][12:, 7], -(np.arange(12) + 0.5))         # outside: - (m - 1/2)
    assert np.isneginf(d[2]).all()


def test_soft_masks_follow_the_sigmoid_at_a_straight_boundary():
    t = 3.0
    p = me.soft_from_hard(me.one_hot(_halves(split=12), 3), t)
    s = np.concatenate([np.arange(11, -1, -1) + 0.5, -(np.arange(12) + 0.5)])  # signed distance of label 0
    assert np.allclose(p[0][:, 9], 1 / (1 + np.exp(-2 * s / t)), atol=1e-6)
    assert (p[2] == 0).all()


def test_soft_masks_sum_to_one_on_labelled_pixels_and_tend_to_hard():
    lab = _three_regions()
    m = me.one_hot(lab, 3)
    for t in (0.5, 2.0, 10.0):
        p = me.soft_from_hard(m, t)
        assert p.min() >= 0 and p.max() <= 1
        assert np.allclose(p.sum(0)[lab >= 0], 1, atol=1e-6) and (p.sum(0)[lab < 0] == 0).all()
    assert np.allclose(me.soft_from_hard(m, 1e-3), m, atol=1e-6)


def test_cut_soft_masks_sum_to_at_most_one_and_tend_to_hard():
    c, s = me.one_hot(_three_regions(), 3), me.one_hot(_halves(20, 20, 8), 3)
    names = ("sky", "ground", "tree")
    soft = me.soft_masks_from_hard(c, s, names, temperature=4.0, theta_s=0.2)
    assert soft.kind == "soft" and soft.labels == ("sky", "ground")  # tree absent from the style
    for stack in (soft.content, soft.style):
        assert float(stack.min()) >= 0 and float(stack.sum(0).max()) <= 1 + 1e-6
        assert ((stack == 0) | (stack >= 0.2 - 1e-6)).all(), "values below theta_s are cut"
    cold = me.soft_masks_from_hard(c, s, names, temperature=1e-3, theta_s=0.2)
    # content pixels of "tree" (absent from the style) and the unlabelled ones get no label, as gold masks'
    want = torch.from_numpy(c[:2])
    assert torch.allclose(cold.content, want, atol=1e-5)
    assert torch.allclose(cold.style, torch.from_numpy(s[:2]), atol=1e-5)


def test_theta_s_cut_is_the_segmenter_paths():
    """Same probabilities through segmentation.semantic_masks give the same masks (plus the unlabelled channel)."""
    c, s = me.one_hot(_three_regions(), 3), me.one_hot(_halves(20, 20, 8), 3)
    names = ("sky", "ground", "tree")
    ours = me.soft_masks_from_hard(c, s, names, temperature=5.0, theta_s=0.3)
    cp = np.concatenate([me.soft_from_hard(c, 5.0), (me.label_map(c) < 0)[None].astype(np.float32)])
    sp = np.concatenate([me.soft_from_hard(s, 5.0), (me.label_map(s) < 0)[None].astype(np.float32)])
    ref = semantic_masks(torch.from_numpy(cp), torch.from_numpy(sp), mode="soft", theta_s=0.3,
                         soft_pipeline="authors", merge=(), label_names=names + (me.UNLABELLED,))
    idx = [ref.labels.index(n) for n in ours.labels]
    assert torch.equal(ours.content, ref.content[idx]) and torch.equal(ours.style, ref.style[idx])
    # and by hand: the style is the probability where >= theta_s (the authors' pipeline, style not renormalised)
    sty = me.soft_from_hard(s, 5.0)[:2]
    assert np.allclose(ours.style.numpy(), np.where(sty >= 0.3, sty, 0), atol=1e-7)


def test_hard_at_size_and_masks_with_errors(two_label_masks):
    small = me.hard_at_size(two_label_masks.content, (20, 32))
    assert _is_one_hot(small) and (small[0, :10] == 1).all() and (small[1, 10:] == 1).all()
    params = {"kind": "boundary", "severity": 3, "seed": 0, "target": "content", "render": "hard"}
    hard = me.masks_with_errors(two_label_masks, (40, 64), (48, 48), params, theta_s=0.2)
    assert hard.kind == "hard" and torch.equal(hard.style, two_label_masks.style)
    assert abs(int(hard.content[0].sum()) - 20 * 64) in (3 * 64,)
    soft = me.masks_with_errors(two_label_masks, (40, 64), (48, 48), {**params, "render": "soft", "temperature": 2},
                                theta_s=0.2)
    assert soft.kind == "soft" and float(soft.content.sum(0).max()) <= 1 + 1e-6
    with pytest.raises(PhotostyleError, match="unknown mask-error"):
        me.masks_with_errors(two_label_masks, (40, 64), (48, 48), {"kind": "swap", "bad": 1}, theta_s=0.2)
