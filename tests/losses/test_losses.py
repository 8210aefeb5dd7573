"""Loss terms against closed forms, dense references and gradcheck."""

import pytest
import torch

from photostyle_lib import losses
from photostyle_lib.losses import gram as gram_module
from photostyle_lib.errors import PhotostyleError


def test_gram_closed_form():
    # F = [[1, 2], [3, 4]] as a (1, 2, 1, 2) map: F F^T = [[5, 11], [11, 25]], / (C*H*W = 4).
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)
    expected = torch.tensor([[5.0, 11.0], [11.0, 25.0]]) / 4
    assert torch.allclose(losses.gram_matrix(f), expected)


def test_content_and_similarity_closed_form():
    a = torch.zeros(1, 2, 2, 2)
    b = torch.full((1, 2, 2, 2), 3.0)
    assert losses.content_loss(a, b).item() == pytest.approx(9.0)
    assert losses.similarity_loss(a, b).item() == pytest.approx(3.0)
    b[0, 0, 0, 0] = -1.0  # |0 - (-1)| = 1 on one of 8 entries
    assert losses.similarity_loss(a, b).item() == pytest.approx((7 * 3 + 1) / 8)


def test_style_loss_closed_form():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)
    g = torch.zeros(1, 2, 1, 3)
    # Gram of zeros is zero: loss = mean of squared Gram entries of f.
    expected = ((torch.tensor([[5.0, 11.0], [11.0, 25.0]]) / 4) ** 2).mean()
    assert losses.style_loss(f, g).item() == pytest.approx(expected.item())
    assert losses.style_loss(f, f).item() == 0.0


def test_total_variation_checkerboard():
    # A 0/1 checkerboard: every difference is +-1; Luan et al. count the (H-1) x (W-1) top-left pixels,
    # two differences each, in 3 channels: 3 * 5 * 4 * 2 = 120.
    y, x = torch.meshgrid(torch.arange(6), torch.arange(5), indexing="ij")
    board = ((x + y) % 2).float().expand(1, 3, 6, 5)
    assert losses.total_variation(board).item() == pytest.approx(120.0)
    # the last row's horizontal and the last column's vertical differences are not counted
    edge = torch.zeros(1, 3, 6, 5)
    edge[..., -1, 2] = 1.0  # bottom row: only its vertical difference to the row above counts
    assert losses.total_variation(edge).item() == pytest.approx(3.0)


def _their_tv_backward(x: torch.Tensor, strength: float) -> torch.Tensor:
    """TVLoss:updateGradInput of neuralstyle_seg.lua, rewritten for a (3, H, W) tensor."""
    grad = torch.zeros_like(x)
    x_diff = x[:, :-1, :-1] - x[:, :-1, 1:]
    y_diff = x[:, :-1, :-1] - x[:, 1:, :-1]
    grad[:, :-1, :-1] += x_diff + y_diff
    grad[:, :-1, 1:] -= x_diff
    grad[:, 1:, :-1] -= y_diff
    return grad * strength


def test_total_variation_gradient_is_twice_their_backward():
    """Their TV module has no forward value; its backward is the gradient of strength / 2 * our sum."""
    x = torch.rand(1, 3, 7, 9, generator=torch.Generator().manual_seed(1), dtype=torch.float64, requires_grad=True)
    (0.37 / 2 * losses.total_variation(x)).backward()
    assert torch.allclose(x.grad[0], _their_tv_backward(x.detach()[0], 0.37), rtol=1e-12, atol=1e-15)


def _their_masked_style_loss(out, sty, out_masks, sty_masks, strength=1.0):
    """StyleLossWithSeg of neuralstyle_seg.lua, label by label: (C, H, W) features, (L, H, W) masks."""
    def gram(f, m):
        x = (m.unsqueeze(0) * f).reshape(f.shape[0], -1)
        g = x @ x.T
        mean = m.mean()
        return (g / (f.numel() * mean) if mean > 0 else g), mean
    total = 0.0
    for j in range(out_masks.shape[0]):
        target, _ = gram(sty, sty_masks[j])
        g, mean = gram(out, out_masks[j])
        total = total + ((g - target) ** 2).mean() * strength * mean
    return total


