"""Tests for photostyle_lib.photoreal.postprocess: the recursive filter against a per-pixel
reference, its edge-aware behaviour, eq. (9), and the screened Poisson solve."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.photoreal.postprocess import recursive_filter, refine, screened_poisson


def reference_recursive_filter(image, sigma_s, sigma_r, iterations, joint):
    """Gastal and Oliveira's recursive filter, one pixel at a time, as restated in ALGORITHMS.md."""
    h, w, _ = image.shape
    joint = joint if joint.ndim == 3 else joint[:, :, None]
    out = image.astype(np.float64).copy()
    dx = np.ones((h, w))
    dy = np.ones((h, w))
    for y in range(h):
        for x in range(w):
            if x > 0:
                dx[y, x] = 1 + sigma_s / sigma_r * np.abs(joint[y, x] - joint[y, x - 1]).sum()
            if y > 0:
                dy[y, x] = 1 + sigma_s / sigma_r * np.abs(joint[y, x] - joint[y - 1, x]).sum()
    for i in range(1, iterations + 1):
        sigma_h = sigma_s * math.sqrt(3) * 2 ** (iterations - i) / math.sqrt(4 ** iterations - 1)
        a = math.exp(-math.sqrt(2) / sigma_h)
        for y in range(h):
            for x in range(1, w):
                out[y, x] = out[y, x] + a ** dx[y, x] * (out[y, x - 1] - out[y, x])
            for x in range(w - 2, -1, -1):
                out[y, x] = out[y, x] + a ** dx[y, x + 1] * (out[y, x + 1] - out[y, x])
        for x in range(w):
            for y in range(1, h):
                out[y, x] = out[y, x] + a ** dy[y, x] * (out[y - 1, x] - out[y, x])
            for y in range(h - 2, -1, -1):
                out[y, x] = out[y, x] + a ** dy[y + 1, x] * (out[y + 1, x] - out[y, x])
    return out


def neumann_graph_laplacian(h: int, w: int) -> scipy.sparse.csr_matrix:
    """G = Dx^T Dx + Dy^T Dy with forward differences inside the image (row-major pixels)."""
    def diff(n):
        return scipy.sparse.diags([-np.ones(n - 1), np.ones(n - 1)], [0, 1], shape=(n - 1, n))
    dx = scipy.sparse.kron(scipy.sparse.identity(h), diff(w))
    dy = scipy.sparse.kron(diff(h), scipy.sparse.identity(w))
    return (dx.T @ dx + dy.T @ dy).tocsr()


@pytest.fixture
def edge_image() -> np.ndarray:
    """(20, 24, 3): 0.25 left of column 12, 0.75 right of it, plus seeded noise (std 0.04)."""
    rng = np.random.default_rng(11)
    img = np.full((20, 24, 3), 0.25)
    img[:, 12:] = 0.75
    return np.clip(img + 0.04 * rng.standard_normal(img.shape), 0, 1)


@pytest.mark.parametrize("iterations", [1, 3])
def test_equals_per_pixel_reference(tiny_image, iterations):
    rng = np.random.default_rng(12)
    image = rng.random(tiny_image.shape)
    for joint in (tiny_image, tiny_image.mean(axis=2), None):
        ours = recursive_filter(image, 5.0, 0.3, iterations, joint=joint)
        ref = reference_recursive_filter(image, 5.0, 0.3, iterations, image if joint is None else joint)
        assert np.allclose(ours, ref, rtol=0, atol=1e-12)
        assert np.abs(ours - image).max() > 1e-3      # it did filter


def test_paper_parameters_equal_reference(tiny_image):
    image = np.random.default_rng(13).random(tiny_image.shape)
    ours = recursive_filter(image, 60.0, 100 / 255, 3, joint=tiny_image)
    ref = reference_recursive_filter(image, 60.0, 100 / 255, 3, tiny_image)
    assert np.allclose(ours, ref, rtol=0, atol=1e-12)


