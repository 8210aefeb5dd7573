"""The objective of eq. (10) on its own (engine/objective.py): its terms against the reference
definitions, and its gradient against central finite differences, in float64."""

import numpy as np
import pytest
import torch

from photostyle_lib import losses
from photostyle_lib.engine.config import TransferConfig
from photostyle_lib.engine.inputs import starting_image
from photostyle_lib.engine.objective import build_objective, fused_relus
from photostyle_lib.features.vgg import LAYER_NAMES, VGGFeatures, layer_size
import torchvision
from photostyle_lib.io.images import tensor_to_array
from photostyle_lib.photoreal import matting
from photostyle_lib.semantic.masks import SemanticMasks, resize_masks

#: Every term on, weighted so that each is about 0.5-1 at the test's images (random features are
#: O(1e-2)): the gradient check then sees the network's terms, not only the Laplacian's and TV's.
CFG = TransferConfig(weights="random", device="cpu", content_weight=100.0, style_weight=1e7, similarity_weight=3.0,
                     use_regularization=True, regularization_weight=0.01, tv_weight=0.01, postprocess="none")


@pytest.fixture(scope="module")
def setup():
    """A (1, 3, 20, 24) content, a (1, 3, 16, 16) style, hard two-label masks and a float64 random VGG-19."""
    g = torch.Generator().manual_seed(3)
    y, x = torch.meshgrid(torch.linspace(0, 1, 20, dtype=torch.float64),
                          torch.linspace(0, 1, 24, dtype=torch.float64), indexing="ij")
    content = (torch.stack([y, x, (x + y) / 2]).unsqueeze(0) * 0.8 + 0.1
               + 0.05 * torch.rand(1, 3, 20, 24, generator=g, dtype=torch.float64))
    style = torch.rand(1, 3, 16, 16, generator=g, dtype=torch.float64)
    cm, sm = torch.zeros(2, 20, 24), torch.zeros(2, 16, 16)
    cm[0, :9], cm[1, 9:] = 1, 1
    sm[0, :, :7], sm[1, :, 7:] = 1, 1
    masks = SemanticMasks(cm, sm, ("sky", "ground"), kind="gold")
    vgg = VGGFeatures("random", CFG.all_layers(), seed=0).double()  # its own network: the cached one stays float32
    return content, style, masks, vgg, build_objective(content, style, CFG, masks, vgg)


def _pooled_like_their_code(masks, layer):
    """The masks as their code brings them to ``layer``: every nn.MaxPool2d(2, 2) of VGG-19 before it, applied."""
    pools = [m for m in torchvision.models.vgg19(weights=None).features[:LAYER_NAMES.index(layer)]
             if isinstance(m, torch.nn.MaxPool2d)]
    x = masks.unsqueeze(0).float()
    for pool in pools:
        x = pool(x)
    return x[0]


def _reference_terms(x, content, style, masks, vgg):
    """Every weighted term of eq. (10) from the reference definitions (losses, scipy's Laplacian)."""
    with torch.no_grad():
        fx, fc, fs = vgg(x), vgg(content), vgg(style)
    h, w = content.shape[-2:]
    m = masks.resized((h, w), tuple(style.shape[-2:]), "avg")
    style_term = 0.0
    for n in CFG.style_layers:
        mc, ms = _pooled_like_their_code(m.content, n).double(), _pooled_like_their_code(m.style, n).double()
        style_term += losses.authors_masked_style_loss(fx[n], fs[n], mc, ms).item()
    lap = matting.matting_laplacian(tensor_to_array(content), eps=CFG.matting_eps, radius=CFG.matting_radius)
    v = x[0].reshape(3, -1).numpy().T  # (H*W, 3): V_c as columns
    d = x[0].numpy()
    tv = float((((d[:, :-1, :-1] - d[:, :-1, 1:]) ** 2) + ((d[:, :-1, :-1] - d[:, 1:, :-1]) ** 2)).sum())
    return {
        "content": CFG.content_weight * sum(losses.content_loss(fx[n], fc[n]).item() for n in CFG.content_layers),
        "style": CFG.style_weight * style_term,
        "similarity": CFG.similarity_weight * sum(losses.similarity_loss(fx[n], fc[n]).item()
                                                  for n in CFG.similarity_layers),
        "regularization": CFG.regularization_weight * float(np.einsum("pc,pc->", v, lap @ v)),  # eq. (4)
        "tv": CFG.tv_weight * tv,
    }