def test_luan_masked_style_loss_equals_their_label_loop():
    """Soft masks (their masks are average-pooled), a label empty in the style (target Gram 0, still counted)
    and one empty in the content (weight 0)."""
    g = torch.Generator().manual_seed(2)
    f = torch.randn(1, 4, 6, 7, generator=g, dtype=torch.float64)
    s = torch.randn(1, 4, 8, 5, generator=g, dtype=torch.float64)
    mo = torch.rand(4, 6, 7, generator=g, dtype=torch.float64)
    ms = torch.rand(4, 8, 5, generator=g, dtype=torch.float64)
    mo[3] = 0.0
    ms[2] = 0.0
    ours = losses.luan_masked_style_loss(f, s, mo, ms)
    theirs = _their_masked_style_loss(f[0], s[0], mo, ms)
    assert ours.item() > 0 and torch.allclose(ours, theirs, rtol=1e-12)
    # hard masks: the Gram divisor C * sum(m) is the area normalisation's C * sum(m^2), so each label's term is
    # the area-normalised one times the label's share of the map
    lab = torch.randint(0, 2, (6, 7), generator=g)
    hard = torch.stack([lab == 0, lab == 1]).to(torch.float64)
    lab_s = torch.randint(0, 2, (8, 5), generator=g)
    hard_s = torch.stack([lab_s == 0, lab_s == 1]).to(torch.float64)
    g_o, g_s = losses.masked_gram_matrices(f, hard), losses.masked_gram_matrices(s, hard_s)
    expected = sum(hard[k].mean() * ((g_o[k] - g_s[k]) ** 2).mean() for k in range(2))
    assert torch.allclose(losses.luan_masked_style_loss(f, s, hard, hard_s), expected, rtol=1e-12)


def test_mask_index_sums_are_the_mask_sums():
    g = torch.Generator().manual_seed(3)
    soft = torch.rand(3, 5, 4, generator=g, dtype=torch.float64)
    soft[1] = torch.where(soft[1] > 0.5, soft[1], torch.zeros_like(soft[1]))
    soft[2] = 0.0
    for masks in (soft, (soft > 0.5).to(torch.float64)):
        idx = losses.MaskIndex.from_masks(masks)
        assert torch.allclose(idx.sums, masks.sum((1, 2)), rtol=1e-12)


def test_all_ones_mask_equals_style_loss():
    g = torch.Generator().manual_seed(0)
    out = torch.rand(1, 4, 6, 5, generator=g)
    sty = torch.rand(1, 4, 7, 3, generator=g)
    ones_o, ones_s = torch.ones(1, 6, 5), torch.ones(1, 7, 3)
    masked = losses.masked_style_loss(out, sty, ones_o, ones_s)
    assert torch.allclose(masked, losses.style_loss(out, sty), rtol=1e-6)
    assert torch.allclose(losses.masked_gram_matrices(out, ones_o)[0], losses.gram_matrix(out), rtol=1e-6)


def _dense_masked_gram(f, m):
    """Straight from eq. (7): (F M_c)(F M_c)^T / (C * sum M_c^2)."""
    fm = f[0].reshape(f.shape[1], -1)
    out = []
    for mc in m.reshape(m.shape[0], -1):
        x = fm * mc
        out.append(x @ x.T / (f.shape[1] * (mc ** 2).sum()))
    return torch.stack(out)


def test_masked_gram_matches_dense_reference_soft_masks():
    g = torch.Generator().manual_seed(1)
    f = torch.randn(1, 5, 8, 7, generator=g, dtype=torch.float64)
    probs = torch.softmax(torch.randn(3, 8, 7, generator=g, dtype=torch.float64) * 2, 0)
    soft = torch.where(probs >= 0.2, probs, torch.zeros_like(probs))
    assert torch.allclose(losses.masked_gram_matrices(f, soft), _dense_masked_gram(f, soft), rtol=1e-10)


