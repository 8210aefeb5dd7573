"""HED edge maps in torch (photostyle_lib.features.hed_edges) against a direct computation of their head."""

import h5py
import numpy as np
import pytest
import torch

from conftest import needs_hed
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.features import vgg
from photostyle_lib.features.hed_edges import SIDE_LAYERS, HEDEdges, read_side_outputs


def _bilinear_half_pixel(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """(h0, w0) -> (h, w): TF2's resize(method="bilinear"): half-pixel centres, edges clamped."""
    def axis(n0, n):
        src = np.clip((np.arange(n) + 0.5) * n0 / n - 0.5, 0, n0 - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n0 - 1)
        return lo, hi, src - lo
    ylo, yhi, fy = axis(a.shape[0], h)
    xlo, xhi, fx = axis(a.shape[1], w)
    top = a[ylo][:, xlo] * (1 - fx) + a[ylo][:, xhi] * fx
    bot = a[yhi][:, xlo] * (1 - fx) + a[yhi][:, xhi] * fx
    return top * (1 - fy[:, None]) + bot * fy[:, None]


@needs_hed
def test_edges_equal_a_direct_computation_of_the_side_outputs_and_fusion():
    edges = HEDEdges()
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((1, 3, 32, 48))).float()
    with torch.no_grad():
        got = edges(x)[0, 0].double().numpy()
        feats = edges.trunk(x)
    with h5py.File(vgg.hed_weights_path(), "r") as f:
        sides = []
        for k, name in enumerate(SIDE_LAYERS, start=1):
            raw = feats[name][0].double().numpy() * edges.trunk.feature_scale  # (C, h, w), HED's own units
            w = np.asarray(f[f"dsn{k}/vars/0"], np.float64).reshape(-1)
            b = float(np.asarray(f[f"dsn{k}/vars/1"]).reshape(()))
            sides.append(_bilinear_half_pixel(np.tensordot(w, raw, axes=1) + b, 32, 48))
        fw = np.asarray(f["fuse/vars/0"], np.float64).reshape(-1)
        fb = float(np.asarray(f["fuse/vars/1"]).reshape(()))
    ref = 1 / (1 + np.exp(-(np.tensordot(fw, np.stack(sides), axes=1) + fb)))
    assert got.shape == (32, 48)
    assert np.allclose(got, ref, rtol=1e-4, atol=1e-5)


@needs_hed
def test_edges_fire_on_a_step_and_not_on_flat_regions():
    x = torch.full((1, 3, 64, 64), 0.2)
    x[..., 32:] = 0.8
    with torch.no_grad():
        e = HEDEdges()(x)[0, 0]
    assert 0 <= float(e.min()) and float(e.max()) <= 1
    assert float(e[8:56, 29:35].mean()) > 0.5 > 5 * float(e[8:56, 8:20].mean())


@needs_hed
def test_side_output_errors_name_the_file(tmp_path):
    with h5py.File(tmp_path / "no_side.h5", "w") as f:
        f["block1/vars/0"] = np.zeros(3)
    with pytest.raises(PhotostyleError, match=r"no_side\.h5.*reinstall"):
        read_side_outputs(tmp_path / "no_side.h5")
    with pytest.raises(PhotostyleError, match="at least 16 x 16"):
        HEDEdges()(torch.zeros(1, 3, 8, 40))
