"""The fused per-layer loss node against the reference terms of photostyle_lib.losses."""

import pytest
import torch

from photostyle_lib import allocator, losses
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.layer_loss import LayerTerms, layer_losses
from photostyle_lib.vgg import VGGFeatures


def _case(kind: str, channels_last: bool, dtype=torch.float64, c=5, h=9, w=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(1, c, h, w, generator=g, dtype=dtype)
    if channels_last:
        feats = feats.contiguous(memory_format=torch.channels_last)
    content = torch.randn(1, c, h, w, generator=g, dtype=dtype)
    sim = torch.randn(1, c, h, w, generator=g, dtype=dtype)
    style = torch.randn(1, c, h + 2, w + 1, generator=g, dtype=dtype)
    if kind == "plain":
        masks_out = masks_sty = None
    elif kind == "hard":
        lab = torch.randint(0, 3, (h, w), generator=g)
        lab[0, 0], lab[0, 1] = 0, 1  # label 2 may be missing: an empty label
        lab[lab == 2] = 1
        masks_out = torch.nn.functional.one_hot(lab, 3).permute(2, 0, 1).to(dtype)
        lab_s = torch.randint(0, 3, (h + 2, w + 1), generator=g)
        masks_sty = torch.nn.functional.one_hot(lab_s, 3).permute(2, 0, 1).to(dtype)
    else:
        masks_out = torch.softmax(torch.randn(3, h, w, generator=g, dtype=dtype) * 2, 0)
        masks_out = torch.where(masks_out >= 0.2, masks_out, torch.zeros_like(masks_out))
        masks_sty = torch.softmax(torch.randn(3, h + 2, w + 1, generator=g, dtype=dtype) * 2, 0)
    return feats, content, sim, style, masks_out, masks_sty


def _reference(feats, content, sim, style, masks_out, masks_sty, weights):
    a, b, gam = weights
    if masks_out is None:
        st = losses.style_loss(feats, style)
    else:
        st = losses.masked_style_loss(feats, style, masks_out, masks_sty)
    return torch.stack([a * losses.content_loss(feats, content), b * st, gam * losses.similarity_loss(feats, sim)])


def _terms(feats, content, sim, style, masks_out, masks_sty, weights):
    a, b, gam = weights
    if masks_out is None:
        target, index, valid = losses.gram_matrix(style).unsqueeze(0), None, None
    else:
        index = losses.MaskIndex.from_masks(masks_out)
        sty_index = losses.MaskIndex.from_masks(masks_sty)
        target = losses.masked_gram_matrices(style, sty_index)
        valid = ((index.areas > 0) & (sty_index.areas > 0)).to(feats.dtype)
    return LayerTerms(content_target=content, content_weight=a, style_target=target, style_index=index,
                      style_valid=valid, style_weight=b, similarity_target=sim, similarity_weight=gam)


@pytest.mark.parametrize("kind", ["plain", "hard", "soft"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_values_and_gradients_equal_the_reference(kind, channels_last):
    case = _case(kind, channels_last)
    weights = (1.5, 30.0, 0.7)
    terms = _terms(*case, weights)
    # a downstream consumer (as the next VGG module) so the incoming gradient is not None
    down = torch.randn(case[0].shape, generator=torch.Generator().manual_seed(9), dtype=case[0].dtype)

    x = case[0].clone().requires_grad_(True)
    passed, values = layer_losses(x, terms)
    assert passed.data_ptr() == x.data_ptr()
    ((passed.relu() * down).sum() + values.sum() * 2.0).backward()

    y = case[0].clone().requires_grad_(True)
    ref = _reference(y, *case[1:], weights)
    ((y.relu() * down).sum() + ref.sum() * 2.0).backward()

    assert torch.allclose(values, ref, rtol=1e-10, atol=1e-12)
    assert torch.allclose(x.grad, y.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["plain", "hard", "soft"])
def test_gradcheck_deepest_layer(kind):
    """With nothing downstream (the deepest tapped layer) the node's gradient is the terms' gradient alone."""
    feats, content, sim, style, mo, ms = _case(kind, True, seed=3)
    terms = _terms(feats, content, sim + 5.0, style, mo, ms, (1.0, 10.0, 0.5))  # sim offset: away from |.|'s kink
    x = feats.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: layer_losses(a, terms)[1], (x,), eps=1e-6, atol=1e-6)


def test_float32_cpu_kernels_match_the_reference():
    """Large enough for the oneDNN Gram kernels (float32, >= 4096 rows)."""
    feats, content, sim, style, mo, ms = _case("hard", True, dtype=torch.float32, c=16, h=96, w=80, seed=5)
    weights = (1.0, 1e3, 3.0)
    terms = _terms(feats, content, sim, style, mo, ms, weights)
    x = feats.clone().requires_grad_(True)
    _, values = layer_losses(x, terms)
    values.sum().backward()
    y = feats.double().clone().requires_grad_(True)
    ref = _reference(y, content.double(), sim.double(), style.double(), mo.double(), ms.double(), weights)
    ref.sum().backward()
    assert torch.allclose(values.double(), ref, rtol=1e-4)
    assert torch.allclose(x.grad.double(), y.grad, rtol=1e-3, atol=1e-3 * float(y.grad.abs().max()))


def test_absent_terms_are_zero_and_cost_nothing():
    feats = torch.randn(1, 3, 5, 5, requires_grad=True)
    passed, values = layer_losses(feats, LayerTerms())
    assert torch.equal(values, torch.zeros(3))
    (passed.sum() + values.sum()).backward()
    assert torch.equal(feats.grad, torch.ones_like(feats))


def test_bad_terms_are_clear():
    feats = torch.randn(1, 3, 5, 5)
    with pytest.raises(PhotostyleError, match="same size"):
        layer_losses(feats, LayerTerms(content_target=torch.zeros(1, 3, 4, 4), content_weight=1.0))
    with pytest.raises(PhotostyleError, match="resize the masks"):
        index = losses.MaskIndex.from_masks(torch.ones(1, 4, 4))
        layer_losses(feats, LayerTerms(style_target=torch.zeros(1, 3, 3), style_index=index, style_weight=1.0))
    with pytest.raises(PhotostyleError, match="one target Gram"):
        LayerTerms(style_target=torch.zeros(2, 3, 3))
    with pytest.raises(PhotostyleError, match="2 target Grams"):
        LayerTerms(style_target=torch.zeros(2, 3, 3), style_index=losses.MaskIndex.from_masks(torch.ones(1, 4, 4)))


def test_vgg_taps_replace_the_layer_output():
    net = VGGFeatures("random", ("conv1_2",))
    x = torch.rand(1, 3, 16, 16)
    plain = net(x)
    seen = {}

    def tap(f):
        seen["conv1_1"] = f
        return torch.zeros_like(f)

    tapped = net(x, taps={"conv1_1": tap})
    assert seen["conv1_1"].shape == (1, 64, 16, 16)
    # conv1_2 of a zero map after ReLU is the bias everywhere, unlike the untapped output
    bias = net.body[2].bias.view(1, -1, 1, 1)
    assert torch.allclose(tapped["conv1_2"], bias.expand_as(tapped["conv1_2"]))
    assert not torch.allclose(plain["conv1_2"], tapped["conv1_2"])
    with pytest.raises(PhotostyleError, match="does not compute"):
        net(x, taps={"conv3_1": tap})


def test_keep_freed_memory_is_idempotent_and_can_be_switched_off(monkeypatch):
    monkeypatch.setattr(allocator, "_state", {})
    monkeypatch.setenv(allocator.ENV_VAR, "0")
    assert allocator.keep_freed_memory() is False
    assert allocator.keep_freed_memory() is False  # remembered
    monkeypatch.setattr(allocator, "_state", {})
    monkeypatch.delenv(allocator.ENV_VAR)
    import platform
    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert allocator.keep_freed_memory() is expected