def test_one_hot_soft_masks_equal_hard_masks():
    g = torch.Generator().manual_seed(2)
    f_out = torch.randn(1, 3, 6, 6, generator=g, dtype=torch.float64)
    f_sty = torch.randn(1, 3, 5, 4, generator=g, dtype=torch.float64)
    lab_o = torch.randint(0, 3, (6, 6), generator=g)
    lab_s = torch.arange(20).reshape(5, 4) % 3
    hard_o = torch.nn.functional.one_hot(lab_o, 3).permute(2, 0, 1).double()
    hard_s = torch.nn.functional.one_hot(lab_s, 3).permute(2, 0, 1).double()
    # "soft" probabilities that are one-hot up to rounding, thresholded like theta_s does
    soft_o = torch.softmax(hard_o * 60.0, 0)
    soft_o = torch.where(soft_o >= 0.2, soft_o, torch.zeros_like(soft_o))
    soft_s = torch.softmax(hard_s * 60.0, 0)
    soft_s = torch.where(soft_s >= 0.2, soft_s, torch.zeros_like(soft_s))
    a = losses.masked_style_loss(f_out, f_sty, hard_o, hard_s)
    b = losses.masked_style_loss(f_out, f_sty, soft_o, soft_s)
    assert a.item() > 0
    assert torch.allclose(a, b, rtol=1e-12)


def test_masked_loss_separates_regions():
    # Output region A looks like style region A: the masked loss is ~0 while the global one is not.
    g = torch.Generator().manual_seed(3)
    fa, fb = torch.randn(1, 3, 4, 4, generator=g), torch.randn(1, 3, 4, 4, generator=g) * 5
    out = torch.cat([fa, fb], dim=3)              # left A, right B
    sty = torch.cat([fb, fa], dim=3)              # swapped layout
    m_out = torch.stack([torch.cat([torch.ones(4, 4), torch.zeros(4, 4)], 1),
                         torch.cat([torch.zeros(4, 4), torch.ones(4, 4)], 1)])
    m_sty = m_out.flip(0)
    assert losses.masked_style_loss(out, sty, m_out, m_sty).item() < 1e-10
    assert losses.masked_style_loss(out, sty, m_out, m_out).item() > 1e-2


def test_empty_label_contributes_nothing():
    g = torch.Generator().manual_seed(4)
    out, sty = torch.randn(1, 2, 4, 4, generator=g), torch.randn(1, 2, 4, 4, generator=g)
    m1 = torch.stack([torch.ones(4, 4), torch.zeros(4, 4)])
    m2 = torch.stack([torch.ones(4, 4), torch.ones(4, 4)])
    loss = losses.masked_style_loss(out, sty, m1, m2)
    assert torch.isfinite(loss)
    assert torch.allclose(loss, losses.style_loss(out, sty))


@pytest.mark.parametrize("name", ["content", "similarity", "style", "masked"])
def test_gradcheck(name):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(1, 3, 4, 5, generator=g, dtype=torch.float64)
    masks = torch.softmax(torch.randn(2, 4, 5, generator=g, dtype=torch.float64), 0)
    fn = {
        "content": lambda a: losses.content_loss(a, t),
        # offset keeps |a - t| away from the kink at 0
        "similarity": lambda a: losses.similarity_loss(a, t + 10.0),
        "style": lambda a: losses.style_loss(a, t),
        "masked": lambda a: losses.masked_style_loss(a, t, masks, masks),
    }[name]
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-6)


def test_shape_errors_are_clear():
    with pytest.raises(PhotostyleError, match="differ in shape"):
        losses.content_loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 4, 4))
    with pytest.raises(PhotostyleError, match="resize the masks"):
        losses.masked_gram_matrices(torch.zeros(1, 2, 3, 3), torch.ones(1, 4, 4))
    with pytest.raises(PhotostyleError, match="channel"):
        losses.style_loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 3, 3))


def test_similarity_loss_matches_autograd_reference():
    g = torch.Generator().manual_seed(6)
    a = torch.randn(1, 4, 9, 7, generator=g, requires_grad=True)
    b = torch.randn(1, 4, 9, 7, generator=g)
    b[0, 0, 0, :3] = a.detach()[0, 0, 0, :3]  # ties: subgradient 0, as torch.abs
    losses.similarity_loss(a, b).backward()
    ref = a.detach().clone().requires_grad_(True)
    torch.mean(torch.abs(ref - b)).backward()
    assert torch.allclose(losses.similarity_loss(a, b), torch.mean(torch.abs(ref - b)))
    assert torch.allclose(a.grad, ref.grad)