def test_terms_equal_the_reference_definitions(setup):
    content, style, masks, vgg, objective = setup
    g = torch.Generator().manual_seed(4)
    x = (content + 0.1 * torch.randn(content.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    with torch.no_grad():
        total, terms = objective.evaluate(x)
    expected = _reference_terms(x, content, style, masks, vgg)
    assert list(terms) == ["content", "style", "similarity", "regularization", "tv"]
    for name, value in expected.items():
        assert value > 0 and terms[name].item() == pytest.approx(value, rel=1e-9), name
    assert total.item() == pytest.approx(sum(expected.values()), rel=1e-12)


def test_at_the_content_the_content_terms_vanish(setup):
    """f(content): the content (eq. 2) and similarity (eq. 8) terms are exactly 0; the total is the rest."""
    content, style, masks, vgg, objective = setup
    x = starting_image(content, style, CFG, masks, None)
    assert x.requires_grad and torch.equal(x.detach(), content)
    with torch.no_grad():
        total, terms = objective.evaluate(x)
    assert terms["content"].item() == 0.0 and terms["similarity"].item() == 0.0
    expected = _reference_terms(x.detach(), content, style, masks, vgg)
    assert terms["style"].item() == pytest.approx(expected["style"], rel=1e-9) and terms["style"].item() > 0
    assert total.item() == pytest.approx(expected["style"] + expected["regularization"] + expected["tv"], rel=1e-12)


def test_layer_terms_are_each_layers_reference_terms_and_sum_to_evaluate(setup):
    """Objective.layer_terms_at: every layer's weighted terms against the reference definitions
    of that layer alone, and their sums against evaluate()'s terms."""
    content, style, masks, vgg, objective = setup
    g = torch.Generator().manual_seed(6)
    x = (content + 0.1 * torch.randn(content.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    per_layer = objective.layer_terms_at(x)
    assert list(per_layer) == [n for n in vgg.names if n in CFG.all_layers()]
    with torch.no_grad():
        fx, fc, fs = vgg(x), vgg(content), vgg(style)
        _, terms = objective.evaluate(x)
    h, w = content.shape[-2:]
    m = masks.resized((h, w), tuple(style.shape[-2:]), "avg")
    for n, t in per_layer.items():
        if n in CFG.style_layers:
            mc, ms = _pooled_like_their_code(m.content, n).double(), _pooled_like_their_code(m.style, n).double()
            ref = CFG.style_weight * losses.authors_masked_style_loss(fx[n], fs[n], mc, ms).item()
            assert ref > 0 and t["style"] == pytest.approx(ref, rel=1e-9), n
        else:
            assert t["style"] == 0.0, n
        ref_c = CFG.content_weight * losses.content_loss(fx[n], fc[n]).item() if n in CFG.content_layers else 0.0
        ref_s = CFG.similarity_weight * losses.similarity_loss(fx[n], fc[n]).item() if n in CFG.similarity_layers else 0.0
        assert t["content"] == pytest.approx(ref_c, rel=1e-9, abs=0.0), n
        assert t["similarity"] == pytest.approx(ref_s, rel=1e-9, abs=0.0), n
    for name in ("content", "style", "similarity"):
        assert sum(t[name] for t in per_layer.values()) == pytest.approx(terms[name].item(), rel=1e-12), name


def test_gradient_equals_central_differences(setup):
    content, _, _, _, objective = setup
    g = torch.Generator().manual_seed(5)
    x0 = (content + 0.1 * torch.randn(content.shape, generator=g, dtype=torch.float64)).clamp(0.05, 0.95)
    x = x0.clone().requires_grad_(True)
    total, _ = objective.evaluate(x)
    total.backward()
    eps = 1e-6
    for c, i, j in [(0, 3, 5), (1, 10, 17), (2, 18, 2), (0, 0, 0)]:
        plus, minus = x0.clone(), x0.clone()
        plus[0, c, i, j] += eps
        minus[0, c, i, j] -= eps
        with torch.no_grad():
            fd = (objective.evaluate(plus)[0] - objective.evaluate(minus)[0]).item() / (2 * eps)
        assert x.grad[0, c, i, j].item() == pytest.approx(fd, rel=1e-5, abs=1e-9 * x.grad.abs().max().item())


def test_fused_relus_take_over_only_an_untapped_relu():
    computed = ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1", "conv2_1", "relu2_1")
    assert fused_relus(computed, {"conv1_1": 0, "conv1_2": 0, "conv2_1": 0}) == \
        {"conv1_1": True, "conv1_2": True, "conv2_1": True}
    assert fused_relus(computed, {"conv1_1": 0, "relu1_1": 0}) == {"conv1_1": False, "relu1_1": False}
    assert fused_relus(computed, {"relu1_2": 0}) == {"relu1_2": False}  # followed by a pool