def test_constant_image_unchanged(tiny_image):
    const = np.full((9, 13, 3), 0.37)
    assert np.allclose(recursive_filter(const, 60, 100 / 255), const, atol=1e-14)
    assert np.allclose(recursive_filter(const, 60, 100 / 255, joint=np.random.default_rng(0).random((9, 13))),
                       const, atol=1e-14)


def test_keeps_hard_edge_and_flattens_noise(edge_image):
    out = recursive_filter(edge_image, 60.0, 100 / 255, 3, joint=edge_image)
    left_in, right_in = edge_image[:, :12], edge_image[:, 12:]
    left, right = out[:, :12], out[:, 12:]
    # noise flattened on both sides ...
    assert left.std() < 0.3 * left_in.std()
    assert right.std() < 0.3 * right_in.std()
    # ... while the step survives right at the edge
    step_in = (edge_image[:, 12] - edge_image[:, 11]).mean()
    step_out = (out[:, 12] - out[:, 11]).mean()
    assert step_out > 0.9 * step_in
    # a plain smoothing (no range term) would blur the step
    blurred = recursive_filter(edge_image, 60.0, 1e6, 3, joint=edge_image)
    assert (blurred[:, 12] - blurred[:, 11]).mean() < 0.2 * step_in


def test_output_is_a_convex_combination(tiny_image):
    image = np.random.default_rng(14).random(tiny_image.shape)
    out = recursive_filter(image, 20.0, 0.1, 3, joint=tiny_image)
    assert out.min() >= image.min() - 1e-12 and out.max() <= image.max() + 1e-12
    assert np.allclose(out.mean(), image.mean(), atol=0.05)


def test_tiny_sigma_s_is_identity(tiny_image):
    image = np.random.default_rng(15).random(tiny_image.shape)
    assert np.allclose(recursive_filter(image, 1e-3, 100 / 255, 3, joint=tiny_image), image, rtol=0, atol=1e-12)


def test_refine_of_content_is_content(tiny_image):
    out = refine(tiny_image, tiny_image)
    assert out.shape == tiny_image.shape
    assert np.allclose(out, tiny_image, rtol=0, atol=1e-12)


def test_refine_equals_eq9(tiny_image):
    stylised = np.clip(0.8 * tiny_image[:, ::-1] + 0.1, 0, 1)
    rf_i = reference_recursive_filter(tiny_image, 60.0, 100 / 255, 3, tiny_image)
    rf_o = reference_recursive_filter(stylised, 60.0, 100 / 255, 3, tiny_image)
    expected = np.clip((tiny_image - rf_i) + rf_o, 0, 1)
    assert np.allclose(refine(stylised, tiny_image), expected, rtol=0, atol=1e-12)
    assert np.allclose(refine(stylised, tiny_image, sigma_s=10, sigma_r=0.2, num_iterations=2),
                       np.clip((tiny_image - reference_recursive_filter(tiny_image, 10, 0.2, 2, tiny_image))
                               + reference_recursive_filter(stylised, 10, 0.2, 2, tiny_image), 0, 1),
                       rtol=0, atol=1e-12)


@pytest.fixture
def poisson_pair():
    """A content and a 'stylised' image in the middle of [0, 1], so that no clipping happens."""
    rng = np.random.default_rng(16)
    h, w = 9, 11
    y, x = np.mgrid[0:h, 0:w]
    content = 0.5 + 0.15 * np.stack([np.sin(x / 2.0), np.cos(y / 3.0), np.sin((x + y) / 4.0)], -1)
    content += 0.03 * rng.standard_normal(content.shape)
    stylised = 0.5 + 0.2 * np.stack([np.cos(y / 5.0), np.sin(x / 6.0), 0 * x + 0.1], -1)
    stylised += 0.05 * rng.standard_normal(stylised.shape)
    return np.clip(stylised, 0, 1), np.clip(content, 0, 1)


