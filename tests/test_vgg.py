"""VGG-19 extractor: layer names against torchvision, truncation, weights handling."""

import pytest
import torch
import torchvision

from photostyle_lib import vgg
from photostyle_lib.errors import PhotostyleError


def test_layer_names_match_torchvision_modules():
    tv = torchvision.models.vgg19(weights=None).features
    assert len(vgg.LAYER_NAMES) == len(tv)
    for name, module in zip(vgg.LAYER_NAMES, tv):
        kind = {"conv": torch.nn.Conv2d, "relu": torch.nn.ReLU, "pool": torch.nn.MaxPool2d}[name[:4]]
        assert isinstance(module, kind), name


def test_features_equal_torchvision_on_same_weights(tmp_path):
    tv = torchvision.models.vgg19(weights=None)
    torch.save(tv.state_dict(), tmp_path / "w.pth")
    ext = vgg.VGGFeatures(tmp_path / "w.pth", ("conv1_1", "conv2_2", "conv3_1"))
    x = torch.rand(1, 3, 32, 40)
    norm = (x - torch.tensor(vgg.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(vgg.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = tv.features[:11](norm)  # conv3_1 is module 10
        out = ext(x)
    assert torch.allclose(out["conv3_1"], ref, atol=1e-5)
    assert out["conv2_2"].shape == (1, 128, 16, 20)
    assert len(ext.body) == 11  # truncated after conv3_1
    assert ext.weights_label.startswith("file ")


def test_random_weights_are_seeded_and_labelled():
    a = vgg.VGGFeatures("random", ("conv1_2",), seed=3)
    b = vgg.VGGFeatures("random", ("conv1_2",), seed=3)
    c = vgg.VGGFeatures("random", ("conv1_2",), seed=4)
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(a(x)["conv1_2"], b(x)["conv1_2"])
    assert not torch.equal(a(x)["conv1_2"], c(x)["conv1_2"])
    assert a.is_random and a.weights_label == "random (seed 3)"
    assert not any(p.requires_grad for p in a.parameters())


def test_gradient_reaches_the_input():
    ext = vgg.VGGFeatures("random", ("conv2_1",))
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    ext(x)["conv2_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_missing_imagenet_weights_is_actionable(tmp_path, monkeypatch):
    monkeypatch.delenv(vgg.WEIGHTS_ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty hub cache
    with pytest.raises(PhotostyleError, match=r"PHOTOSTYLE_VGG_WEIGHTS.*weights='random'"):
        vgg.VGGFeatures("imagenet", download=False)


def test_env_var_and_bad_files(tmp_path, monkeypatch):
    monkeypatch.setenv(vgg.WEIGHTS_ENV_VAR, str(tmp_path / "nope.pth"))
    with pytest.raises(PhotostyleError, match="not found"):
        vgg.VGGFeatures("imagenet")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(PhotostyleError, match="cannot read"):
        vgg.VGGFeatures(tmp_path / "junk.pth")
    torch.save({"foo": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(PhotostyleError, match="not a VGG-19"):
        vgg.VGGFeatures(tmp_path / "other.pth")
    with pytest.raises(PhotostyleError, match="unknown VGG-19 layer"):
        vgg.VGGFeatures("random", ("conv9_9",))


def test_layer_size():
    assert vgg.layer_size("conv1_1", 437, 700) == (437, 700)
    assert vgg.layer_size("conv2_2", 437, 700) == (218, 350)
    assert vgg.layer_size("conv3_1", 437, 700) == (109, 175)
    ext = vgg.VGGFeatures("random", ("conv3_1",))
    assert tuple(ext(torch.rand(1, 3, 37, 50))["conv3_1"].shape[-2:]) == vgg.layer_size("conv3_1", 37, 50)
