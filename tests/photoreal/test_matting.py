"""Tests for photostyle_lib.photoreal.matting: the matting Laplacian against its definition,
its invariants, the photorealism loss (eq. 4) and its gradient (eq. 5), the cache."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import torch

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.photoreal.matting import (
    cached_matting_laplacian,
    clear_laplacian_cache,
    laplacian_cache_key,
    laplacian_energy,
    laplacian_to_torch,
    matting_laplacian,
    photorealism_loss,
)


def dense_laplacian(image: np.ndarray, eps: float, radius: int) -> np.ndarray:
    """Levin et al.'s Laplacian straight from the definition, one window at a time."""
    h, w, _ = image.shape
    lap = np.zeros((h * w, h * w))
    size = (2 * radius + 1) ** 2
    for cy in range(radius, h - radius):
        for cx in range(radius, w - radius):
            ys, xs = np.mgrid[cy - radius:cy + radius + 1, cx - radius:cx + radius + 1]
            idx = (ys * w + xs).ravel()
            colours = image[ys.ravel(), xs.ravel()]                 # (|w|, 3)
            mu = colours.mean(axis=0)
            sigma = (colours - mu).T @ (colours - mu) / size
            inv = np.linalg.inv(sigma + eps / size * np.eye(3))
            for a, i in enumerate(idx):
                for b, j in enumerate(idx):
                    q = (colours[a] - mu) @ inv @ (colours[b] - mu)
                    lap[i, j] += (1.0 if i == j else 0.0) - (1.0 + q) / size
    return lap