def test_screened_poisson_lambda_zero_returns_output(poisson_pair):
    stylised, content = poisson_pair
    assert np.allclose(screened_poisson(stylised, content, lam=0.0), stylised, rtol=0, atol=1e-12)


def test_screened_poisson_satisfies_normal_equations(poisson_pair):
    stylised, content = poisson_pair
    h, w, _ = content.shape
    g = neumann_graph_laplacian(h, w)
    system = scipy.sparse.identity(h * w) + 5.0 * g
    out = screened_poisson(stylised, content, lam=5.0)
    assert 0 < out.min() and out.max() < 1          # no clipping, so the exact solution is returned
    for c in range(3):
        o, s, i = (a[..., c].ravel() for a in (out, stylised, content))
        residual = system @ o - (s + 5.0 * (g @ i))
        assert np.abs(residual).max() < 1e-10
    assert np.abs(out - stylised).max() > 1e-2


def test_screened_poisson_large_lambda_follows_content_gradients(poisson_pair):
    stylised, content = poisson_pair

    def gradient_error(img):
        return (np.abs(np.diff(img - content, axis=0)).mean() + np.abs(np.diff(img - content, axis=1)).mean())

    errors = [gradient_error(screened_poisson(stylised, content, lam=lam)) for lam in (0.0, 1.0, 100.0, 1e5)]
    assert errors[0] > errors[1] > errors[2] > errors[3]
    assert errors[3] < 1e-3 * errors[0]
    # the mean colour of the stylised image is kept at every lambda (the DC term is not penalised)
    assert np.allclose(screened_poisson(stylised, content, lam=1e5).mean(axis=(0, 1)),
                       stylised.mean(axis=(0, 1)), atol=1e-9)


def test_screened_poisson_clips_to_unit_range():
    content = np.zeros((6, 6, 3))
    content[:, 3:] = 1.0
    stylised = np.full((6, 6, 3), 0.9)
    out = screened_poisson(stylised, content, lam=1e3)
    assert out.min() >= 0.0 and out.max() <= 1.0 and out.max() == 1.0


def test_size_mismatch_names_both_sizes(tiny_image):
    other = np.zeros((5, 7, 3))
    with pytest.raises(PhotostyleError, match=r"12x10.*5x7"):
        refine(tiny_image, other)
    with pytest.raises(PhotostyleError, match=r"12x10.*5x7"):
        screened_poisson(tiny_image, other)
    with pytest.raises(PhotostyleError, match=r"12x10.*5x7"):
        recursive_filter(tiny_image, 60, 0.4, joint=other)
    with pytest.raises(PhotostyleError, match=r"12x10.*5x7"):
        recursive_filter(tiny_image, 60, 0.4, joint=other[..., 0])


@pytest.mark.parametrize("kwargs, match", [
    ({"sigma_s": 0.0}, "sigma_s"),
    ({"sigma_s": -1.0}, "sigma_s"),
    ({"sigma_r": 0.0}, "sigma_r"),
    ({"sigma_r": float("nan")}, "sigma_r"),
    ({"num_iterations": 0}, "num_iterations"),
    ({"num_iterations": 2.5}, "num_iterations"),
])
def test_bad_filter_parameters(tiny_image, kwargs, match):
    params = {"sigma_s": 60.0, "sigma_r": 0.4, "num_iterations": 3, **kwargs}
    with pytest.raises(PhotostyleError, match=match):
        recursive_filter(tiny_image, **params)
    with pytest.raises(PhotostyleError, match=match):
        refine(tiny_image, tiny_image, **params)


def test_bad_images(tiny_image):
    with pytest.raises(PhotostyleError, match=r"\[0, 1\]"):
        recursive_filter(tiny_image * 255, 60, 0.4)
    with pytest.raises(PhotostyleError, match=r"\[0, 1\]"):
        recursive_filter(tiny_image, 60, 0.4, joint=tiny_image * 255)
    with pytest.raises(PhotostyleError, match="shape"):
        refine(tiny_image[..., :2], tiny_image[..., :2])
    with pytest.raises(PhotostyleError, match=r"\[0, 1\]"):
        screened_poisson(tiny_image, tiny_image + 2)
    with pytest.raises(PhotostyleError, match="lam"):
        screened_poisson(tiny_image, tiny_image, lam=-1.0)


