"""The engine on a CUDA device against the same code on the CPU.

Skipped where torch sees no CUDA device (CI, most laptops). On a GPU box run
``python -m pytest tests/test_cuda.py``. What differs on CUDA: no numba kernels
and no oneDNN Gram products (the torch path of ``layer_loss`` / ``losses``), cuSPARSE
for the Laplacian product, cuDNN convolutions, which use TF32 by default on
Ampere and newer (about 1e-3 relative error), hence the looser tolerances where
VGG features are involved.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from photostyle_lib.photoreal import matting
from photostyle_lib.engine import presets
from photostyle_lib.features.layer_loss import layer_losses
from photostyle_lib.engine.lbfgs import LBFGS
from photostyle_lib.engine.transfer import stylize
from photostyle_lib.features.vgg import VGGFeatures
from test_layer_loss import _case as _layer_case, _terms as _layer_terms

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CUDA = torch.device("cuda")


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float) -> bool:
    """Relative error in the max norm: |a - b|_max <= rtol * |b|_max."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).abs().max()) <= rtol * float(b.abs().max()) + 1e-30


def _case(kind: str, device: torch.device):
    """test_layer_loss's case (float32, 16 channels) with every tensor on ``device``, and its terms."""
    case = [None if t is None else t.to(device)
            for t in _layer_case(kind, False, dtype=torch.float32, c=16, h=23, w=19, seed=1)]
    return case[0], _layer_terms(*case, (1.0, 1e3, 3.0))


@pytest.mark.parametrize("kind", ["plain", "hard", "soft"])
@pytest.mark.parametrize("apply_relu", [False, True])
def test_layer_losses_match_cpu(kind, apply_relu):
    out = {}
    for device in (torch.device("cpu"), CUDA):
        feats, terms = _case(kind, device)
        x = feats.clone().requires_grad_(True)
        y, values = layer_losses(x, terms, apply_relu)
        down = torch.linspace(-1, 1, y.numel(), device=device).reshape(y.shape)
        ((y * down).sum() + values.sum()).backward()
        out[device.type] = (values, x.grad)
    assert out["cuda"][0].device.type == "cuda"
    assert _close(out["cuda"][0], out["cpu"][0], 1e-4)
    assert _close(out["cuda"][1], out["cpu"][1], 1e-4)


def test_vgg_features_match_cpu():
    layers = ("conv1_1", "conv3_1", "conv4_2", "conv5_1")
    net = VGGFeatures("random", layers)
    x = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    cpu = net(x)
    gpu = net.to(CUDA)(x.to(CUDA))
    for name in layers:
        assert gpu[name].device.type == "cuda"
        assert _close(gpu[name], cpu[name], 1e-2), name  # cuDNN may use TF32


def test_photorealism_loss_matches_cpu():
    img = np.random.default_rng(0).random((20, 24, 3))
    lap = matting.matting_laplacian(img)
    x = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(2))
    res = {}
    for device in ("cpu", "cuda"):
        v = x.detach().to(device).clone().requires_grad_(True)
        loss = matting.photorealism_loss(v, matting.laplacian_to_torch(lap, device=device))
        loss.backward()
        res[device] = (loss, v.grad)
    assert _close(res["cuda"][0], res["cpu"][0], 1e-5)
    assert _close(res["cuda"][1], res["cpu"][1], 1e-5)


@pytest.mark.parametrize("preset", ["full", "regularization", "gatys", "luan"])
def test_stylize_on_cuda_matches_cpu_start_and_descends(preset, pair, two_label_masks):
    """Every preset runs on CUDA; the first evaluation (the content image) gives the CPU's loss terms, and
    the run descends where the CPU run does."""
    (content, style), masks = pair, two_label_masks
    runs = {}
    for device in ("cpu", "cuda"):
        cfg = presets.get_preset(preset, weights="random", iterations=8, device=device)
        runs[device] = stylize(content, style, cfg, masks=masks if cfg.uses_masks else None, progress=False)
    r = runs["cuda"]
    assert r.device.startswith("cuda") and r.image.device.type == "cpu"  # results come back to the CPU
    assert r.device_name.startswith(torch.cuda.get_device_name())
    assert 0.0 <= float(r.image.min()) and float(r.image.max()) <= 1.0
    assert np.isfinite(r.losses["total"]).all()
    if runs["cpu"].losses["total"].min() < runs["cpu"].losses["total"].iloc[0]:  # (regularization may not yet)
        assert r.losses["total"].min() < r.losses["total"].iloc[0]
    first_gpu, first_cpu = r.losses.iloc[0], runs["cpu"].losses.iloc[0]
    for term in ("content", "style", "similarity", "regularization", "total"):
        if term in r.losses.columns:
            assert first_gpu[term] == pytest.approx(first_cpu[term], rel=2e-2, abs=1e-6), term


@pytest.mark.parametrize("form", ["auto", "two-loop", "compact"])
def test_lbfgs_matches_torch_on_cuda(form):
    """The engine's L-BFGS against torch.optim.LBFGS, on the GPU ("auto" is the compact form there)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 100, generator=g, dtype=torch.float64).to(CUDA)
    b = torch.randn(300, generator=g, dtype=torch.float64).to(CUDA)
    x0 = torch.randn(100, generator=g, dtype=torch.float64).to(CUDA)
    out = []
    for cls in (LBFGS, torch.optim.LBFGS):
        x = x0.clone().requires_grad_(True)
        kw = {"form": form} if cls is LBFGS else {}
        opt = cls([x], lr=0.5, max_iter=20, history_size=10, tolerance_grad=0.0, tolerance_change=0.0, **kw)

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.softplus(a @ x - b).sum() + 0.05 * x.pow(2).sum()
            loss.backward()
            return loss
        for _ in range(3):
            opt.step(closure)
        out.append(x.detach())
        if cls is LBFGS:
            kind = type(opt.state[x]["history"]).__name__
            assert kind == ("TwoLoopHistory" if form == "two-loop" else "CompactHistory")
    assert _close(out[0], out[1], 1e-10)