def rel_diff(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture
def flat_patch_image(tiny_image) -> np.ndarray:
    """tiny_image with a perfectly flat 4x4 patch, where only eps keeps Sigma invertible."""
    img = tiny_image.copy()
    img[1:5, 2:6] = [0.3, 0.5, 0.7]
    return img


@pytest.mark.parametrize("radius, shape", [(1, (7, 9)), (1, (12, 10)), (2, (8, 7)), (2, (5, 6))])
def test_equals_dense_definition(radius, shape):
    rng = np.random.default_rng(radius * 100 + shape[0])
    img = rng.random((*shape, 3))
    lap = matting_laplacian(img, eps=1e-7, radius=radius)
    assert isinstance(lap, scipy.sparse.csr_matrix)
    assert lap.shape == (shape[0] * shape[1],) * 2
    assert rel_diff(lap.toarray(), dense_laplacian(img, 1e-7, radius)) < 1e-8


def test_equals_dense_definition_with_flat_patch_and_large_eps(flat_patch_image):
    for eps in (1e-7, 1e-2):
        lap = matting_laplacian(flat_patch_image, eps=eps)
        assert rel_diff(lap.toarray(), dense_laplacian(flat_patch_image, eps, 1)) < 1e-8


def test_sparsity_pattern_is_the_pixel_pairs_within_2r(tiny_image):
    h, w, _ = tiny_image.shape
    lap = matting_laplacian(tiny_image, radius=1).tocoo()
    yi, xi = np.divmod(lap.row, w)
    yj, xj = np.divmod(lap.col, w)
    assert np.all(np.abs(yi - yj) <= 2) and np.all(np.abs(xi - xj) <= 2)
    # every in-bounds pair within 2 px in both axes shares a window, so all are stored
    expected = sum(min(h, y + 3) - max(0, y - 2) for y in range(h)) * sum(min(w, x + 3) - max(0, x - 2) for x in range(w))
    assert lap.nnz == expected
    assert matting_laplacian(tiny_image).has_sorted_indices


def test_symmetric_zero_row_sums_and_psd(tiny_image, flat_patch_image):
    for img in (tiny_image, flat_patch_image):
        lap = matting_laplacian(img)
        dense = lap.toarray()
        scale = np.abs(dense).max()
        assert np.abs(dense - dense.T).max() <= 1e-12 * scale
        assert np.abs(dense.sum(axis=1)).max() <= 1e-10 * scale
        eig = np.linalg.eigvalsh(dense)
        assert eig.min() >= -1e-8
        assert eig.max() > 1.0       # not the zero matrix


def test_matches_pymatting_when_installed(flat_patch_image):
    pymatting = pytest.importorskip("pymatting")
    rng = np.random.default_rng(3)
    for img in (rng.random((16, 21, 3)), flat_patch_image):
        for radius in (1, 2):
            ours = matting_laplacian(img, eps=1e-7, radius=radius)
            theirs = pymatting.cf_laplacian(img, epsilon=1e-7, radius=radius)
            assert rel_diff(ours.toarray(), theirs.toarray()) < 1e-8


@pytest.mark.parametrize("shape, radius", [((3, 3), 1), ((4, 7), 1), ((13, 11), 1), ((9, 10), 2), ((5, 5), 2),
                                           ((12, 14), 3)])
def test_kernel_equals_numpy_reference(shape, radius):
    from photostyle_lib.photoreal.image_kernels import AVAILABLE
    from photostyle_lib.photoreal.matting import _laplacian_reference

    if not AVAILABLE:
        pytest.skip("numba is not installed: matting_laplacian is the numpy reference")
    img = np.random.default_rng(sum(shape) + radius).random((*shape, 3))
    img[: shape[0] // 2, : shape[1] // 2] = 0.4     # a flat corner: only eps keeps Sigma invertible there
    for eps in (1e-7, 1e-3):
        ours = matting_laplacian(img, eps=eps, radius=radius)
        ref = _laplacian_reference(img, eps, radius)
        assert ours.indices.dtype == ref.indices.dtype == np.int32
        assert np.array_equal(ours.indptr, ref.indptr) and np.array_equal(ours.indices, ref.indices)
        assert ours.has_canonical_format
        assert np.abs(ours.data - ref.data).max() <= 1e-12 * np.abs(ref.data).max()


def test_affine_recolouring_has_near_zero_energy_and_noise_does_not(tiny_image):
    lap = matting_laplacian(tiny_image)
    gain = np.array([[0.5, 0.2, -0.1], [0.1, 0.4, 0.2], [-0.2, 0.1, 0.6]])
    recoloured = tiny_image @ gain.T + np.array([0.1, 0.2, 0.05])
    noise = np.random.default_rng(1).random(tiny_image.shape)
    e_affine = laplacian_energy(recoloured, lap)
    e_noise = laplacian_energy(noise, lap)
    assert e_noise > 1.0
    assert -1e-12 <= e_affine < 1e-6 * e_noise
    # the same through the content image (cached build)
    clear_laplacian_cache()
    assert laplacian_energy(noise, tiny_image) == pytest.approx(e_noise, rel=1e-12)


def test_laplacian_energy_equals_quadratic_form(tiny_image):
    lap = matting_laplacian(tiny_image)
    out = np.random.default_rng(2).random(tiny_image.shape)
    dense = lap.toarray()
    expected = sum(out[..., c].ravel() @ dense @ out[..., c].ravel() for c in range(3))
    assert laplacian_energy(out, lap) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_photorealism_loss_value_equals_dense(tiny_image, dtype, rtol):
    lap = matting_laplacian(tiny_image)
    out = np.random.default_rng(4).random(tiny_image.shape)
    image = torch.tensor(out.transpose(2, 0, 1)[None], dtype=dtype)
    lap_t = laplacian_to_torch(lap, "cpu", dtype)
    assert lap_t.layout == torch.sparse_csr and lap_t.dtype == dtype
    value = photorealism_loss(image, lap_t)
    assert value.dtype == dtype and value.ndim == 0
    dense = lap.toarray()
    expected = sum(out[..., c].ravel() @ dense @ out[..., c].ravel() for c in range(3))
    assert float(value) == pytest.approx(expected, rel=rtol)


def test_photorealism_gradient_equals_autograd_of_dense(tiny_image):
    lap = matting_laplacian(tiny_image)
    h, w, _ = tiny_image.shape
    start = torch.rand(1, 3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x1 = start.clone().requires_grad_(True)
    photorealism_loss(x1, laplacian_to_torch(lap, dtype=torch.float64)).backward()
    x2 = start.clone().requires_grad_(True)
    dense = torch.tensor(lap.toarray())
    v = x2[0].reshape(3, h * w)
    (v @ dense * v).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, rtol=1e-10, atol=1e-12)
    assert x1.grad.abs().max() > 0


def test_photorealism_loss_gradcheck():
    rng = np.random.default_rng(5)
    img = rng.random((5, 6, 3))
    lap_t = laplacian_to_torch(matting_laplacian(img, eps=1e-4), dtype=torch.float64)
    x = torch.rand(1, 3, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: photorealism_loss(t, lap_t), (x,), eps=1e-6, atol=1e-6)


def test_photorealism_loss_with_weight_in_a_larger_graph(tiny_image):
    """The backward scales eq. (5) by the incoming gradient (the loss weight)."""
    lap = matting_laplacian(tiny_image)
    lap_t = laplacian_to_torch(lap, dtype=torch.float64)
    h, w, _ = tiny_image.shape
    x = torch.rand(1, 3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(2), requires_grad=True)
    (3.0 * photorealism_loss(x, lap_t)).backward()
    v = x.detach()[0].reshape(3, -1).numpy()
    expected = 6.0 * (lap @ v.T).T.reshape(1, 3, h, w)
    assert np.allclose(x.grad.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_cache_returns_same_object_and_is_keyed_by_params(tiny_image):
    clear_laplacian_cache()
    a = cached_matting_laplacian(tiny_image)
    b = cached_matting_laplacian(tiny_image.copy())
    assert a is b
    c = cached_matting_laplacian(tiny_image, eps=1e-5)
    assert c is not a
    assert cached_matting_laplacian(tiny_image, radius=2) is not a
    other = tiny_image.copy()
    other[0, 0, 0] = 1.0 - other[0, 0, 0]
    assert cached_matting_laplacian(other) is not a
    assert rel_diff(a.toarray(), matting_laplacian(tiny_image).toarray()) == 0.0
    assert not a.data.flags.writeable      # shared between callers, so read-only
    key = laplacian_cache_key(tiny_image)
    assert key[1:] == (tiny_image.shape, 1e-7, 1) and len(key[0]) == 40
    clear_laplacian_cache()
    assert cached_matting_laplacian(tiny_image) is not a


def test_cache_evicts_least_recently_used(tiny_image, monkeypatch):
    import photostyle_lib.photoreal.matting as matting
    monkeypatch.setattr(matting, "LAPLACIAN_CACHE_SIZE", 2)
    clear_laplacian_cache()
    first = cached_matting_laplacian(tiny_image, eps=1e-3)
    cached_matting_laplacian(tiny_image, eps=1e-4)
    assert cached_matting_laplacian(tiny_image, eps=1e-3) is first     # refreshes eps=1e-3
    cached_matting_laplacian(tiny_image, eps=1e-5)                      # evicts eps=1e-4
    assert cached_matting_laplacian(tiny_image, eps=1e-3) is first
    clear_laplacian_cache()


def test_cached_laplacian_converts_to_torch(tiny_image):
    clear_laplacian_cache()
    lap = cached_matting_laplacian(tiny_image)
    lap_t = laplacian_to_torch(lap, dtype=torch.float64)
    v = np.random.default_rng(6).random((lap.shape[0], 3))
    assert np.allclose((lap_t @ torch.tensor(v)).numpy(), lap @ v, rtol=1e-12, atol=1e-12)
    clear_laplacian_cache()


@pytest.mark.parametrize("kwargs, match", [
    ({"image": np.zeros((6, 6))}, "shape"),
    ({"image": np.zeros((6, 6, 4))}, "shape"),
    ({"image": np.full((6, 6, 3), 255.0)}, r"\[0, 1\]"),
    ({"image": np.full((6, 6, 3), np.nan)}, "NaN"),
    ({"image": np.zeros((6, 6, 3)), "eps": 0.0}, "eps"),
    ({"image": np.zeros((6, 6, 3)), "eps": -1.0}, "eps"),
    ({"image": np.zeros((6, 6, 3)), "radius": 0}, "radius"),
    ({"image": np.zeros((6, 6, 3)), "radius": 1.5}, "radius"),
    ({"image": np.zeros((2, 6, 3))}, "at least 3x3"),
    ({"image": np.zeros((6, 6, 3)), "radius": 3}, "at least 7x7"),
])
def test_matting_laplacian_bad_input(kwargs, match):
    with pytest.raises(PhotostyleError, match=match):
        matting_laplacian(**kwargs)
    with pytest.raises(PhotostyleError, match=match):
        cached_matting_laplacian(**kwargs)


def test_photorealism_loss_bad_input(tiny_image):
    lap = matting_laplacian(tiny_image)
    h, w, _ = tiny_image.shape
    lap32 = laplacian_to_torch(lap)
    good = torch.rand(1, 3, h, w)
    assert float(photorealism_loss(good, lap32)) > 0
    with pytest.raises(PhotostyleError, match="laplacian_to_torch"):
        photorealism_loss(good, lap)                                   # scipy matrix, not converted
    with pytest.raises(PhotostyleError, match="laplacian_to_torch"):
        photorealism_loss(good, torch.tensor(lap.toarray(), dtype=torch.float32))
    with pytest.raises(PhotostyleError, match="array_to_tensor"):
        photorealism_loss(np.zeros((1, 3, h, w)), lap32)
    with pytest.raises(PhotostyleError, match=r"\(1, 3, H, W\)"):
        photorealism_loss(good[0], lap32)
    with pytest.raises(PhotostyleError, match="output's size"):
        photorealism_loss(torch.rand(1, 3, h, w + 1), lap32)
    with pytest.raises(PhotostyleError, match="dtype="):
        photorealism_loss(good.double(), lap32)
    with pytest.raises(PhotostyleError, match="float32 or float64"):
        photorealism_loss(good.half(), lap32)
    with pytest.raises(PhotostyleError, match="scipy sparse"):
        laplacian_to_torch(lap.toarray())
    with pytest.raises(PhotostyleError, match="square"):
        laplacian_to_torch(scipy.sparse.csr_matrix((3, 4)))
    with pytest.raises(PhotostyleError, match="dtype"):
        laplacian_to_torch(lap, dtype=torch.int64)
    with pytest.raises(PhotostyleError, match="output's size"):
        laplacian_energy(np.zeros((h, w + 1, 3)), lap)
    with pytest.raises(PhotostyleError, match="resize"):
        laplacian_energy(np.zeros((h, w + 1, 3)), tiny_image)
    with pytest.raises(PhotostyleError, match="NaN"):
        laplacian_energy(np.full((h, w, 3), np.nan), lap)


def test_without_numba_the_laplacian_is_the_numpy_reference(tiny_image, monkeypatch):
    from photostyle_lib.photoreal import image_kernels

    monkeypatch.setattr(image_kernels, "AVAILABLE", False)
    lap = matting_laplacian(tiny_image)
    assert rel_diff(lap.toarray(), dense_laplacian(tiny_image, 1e-7, 1)) < 1e-8 and lap.has_sorted_indices