@pytest.mark.parametrize("channels, joint_channels", [(1, 1), (3, 3), (6, 3), (3, 1)])
def test_kernel_equals_numpy_reference(channels, joint_channels):
    from photostyle_lib.photoreal.image_kernels import AVAILABLE
    from photostyle_lib.photoreal.postprocess import _recursive_filter, _recursive_filter_reference

    if not AVAILABLE:
        pytest.skip("numba is not installed: the filter runs the numpy reference")
    rng = np.random.default_rng(16 + channels)
    image = rng.random((23, 37, channels))
    joint = rng.random((23, 37, joint_channels))
    for sigma_s, sigma_r, iterations in ((60.0, 100 / 255, 3), (5.0, 0.05, 2), (200.0, 1e3, 1)):
        ours = _recursive_filter(image, joint, sigma_s, sigma_r, iterations)
        ref = _recursive_filter_reference(image, joint, sigma_s, sigma_r, iterations)
        assert np.allclose(ours, ref, rtol=0, atol=1e-13)
        assert np.abs(ours - image).max() > 1e-3


def test_matches_opencv_domain_transform_when_installed():
    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2, "ximgproc"):
        pytest.skip("OpenCV without its contrib modules (pip install opencv-contrib-python-headless)")
    image = np.random.default_rng(17).random((31, 45, 3))
    guide = np.full((31, 45, 3), 0.2)          # a hard horizontal edge the filter must keep
    guide[16:] = 0.8
    guide = np.clip(guide + 0.05 * np.random.default_rng(18).random(guide.shape), 0, 1)
    for joint in (guide, image):
        ours = recursive_filter(image, 60.0, 100 / 255, 3, joint=joint)
        theirs = cv2.ximgproc.dtFilter(joint.astype(np.float32), image.astype(np.float32), 60.0, 100 / 255,
                                       mode=cv2.ximgproc.DTF_RF, numIters=3)
        assert np.abs(ours - theirs).max() < 1e-5        # float32 rounding; the task asks for 1/255
        assert np.abs(ours - image).max() > 0.05


def test_without_numba_the_filter_runs_the_numpy_reference(tiny_image, monkeypatch):
    from photostyle_lib.photoreal import image_kernels

    image = np.random.default_rng(19).random(tiny_image.shape)
    expected = reference_recursive_filter(image, 60.0, 100 / 255, 3, tiny_image)
    monkeypatch.setattr(image_kernels, "AVAILABLE", False)
    assert np.allclose(recursive_filter(image, 60.0, 100 / 255, 3, joint=tiny_image), expected, rtol=0, atol=1e-12)


# -- matting_smooth -------------------------------------------------------------------------------


@pytest.fixture
def smooth_pair():
    rng = np.random.default_rng(31)
    y, x = np.mgrid[0:9, 0:11]
    content = np.stack([0.3 + 0.04 * x, 0.5 + 0.03 * np.sin(y), 0.4 + 0.02 * (x + y) % 0.3], -1)
    content = np.clip(content + 0.05 * rng.standard_normal(content.shape), 0.05, 0.95)
    output = np.clip(0.5 + 0.15 * rng.standard_normal(content.shape), 0.2, 0.8)
    return output, content


def test_matting_smooth_solves_its_normal_equations(smooth_pair):
    """(Id + lam L) O = S, against a dense solve with the Laplacian as a dense matrix."""
    from photostyle_lib.photoreal.matting import matting_laplacian
    from photostyle_lib.photoreal.postprocess import matting_smooth

    out, content = smooth_pair
    lam = 0.05
    dense = matting_laplacian(content).toarray()
    expected = np.linalg.solve(np.eye(dense.shape[0]) + lam * dense, out.reshape(-1, 3)).reshape(out.shape)
    assert expected.min() > 0 and expected.max() < 1            # no clipping in play
    got = matting_smooth(out, content, lam, rtol=1e-10)
    assert np.abs(got - expected).max() < 1e-6
    assert np.array_equal(matting_smooth(out, content, 0.0), out)


