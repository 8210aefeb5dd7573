"""Luan et al.'s local affine smoothing: brute force from the definition, closed forms, torch == numpy, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage
import torch

from photostyle_lib.photoreal import local_affine as la
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.photoreal.local_affine import smooth_local_affine, smooth_local_affine_torch


def brute_force(output, content, radius, edge, patch_radius, epsilon):
    """Eqs. (1)-(4) pixel by pixel, the fit solved as the uncentred 4x4 normal equations (as the CUDA code)."""
    h, w, _ = content.shape
    models = np.zeros((h, w, 3, 4))
    for ky in range(h):
        for kx in range(w):
            mtm = np.diag([epsilon, epsilon, epsilon, 0.0])
            mts = np.zeros((4, 3))
            for qy in range(max(0, ky - patch_radius), min(h, ky + patch_radius + 1)):
                for qx in range(max(0, kx - patch_radius), min(w, kx + patch_radius + 1)):
                    m = np.append(content[qy, qx], 1.0)
                    mtm += np.outer(m, m)
                    mts += np.outer(m, output[qy, qx])
            models[ky, kx] = np.linalg.solve(mtm, mts).T                 # rows: output channels
    sigma_s = radius / 3.0
    res = np.zeros((h, w, 3))
    for py in range(h):
        for px in range(w):
            num, den = np.zeros((3, 4)), 0.0
            for ky in range(max(0, py - radius), min(h, py + radius + 1)):
                for kx in range(max(0, px - radius), min(w, px + radius + 1)):
                    d = content[ky, kx] - content[py, px]
                    v1 = math.exp(-((ky - py) ** 2 + (kx - px) ** 2) / (2 * sigma_s ** 2))
                    v2 = math.exp(-(d @ d / 3) / (2 * edge ** 2))
                    num += v1 * v2 * models[ky, kx]
                    den += v1 * v2
            res[py, px] = (num / den) @ np.append(content[py, px], 1.0)
    return res


def to_torch(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).unsqueeze(0)


def from_torch(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).numpy()


@pytest.fixture
def images(rng):
    """(content, output): (9, 11, 3) float64 in [0, 1]; content with two colour regions and noise."""
    h, w = 9, 11
    y, x = np.mgrid[0:h, 0:w]
    base = np.where((x > 5)[:, :, None], [0.7, 0.3, 0.2], [0.2, 0.4, 0.8])
    content = np.clip(base + 0.08 * rng.standard_normal((h, w, 3)), 0, 1)
    output = rng.random((h, w, 3))
    return content, output


@pytest.mark.parametrize("radius, edge, patch_radius, epsilon", [
    (1, 0.05, 1, 1e-3), (2, 0.3, 1, 1e-3), (2, 0.1, 2, 1e-2), (3, 1.0, 0, 1e-3), (15, 0.01, 1, 1e-3)])
def test_matches_brute_force_definition(images, radius, edge, patch_radius, epsilon):
    content, output = images
    ref = brute_force(output, content, radius, edge, patch_radius, epsilon)
    kw = dict(patch_radius=patch_radius, epsilon=epsilon, clip=False)
    got = smooth_local_affine(output, content, radius, edge, **kw)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-8)
    got_t = smooth_local_affine_torch(to_torch(output), to_torch(content), radius, edge, **kw)
    assert got_t.dtype == torch.float64 and got_t.shape == (1, 3, 9, 11)
    np.testing.assert_allclose(from_torch(got_t), ref, rtol=0, atol=1e-8)


def test_numba_kernel_equals_offset_loop(images):
    if not la._HAVE_NUMBA:
        pytest.skip("numba not installed")
    content, output = images
    models = la.fit_models_np(output, content, 1, 1e-3)
    np.testing.assert_allclose(la.bilateral_numba(models, content, 4, 4 / 3, 0.07),
                               la.bilateral_offsets_np(models, content, 4, 4 / 3, 0.07), rtol=0, atol=1e-12)


def test_constant_output_is_returned_exactly(images):
    content, _ = images
    output = np.broadcast_to([0.3, 0.6, 0.9], content.shape)
    res = smooth_local_affine(output, content, 3, 0.05, clip=False)
    np.testing.assert_allclose(res, output, rtol=0, atol=1e-12)


def test_constant_content_gives_gaussian_of_box_means(rng):
    """Flat guide: a_k = 0, b_k = window mean of O, and the range weights are all 1."""
    h, w, radius, r = 13, 17, 4, 1
    content = np.full((h, w, 3), 0.4)
    output = rng.random((h, w, 3))
    # box means over clipped windows, then the truncated Gaussian normalised over the clipped window
    ones = np.ones((h, w, 1))
    box = lambda a: scipy.ndimage.uniform_filter(a, size=(2 * r + 1, 2 * r + 1, 1), mode="constant")
    means = box(output) / box(ones)
    taps = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * (radius / 3) ** 2))
    gauss = lambda a: scipy.ndimage.correlate1d(scipy.ndimage.correlate1d(a, taps, 0, mode="constant"),
                                                taps, 1, mode="constant")
    expected = gauss(means) / gauss(ones)
    res = smooth_local_affine(output, content, radius, 0.01, patch_radius=r, clip=False)
    np.testing.assert_allclose(res, expected, rtol=0, atol=1e-10)


def _affine_case(rng, h=10, w=12):
    content = rng.random((h, w, 3))
    gain = np.array([[0.5, 0.2, -0.1], [0.1, 0.4, 0.1], [-0.2, 0.1, 0.6]])   # output channel x content channel
    offset = np.array([0.2, 0.1, 0.3])
    output = content @ gain.T + offset
    assert output.min() >= 0 and output.max() <= 1
    return content, output, gain


def test_global_affine_recolouring_keeps_only_the_ridge_bias(rng):
    """O = G I + g: Ohat_p - O_p = sum_k wbar_pk (a_k - G)^T (I_p - mu_k), a_k - G = -lam_k (Sigma_k + lam_k)^-1 G^T."""
    content, output, gain = _affine_case(rng)
    h, w, _ = content.shape
    radius, edge, r, eps = 3, 0.2, 1, 0.05
    bias = np.zeros((h, w, 3, 3))                                   # (a_k - G^T): content channel x output channel
    mu = np.zeros((h, w, 3))
    for ky in range(h):
        for kx in range(w):
            win = content[max(0, ky - r):ky + r + 1, max(0, kx - r):kx + r + 1].reshape(-1, 3)
            lam = eps / len(win)
            mu[ky, kx] = win.mean(0)
            cov = np.cov(win.T, bias=True)
            bias[ky, kx] = -lam * np.linalg.inv(cov + lam * np.eye(3)) @ gain.T
    expected = output.copy()
    for py in range(h):
        for px in range(w):
            ks = [(ky, kx) for ky in range(max(0, py - radius), min(h, py + radius + 1))
                  for kx in range(max(0, px - radius), min(w, px + radius + 1))]
            wts = np.array([math.exp(-((ky - py) ** 2 + (kx - px) ** 2) / (2 * (radius / 3) ** 2)
                                     - np.sum((content[ky, kx] - content[py, px]) ** 2) / (6 * edge ** 2))
                            for ky, kx in ks])
            terms = [(content[py, px] - mu[k]) @ bias[k] for k in ks]
            expected[py, px] += np.tensordot(wts / wts.sum(), terms, axes=1)
    res = smooth_local_affine(output, content, radius, edge, patch_radius=r, epsilon=eps, clip=False)
    np.testing.assert_allclose(res, expected, rtol=0, atol=1e-10)
    assert np.abs(res - output).max() > 1e-4                           # the bias is really there at this epsilon


def test_global_affine_recolouring_is_kept_as_epsilon_vanishes(rng):
    content, output, _ = _affine_case(rng)
    res = smooth_local_affine(output, content, 4, 0.05, epsilon=1e-12, clip=False)
    np.testing.assert_allclose(res, output, rtol=0, atol=1e-7)


def test_range_and_clipping():
    gen = np.random.default_rng(0)                                     # white-noise content and output
    content, output = gen.random((9, 11, 3)), gen.random((9, 11, 3))
    raw = smooth_local_affine(output, content, 2, 0.3, clip=False)
    assert raw.min() < 0 or raw.max() > 1                              # the affine reconstruction can overshoot
    clipped = smooth_local_affine(output, content, 2, 0.3)
    assert clipped.min() >= 0 and clipped.max() <= 1
    np.testing.assert_array_equal(clipped, np.clip(raw, 0, 1))


def test_torch_matches_numpy_at_default_parameters(rng):
    content, output = rng.random((20, 24, 3)), rng.random((20, 24, 3))
    ref = smooth_local_affine(output, content)
    got = smooth_local_affine_torch(to_torch(output), to_torch(content))
    np.testing.assert_allclose(from_torch(got), ref, rtol=0, atol=1e-10)
    got32 = smooth_local_affine_torch(to_torch(output).float(), to_torch(content).float())
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(from_torch(got32), ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("output_shape, content_shape, kwargs, words", [
    ((9, 11), (9, 11, 3), {}, "output must be an array of shape (H, W, 3)"),
    ((9, 11, 4), (9, 11, 3), {}, "output must be an array of shape (H, W, 3)"),
    ((9, 11, 3), (8, 11, 3), {}, "resize one"),
    ((9, 11, 3), (9, 11, 3), {"radius": 0}, "radius must be an integer >= 1"),
    ((9, 11, 3), (9, 11, 3), {"radius": 2.5}, "radius must be an integer"),
    ((9, 11, 3), (9, 11, 3), {"edge": 0.0}, "edge must be a finite number > 0"),
    ((9, 11, 3), (9, 11, 3), {"edge": -1}, "edge must be a finite number > 0"),
    ((9, 11, 3), (9, 11, 3), {"patch_radius": -1}, "patch_radius must be an integer >= 0"),
    ((9, 11, 3), (9, 11, 3), {"epsilon": 0}, "epsilon must be a finite number > 0"),
])
def test_bad_input_is_one_line_error(output_shape, content_shape, kwargs, words):
    output, content = np.full(output_shape, 0.5), np.full(content_shape, 0.5)
    with pytest.raises(PhotostyleError) as info:
        smooth_local_affine(output, content, **kwargs)
    msg = str(info.value)
    assert words in msg and "\n" not in msg
    if len(output_shape) == 3 and output_shape[2] == 3:
        with pytest.raises(PhotostyleError) as info_t:
            smooth_local_affine_torch(to_torch(output), to_torch(content), **kwargs)
        assert words in str(info_t.value) and "\n" not in str(info_t.value)


def test_values_outside_unit_range_are_refused(images):
    content, output = images
    with pytest.raises(PhotostyleError, match="divide 8-bit images by 255"):
        smooth_local_affine(output * 255, content)
    with pytest.raises(PhotostyleError, match="divide 8-bit images by 255"):
        smooth_local_affine_torch(to_torch(output), to_torch(content) * 255)


@pytest.mark.parametrize("bad, words", [
    (np.zeros((1, 3, 4, 4)), "must be a torch tensor"),
    (torch.zeros(3, 4, 4), "must have shape (1, 3, H, W)"),
    (torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "floating-point"),
])
def test_torch_bad_tensors(bad, words):
    with pytest.raises(PhotostyleError) as info:
        smooth_local_affine_torch(bad, torch.zeros(1, 3, 4, 4))
    assert words in str(info.value)