@pytest.mark.parametrize("binary", [True, False])
def test_memory_format_does_not_change_grams(binary):
    g = torch.Generator().manual_seed(7)
    f = torch.randn(1, 6, 13, 11, generator=g, dtype=torch.float64)
    if binary:
        lab = torch.randint(0, 3, (13, 11), generator=g)
        m = torch.nn.functional.one_hot(lab, 3).permute(2, 0, 1).double()
    else:
        m = torch.softmax(torch.randn(3, 13, 11, generator=g, dtype=torch.float64) * 3, 0)
        m = torch.where(m >= 0.2, m, torch.zeros_like(m))
    ref = _dense_masked_gram(f, m)
    cl = f.contiguous(memory_format=torch.channels_last)
    idx = losses.MaskIndex.from_masks(m)
    assert (idx.weights is None) == binary
    assert idx.offsets[-1] == int((m > 0).sum())
    assert torch.allclose(losses.masked_gram_matrices(f, idx), ref, rtol=1e-10)
    assert torch.allclose(losses.masked_gram_matrices(cl, idx), ref, rtol=1e-10)
    assert torch.allclose(losses.gram_matrix(cl), losses.gram_matrix(f), rtol=1e-12)
    x = cl.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: losses.masked_gram_matrices(a, idx).sum(), (x,), eps=1e-6, atol=1e-6)


def test_onednn_products_equal_blas():
    """The CPU kernels (1x1-convolution gradients) against plain matrix products, float32."""
    g = torch.Generator().manual_seed(8)
    rows = torch.randn(gram_module._ONEDNN_MIN_ROWS + 37, 24, generator=g)
    assert gram_module._use_onednn(rows) == torch.backends.mkldnn.is_available()
    sym = torch.randn(24, 24, generator=g)
    sym = sym + sym.T
    ref_gram = rows.double().T @ rows.double()
    gram = losses.rows_gram(rows)
    assert torch.equal(gram, gram.T)
    assert torch.allclose(gram.double(), ref_gram, rtol=1e-4, atol=1e-3)
    out = losses.rows_times(rows, sym)
    assert out.shape == rows.shape and out.is_contiguous()
    assert torch.allclose(out.double(), rows.double() @ sym.double(), rtol=1e-4, atol=1e-3)
    # float64 and short inputs take the BLAS path
    assert not gram_module._use_onednn(rows.double()) and not gram_module._use_onednn(rows[:10])


def test_pixel_rows_are_the_feature_matrix_transposed_in_either_memory_format():
    g = torch.Generator().manual_seed(11)
    f = torch.randn(1, 5, 4, 3, generator=g, dtype=torch.float64)
    for features in (f, f.contiguous(memory_format=torch.channels_last), f[0]):
        rows = losses.pixel_rows(features)
        assert rows.shape == (12, 5) and torch.equal(rows, losses.feature_matrix(features).T)
    with pytest.raises(PhotostyleError, match="batch of one"):
        losses.feature_matrix(torch.zeros(2, 5, 4, 3))


def test_segment_grams_are_the_dense_per_label_sums():
    """sum_p m_l(p)^2 f(p) f(p)^T per label, soft masks with an empty label; a gradcheck of the backward."""
    g = torch.Generator().manual_seed(12)
    f = torch.randn(1, 3, 4, 5, generator=g, dtype=torch.float64)
    masks = torch.rand(3, 4, 5, generator=g, dtype=torch.float64)
    masks[1] = 0.0
    idx = losses.MaskIndex.from_masks(masks)
    rows = losses.pixel_rows(f)
    dense = torch.stack([(rows * m.reshape(-1, 1) ** 2).T @ rows for m in masks])
    assert torch.allclose(losses.segment_grams(rows, idx), dense, rtol=1e-12, atol=1e-14)
    x = rows.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: losses.segment_grams(a, idx), (x,), eps=1e-6, atol=1e-6)


def test_the_package_re_exports_every_concept_module_name():
    """``photostyle_lib.losses`` is the one import callers need: each module's public names are the package's."""
    import importlib

    for name in ("gram", "terms", "mask_index", "masked", "variants"):
        module = importlib.import_module(f"photostyle_lib.losses.{name}")
        public = [n for n, v in vars(module).items() if not n.startswith("_") and getattr(v, "__module__", None)
                  == module.__name__]
        assert public and all(getattr(losses, n) is getattr(module, n) for n in public), name
        assert set(public) <= set(losses.__all__), name