def test_matting_smooth_lowers_the_energy_monotonically_and_keeps_affine_recolourings(smooth_pair):
    from photostyle_lib.photoreal.matting import laplacian_energy
    from photostyle_lib.photoreal.postprocess import matting_smooth

    out, content = smooth_pair
    energies = [laplacian_energy(matting_smooth(out, content, lam), content) for lam in (0.0, 0.1, 1.0, 10.0)]
    assert all(b < a for a, b in zip(energies, energies[1:]))
    assert energies[-1] < 0.05 * energies[0]
    # a global affine recolouring of the content is (up to eps) in L's null space: nearly unchanged
    affine = np.clip(content @ np.array([[0.6, 0.1, 0.0], [0.1, 0.5, 0.2], [0.0, 0.1, 0.7]]) + 0.1, 0, 1)
    assert np.abs(matting_smooth(affine, content, 10.0) - affine).max() < 1e-3


def test_matting_smooth_errors(smooth_pair):
    from photostyle_lib.photoreal.postprocess import matting_smooth

    out, content = smooth_pair
    with pytest.raises(PhotostyleError, match="did not converge"):
        matting_smooth(out, content, 1e4, rtol=1e-14, max_iterations=1)
    with pytest.raises(PhotostyleError, match="laplacian must be"):
        matting_smooth(out, content, 1.0, laplacian=scipy.sparse.identity(5, format="csr"))
    with pytest.raises(PhotostyleError, match="lam"):
        matting_smooth(out, content, -1.0)


def test_luminance_screened_poisson_satisfies_its_equations_and_keeps_chroma(poisson_pair):
    """Y(O) solves the one-channel screened Poisson system with the content's luminance (the normal equations,
    checked with the sparse graph Laplacian), and O - S is the same in all three channels (S's chroma kept)."""
    from photostyle_lib.photoreal.postprocess import screened_poisson_luminance
    stylised, content = poisson_pair
    h, w, _ = content.shape
    luma = np.array([0.299, 0.587, 0.114])
    out = screened_poisson_luminance(stylised, content, lam=5.0)
    assert 0 < out.min() and out.max() < 1  # no clipping
    shift = out - stylised
    assert np.abs(shift[..., 0] - shift[..., 1]).max() < 1e-12 and np.abs(shift[..., 0] - shift[..., 2]).max() < 1e-12
    g = neumann_graph_laplacian(h, w)
    system = scipy.sparse.identity(h * w) + 5.0 * g
    residual = system @ (out @ luma).ravel() - ((stylised @ luma).ravel() + 5.0 * (g @ (content @ luma).ravel()))
    assert np.abs(residual).max() < 1e-10 and np.abs(shift).max() > 1e-2
    np.testing.assert_allclose(screened_poisson_luminance(stylised, content, lam=0.0), stylised, atol=1e-12)


def test_luminance_screened_poisson_equals_the_rgb_one_on_grey_images(poisson_pair):
    """Three equal channels: the luminance is the channel, so both versions solve the same problem."""
    from photostyle_lib.photoreal.postprocess import screened_poisson_luminance
    stylised, content = poisson_pair
    grey_s, grey_c = (np.repeat(a[..., :1], 3, axis=2) for a in (stylised, content))
    np.testing.assert_allclose(screened_poisson_luminance(grey_s, grey_c, lam=3.0),
                               screened_poisson(grey_s, grey_c, lam=3.0), atol=1e-12)
    with pytest.raises(PhotostyleError, match="lam"):
        screened_poisson_luminance(grey_s, grey_c, lam=-1.0)
