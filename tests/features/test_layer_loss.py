"""The fused per-layer loss node against the reference terms of photostyle_lib.losses."""

import pytest
import torch

from photostyle_lib.features import allocator, kernels, layer_loss
from photostyle_lib import losses
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.features.layer_loss import LayerTerms, layer_losses
from photostyle_lib.features.vgg import VGGFeatures


def _case(kind: str, channels_last: bool, dtype=torch.float64, c=5, h=9, w=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(1, c, h, w, generator=g, dtype=dtype)
    if channels_last:
        feats = feats.contiguous(memory_format=torch.channels_last)
    content = torch.randn(1, c, h, w, generator=g, dtype=dtype)
    sim = torch.randn(1, c, h, w, generator=g, dtype=dtype)
    if channels_last:  # as the engine's targets: features of the same network
        content = content.contiguous(memory_format=torch.channels_last)
        sim = sim.contiguous(memory_format=torch.channels_last)
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


def _run_both(case, weights, apply_relu, down):
    """(values, grad) of the node and of the reference, with a downstream term as the next layer's."""
    terms = _terms(*case, weights)
    x = case[0].clone().requires_grad_(True)
    out, values = layer_losses(x, terms, apply_relu)
    if apply_relu:
        assert torch.equal(out, case[0].relu())
        after = out
    else:
        assert out.data_ptr() == x.data_ptr()
        after = out.relu()
    ((after * down).sum() + values.sum() * 2.0).backward()

    y = case[0].double().clone().requires_grad_(True)
    ref = _reference(y, *[t if t is None else t.double() for t in case[1:]], weights)
    ((y.relu() * down.double()).sum() + ref.sum() * 2.0).backward()
    return values, x.grad, ref, y.grad


@pytest.mark.parametrize("kind", ["plain", "hard", "soft"])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("apply_relu", [False, True])
@pytest.mark.parametrize("gpu_form", [False, True])
def test_values_and_gradients_equal_the_reference(monkeypatch, kind, channels_last, apply_relu, gpu_form):
    """Also in the GPU form (batched padded label blocks, device-tensor scales), forced on the CPU."""
    monkeypatch.setitem(layer_loss.GPU_FORM, "on_cpu", gpu_form)
    case = _case(kind, channels_last)
    down = torch.randn(case[0].shape, generator=torch.Generator().manual_seed(9), dtype=case[0].dtype)
    values, grad, ref, ref_grad = _run_both(case, (1.5, 30.0, 0.7), apply_relu, down)
    assert torch.allclose(values, ref, rtol=1e-10, atol=1e-12)
    assert torch.allclose(grad, ref_grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("use_kernels,gpu_form", [(True, False), (False, False), (False, True)])
@pytest.mark.parametrize("apply_relu", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_float32_paths_equal_the_reference(monkeypatch, use_kernels, gpu_form, apply_relu, channels_last):
    """float32 on the CPU: the numba kernels (when numba is there), the torch path, large
    enough for the oneDNN Gram kernels (>= 4096 rows), and the GPU form (many chunks per label)."""
    monkeypatch.setitem(layer_loss.USE_KERNELS, "enabled", use_kernels)
    monkeypatch.setitem(layer_loss.GPU_FORM, "on_cpu", gpu_form)
    calls = {"n": 0}
    real = kernels.fused_grad

    def counting(*args):
        calls["n"] += 1
        return real(*args)

    monkeypatch.setattr(kernels, "fused_grad", counting)
    case = _case("hard", channels_last, dtype=torch.float32, c=16, h=96, w=80, seed=5)
    down = torch.randn(case[0].shape, generator=torch.Generator().manual_seed(9))
    values, grad, ref, ref_grad = _run_both(case, (1.0, 1e3, 3.0), apply_relu, down)
    assert calls["n"] == (1 if use_kernels and kernels.AVAILABLE else 0)
    assert torch.allclose(values.double(), ref, rtol=1e-4)
    assert torch.allclose(grad.double(), ref_grad, rtol=1e-3, atol=1e-4 * float(ref_grad.abs().max()))


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba not installed")
def test_kernels_against_torch():
    g = torch.Generator().manual_seed(11)
    f = torch.randn(1, 4, 6, 5, generator=g)
    f[0, 0, 0, :2] = 0.0  # ReLU's kink: relu'(0) = 0
    tc = torch.randn(1, 4, 6, 5, generator=g)
    ts = torch.randn(1, 4, 6, 5, generator=g)
    ts[0, 1, 2, :3] = f[0, 1, 2, :3]  # ties: sign(0) = 0
    up = torch.randn(1, 4, 6, 5, generator=g)
    lay = torch.contiguous_format
    fv, cv, sv = (kernels.flat_view(t, lay) for t in (f, tc, ts))
    assert kernels.abs_diff_sum(fv, sv) == pytest.approx(float((f - ts).abs().double().sum()), rel=1e-6)
    assert kernels.sq_diff_sum(fv, cv) == pytest.approx(float(((f - tc).double() ** 2).sum()), rel=1e-6)
    for has_up, relu in [(True, True), (True, False), (False, False)]:
        out = up.clone()
        kernels.fused_grad(kernels.flat_view(out, lay), has_up, relu, fv, cv, 0.3, sv, 0.7)
        base = (up * (f > 0) if relu else up) if has_up else torch.zeros_like(up)
        assert torch.allclose(out, base + 0.3 * (f - tc) + 0.7 * torch.sign(f - ts), atol=1e-6)
    assert kernels.flat_view(f.double(), lay) is None
    assert kernels.flat_view(f.contiguous(memory_format=torch.channels_last).transpose(2, 3), lay) is None


@pytest.mark.parametrize("kind", ["plain", "hard", "soft"])
@pytest.mark.parametrize("gpu_form", [False, True])
def test_gradcheck_deepest_layer(monkeypatch, kind, gpu_form):
    """With nothing downstream (the deepest tapped layer) the node's gradient is the terms' gradient alone."""
    monkeypatch.setitem(layer_loss.GPU_FORM, "on_cpu", gpu_form)
    feats, content, sim, style, mo, ms = _case(kind, True, seed=3)
    terms = _terms(feats, content, sim + 5.0, style, mo, ms, (1.0, 10.0, 0.5))  # sim offset: away from |.|'s kink
    x = feats.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: layer_losses(a, terms)[1], (x,), eps=1e-6, atol=1e-6)


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


def test_vgg_tap_that_applies_relu_replaces_the_relu_module():
    net = VGGFeatures("random", ("conv1_1", "relu1_1", "conv1_2"))
    x = torch.rand(1, 3, 16, 16)
    plain = net(x)
    seen = {"n": 0}

    def tap(f):
        seen["n"] += 1
        return torch.relu(f) * 2.0  # distinguishable from the module's ReLU

    tap.applies_relu = True
    tapped = net(x, taps={"conv1_1": tap})
    assert seen["n"] == 1
    assert torch.equal(tapped["conv1_1"], plain["conv1_1"])       # the convolution's own output
    assert torch.allclose(tapped["relu1_1"], 2.0 * plain["relu1_1"])  # what the tap returned
    with pytest.raises(PhotostyleError, match="untapped ReLU"):
        net(x, taps={"conv1_1": tap, "relu1_1": lambda f: f})
    with pytest.raises(PhotostyleError, match="untapped ReLU"):
        net(x, taps={"relu1_1": tap})


def test_gpu_form_chunks_cover_each_label_once():
    """The chunked layout: every counted label's pixels once, in order, in its own chunks; padding weighs 0."""
    feats, content, sim, style, mo, ms = _case("soft", False, seed=4, h=40, w=37)
    terms = _terms(feats, content, sim, style, mo, ms, (1.0, 1.0, 1.0))
    order, weights, chunk_label = terms.style_blocks
    used, index = terms.style_labels[0], terms.style_index
    bounds = index.segments()
    chunk = weights.shape[1]
    assert order.numel() == weights.numel() and chunk_label.numel() == weights.shape[0]
    for k, lab in enumerate(used):
        a, b = bounds[lab]
        mine = (chunk_label == k).nonzero().flatten()
        assert len(mine) == -(-(b - a) // chunk)  # as few chunks as the label needs
        rows = order.view(-1, chunk)[mine].flatten()
        w = weights[mine].flatten()
        assert torch.equal(rows[:b - a], index.order[a:b]) and torch.equal(w[:b - a], index.weights[a:b])
        assert w[b - a:].abs().sum() == 0


def test_engine_in_gpu_form_equals_cpu_form(monkeypatch):
    """A whole stylize run with the GPU form forced on the CPU: the same loss terms step by step."""
    from photostyle_lib.engine import presets
    from photostyle_lib.semantic.masks import SemanticMasks
    from photostyle_lib.engine.transfer import stylize

    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 3, 40, 56, generator=g), torch.rand(1, 3, 48, 48, generator=g)
    soft_c = torch.softmax(3 * torch.randn(3, 40, 56, generator=g), 0)
    soft_s = torch.softmax(3 * torch.randn(3, 48, 48, generator=g), 0)
    masks = SemanticMasks(torch.where(soft_c >= 0.2, soft_c, 0), soft_s, ("a", "b", "c"), kind="soft")
    cfg = presets.get_preset("full", weights="random", iterations=6, device="cpu", postprocess="none")
    runs = []
    for on in (False, True):
        monkeypatch.setitem(layer_loss.GPU_FORM, "on_cpu", on)
        runs.append(stylize(content, style, cfg, masks=masks, progress=False).losses)
    cols = ["content", "style", "similarity", "total"]
    # float32 rounding differs between the forms, and L-BFGS steps amplify it: compare the first evaluations
    assert runs[0][cols].to_numpy()[:4] == pytest.approx(runs[1][cols].to_numpy()[:4], rel=1e-3)
    assert runs[0]["style"].iloc[0] > 0


def _joint_terms(feats, style, masks_out, masks_sty, beta):
    """LayerTerms for the joint-Gram normalisation ("authors_joint"), built as stylize builds them."""
    mc, ms, weights = losses.joint_gram_label_masks(masks_out, masks_sty)
    index, sty_index = losses.MaskIndex.from_masks(mc), losses.MaskIndex.from_masks(ms)
    num = masks_out.shape[0]
    c, h, w = feats.shape[1:]
    target = losses.joint_gram_masked_grams(style, sty_index, num)
    norm = torch.full((index.num_labels,), float(num * c * h * w), dtype=torch.float64)
    return LayerTerms(style_target=target, style_index=index, style_weight=beta, style_norm=norm,
                      style_label_weights=weights)


def _authors_terms(feats, style, masks_out, masks_sty, beta):
    """LayerTerms for the authors' final normalisation ("authors"), built as stylize builds them."""
    index, sty_index = losses.MaskIndex.from_masks(masks_out), losses.MaskIndex.from_masks(masks_sty)
    num = masks_out.shape[0]
    c, h, w = feats.shape[1:]
    target = losses.authors_masked_grams(style, sty_index)
    norm = torch.full((num,), float(c * h * w), dtype=torch.float64)
    return LayerTerms(style_target=target, style_index=index, style_weight=beta, style_norm=norm,
                      style_label_weights=torch.full((num,), 1.0 / num, dtype=torch.float64))


def _master_style_loss(output, style, output_masks, style_masks):
    """Their final model.py's StyleLoss, restated: input * mask (L, 1, H, W) -> (L, C, H*W); bmm with the
    transpose, divided by C*H*W; F.mse_loss against the style's, built the same way."""
    def gram(f, m):
        x = (f * m.unsqueeze(1)).contiguous()     # (1, C, H, W) * (L, 1, H, W) -> (L, C, H, W)
        a, b, c, d = x.size()
        x = x.view(a, b, c * d)
        return torch.bmm(x, x.transpose(1, 2)).div(b * c * d)
    return torch.nn.functional.mse_loss(gram(output, output_masks), gram(style, style_masks))


def _check_against(monkeypatch, kind, gpu_form, build, reference):
    monkeypatch.setitem(layer_loss.GPU_FORM, "on_cpu", gpu_form)
    feats, _, _, style, masks_out, masks_sty = _case(kind, False)
    terms = build(feats, style, masks_out, masks_sty, 40.0)
    x = feats.clone().requires_grad_(True)
    out, values = layer_losses(x, terms)
    down = torch.randn(feats.shape, generator=torch.Generator().manual_seed(3), dtype=feats.dtype)
    ((out.relu() * down).sum() + values[1] * 2.0).backward()
    y = feats.clone().requires_grad_(True)
    ref = 40.0 * reference(y, style, masks_out, masks_sty)
    ((y.relu() * down).sum() + ref * 2.0).backward()
    assert float(ref.detach()) > 0
    assert torch.allclose(values[1], ref, rtol=1e-10)
    assert torch.allclose(x.grad, y.grad, rtol=1e-9, atol=1e-12)
    return masks_out, masks_sty


@pytest.mark.parametrize("kind", ["hard", "soft"])
@pytest.mark.parametrize("gpu_form", [False, True])
def test_authors_normalisation_equals_their_final_model_py(monkeypatch, kind, gpu_form):
    """Per-label C x C Grams / (C*H*W), MSE over L*C*C entries, as their master's model.py: value and gradient,
    for the fused engine node and for the library's dense reference (the hard case has an empty label)."""
    _check_against(monkeypatch, kind, gpu_form, _authors_terms, _master_style_loss)
    feats, _, _, style, masks_out, masks_sty = _case(kind, False)
    assert torch.allclose(losses.authors_masked_style_loss(feats, style, masks_out, masks_sty),
                          _master_style_loss(feats, style, masks_out, masks_sty), rtol=1e-12)


@pytest.mark.parametrize("kind", ["hard", "soft"])
@pytest.mark.parametrize("gpu_form", [False, True])
def test_joint_gram_normalisation_equals_its_dense_formula(monkeypatch, kind, gpu_form):
    """The (L*C) x (L*C) Gram of the masked features, / (L*C*H*W), mean over all entries (the authors' code before
    their fix): value and gradient, cross-label blocks included (soft masks overlap)."""
    masks_out, masks_sty = _check_against(monkeypatch, kind, gpu_form, _joint_terms,
                                          losses.joint_gram_masked_style_loss)
    if kind == "soft":
        assert len(losses.joint_gram_label_masks(masks_out, masks_sty)[2]) > masks_out.shape[0]  # pairs present


def test_authors_joint_and_area_normalisations_in_closed_form():
    """One label covering the whole map: every form is the plain Gram loss. Two hard labels: the joint form's
    per-label term is the area one times (a / (L H W))^2 when both images share the masks, and the final form
    is exactly L^3 times the joint one (no cross-label blocks for hard masks)."""
    g = torch.Generator().manual_seed(0)
    f = torch.randn(1, 4, 6, 8, generator=g, dtype=torch.float64)
    s = torch.randn(1, 4, 6, 8, generator=g, dtype=torch.float64)
    ones = torch.ones(1, 6, 8, dtype=torch.float64)
    for form in (losses.joint_gram_masked_style_loss, losses.authors_masked_style_loss):
        assert torch.allclose(form(f, s, ones, ones), losses.style_loss(f, s), rtol=1e-12)
    left = torch.zeros(2, 6, 8, dtype=torch.float64)
    left[0, :, :2], left[1, :, 2:] = 1, 1
    joint = losses.joint_gram_masked_style_loss(f, s, left, left)
    g_f, g_s = losses.masked_gram_matrices(f, left), losses.masked_gram_matrices(s, left)
    frac = torch.tensor([12.0, 36.0], dtype=torch.float64) / (2 * 48)
    expected = sum(((frac[k] * (g_f[k] - g_s[k])) ** 2).sum() for k in range(2)) / (2 * 4) ** 2
    assert torch.allclose(joint, expected, rtol=1e-12)
    three = torch.zeros(3, 6, 8, dtype=torch.float64)
    three[0, :2], three[1, 2:4], three[2, 4:] = 1, 1, 1
    assert torch.allclose(losses.authors_masked_style_loss(f, s, three, three),
                          27 * losses.joint_gram_masked_style_loss(f, s, three, three), rtol=1e-12)


def _luan_terms(feats, style, masks_out, masks_sty, beta):
    """LayerTerms for Luan et al.'s normalisation, built as stylize builds them."""
    index, sty_index = losses.MaskIndex.from_masks(masks_out), losses.MaskIndex.from_masks(masks_sty)
    target = losses.luan_masked_grams(style, sty_index)
    norm = feats.shape[1] * index.sums.to(torch.float64)
    return LayerTerms(style_target=target, style_index=index, style_weight=beta, style_norm=norm,
                      style_label_weights=losses.luan_label_weights(masks_out))


@pytest.mark.parametrize("kind", ["hard", "soft"])
@pytest.mark.parametrize("gpu_form", [False, True])
def test_luan_normalisation_equals_their_formula(monkeypatch, kind, gpu_form):
    """Gram / (C * sum of the mask), each label's term times its content mask's mean: value and exact gradient;
    for hard masks the gradient is also their backward's (StyleLossWithSeg:updateGradInput)."""
    monkeypatch.setitem(layer_loss.GPU_FORM, "on_cpu", gpu_form)
    feats, _, _, style, masks_out, masks_sty = _case(kind, False)
    if kind == "hard":
        masks_sty = masks_sty.clone()
        masks_sty[2] = 0.0  # a label present in the content only: their target Gram is 0, and it counts
        masks_out[2, 0, 2] = 1.0
        masks_out[:2, 0, 2] = 0.0
    terms = _luan_terms(feats, style, masks_out, masks_sty, 40.0)
    x = feats.clone().requires_grad_(True)
    out, values = layer_losses(x, terms)
    down = torch.randn(feats.shape, generator=torch.Generator().manual_seed(3), dtype=feats.dtype)
    ((out.relu() * down).sum() + values[1] * 2.0).backward()
    y = feats.clone().requires_grad_(True)
    ref = 40.0 * losses.luan_masked_style_loss(y, style, masks_out, masks_sty)
    ((y.relu() * down).sum() + ref * 2.0).backward()
    assert ref.item() > 0 and torch.allclose(values[1], ref, rtol=1e-10)
    assert torch.allclose(x.grad, y.grad, rtol=1e-9, atol=1e-12)
    if kind == "hard":
        # their backward: sum_j strength * gram:backward(M_j F, dG_j / nElement), dG_j = 2 (G_j - T_j) / C^2
        c, n = feats.shape[1], feats[0].numel()
        theirs = torch.zeros_like(feats[0])
        g_out = losses.luan_masked_grams(feats, masks_out)
        g_sty = losses.luan_masked_grams(style, masks_sty)
        for j in range(masks_out.shape[0]):
            masked = (masks_out[j] * feats[0]).reshape(c, -1)
            d_g = 2 * (g_out[j] - g_sty[j]) / c ** 2 / n
            theirs += ((d_g + d_g.T) @ masked).reshape(feats[0].shape)
        assert torch.allclose(x.grad - y.relu().gt(0) * down, 2.0 * 40.0 * theirs.unsqueeze(0), rtol=1e-9, atol=1e-12)
