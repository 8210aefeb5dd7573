"""VGG-19 feature extractor with the paper's layer names.

Layer names follow the convolution they come from: ``conv1_1`` ... ``conv5_4``
(features taken at the convolution output, before the ReLU, as the paper's
public code does), plus ``relu1_1`` ... and ``pool1`` ... for the other
stages. The network is truncated after the deepest layer in use, so the
paper's settings (nothing past ``conv3_1``) run only the first 11 modules.

Weights:

* ``"imagenet"`` -- torchvision's ``VGG19_Weights.IMAGENET1K_V1``, from the
  file named by ``$PHOTOSTYLE_VGG_WEIGHTS`` if set, else from torch hub's cache
  (``$TORCH_HOME/hub/checkpoints``, default ``~/.cache/torch/hub``),
  downloading it there when a network is available. When neither works a
  PhotostyleError says how to get the file. Never a silent fallback.
* ``"random"`` -- torchvision's initialisation under a fixed seed. Only for
  tests and smoke runs; everything made with it is labelled so downstream.
* a path -- a state dict of torchvision's ``vgg19`` (keys ``features.N.*``)
  or of its ``features`` block alone (keys ``N.*``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.metadata import file_digest

WEIGHTS_ENV_VAR = "PHOTOSTYLE_VGG_WEIGHTS"
IMAGENET_FILE = "vgg19-dcbb9e9d.pth"
IMAGENET_URL = "https://download.pytorch.org/models/" + IMAGENET_FILE
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision vgg19().features, block by block: conv counts per block 2, 2, 4, 4, 4.
_BLOCKS = (2, 2, 4, 4, 4)


def _layer_names() -> list[str]:
    names = []
    for b, n in enumerate(_BLOCKS, start=1):
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return names


#: Names of torchvision's ``vgg19().features`` modules, in order (37 names).
LAYER_NAMES: tuple[str, ...] = tuple(_layer_names())


def _build_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = 3
    for b, n in enumerate(_BLOCKS, start=1):
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


def imagenet_weights_path() -> Path:
    """Where torch hub keeps (or would keep) the ImageNet VGG-19 file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE


def weights_identity(weights: str | os.PathLike, seed: int = 0) -> tuple:
    """What a VGGFeatures built from ``weights`` depends on, for cache keys.

    "random": the seed. "imagenet": the file it resolves to
    ($PHOTOSTYLE_VGG_WEIGHTS, else torch hub's cache) with its size and
    modification time. A path: the same for that file. Missing files give
    ``None`` fields (building raises the clear error, or downloads).
    """
    if isinstance(weights, str) and weights == "random":
        return ("random", int(seed))
    if isinstance(weights, str) and weights == "imagenet":
        path = Path(os.environ.get(WEIGHTS_ENV_VAR) or imagenet_weights_path()).expanduser()
    else:
        path = Path(weights).expanduser()
    try:
        st = path.stat()
        return (str(weights), str(path), st.st_size, st.st_mtime_ns)
    except OSError:
        return (str(weights), str(path), None, None)


def _missing_weights_error(reason: str) -> PhotostyleError:
    target = imagenet_weights_path()
    return PhotostyleError(
        f"ImageNet VGG-19 weights are not available ({reason}). Get them on a machine with internet: "
        f"`python -c \"import torchvision; torchvision.models.vgg19(weights='IMAGENET1K_V1')\"` "
        f"(or download {IMAGENET_URL}) and copy the file to {target}, or set {WEIGHTS_ENV_VAR}=/path/to/"
        f"{IMAGENET_FILE}. For tests and smoke runs only, ask for random weights explicitly "
        "(weights='random', CLI --weights random).")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise PhotostyleError(f"VGG-19 weights file not found: {path}; check the path "
                              f"(or unset {WEIGHTS_ENV_VAR} to use torch hub's cache)")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt / foreign file
        raise PhotostyleError(f"cannot read VGG-19 weights from {path} ({type(exc).__name__}: {exc}); "
                              f"re-download {IMAGENET_URL}") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise PhotostyleError(f"{path} does not hold a state dict of VGG-19")
    if any(k.startswith("features.") for k in sd):
        sd = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
    return sd


class VGGFeatures(nn.Module):
    """VGG-19 features at named layers, for images in [0, 1].

    Args:
        weights: "imagenet", "random", or a path to a state-dict file.
        layers: names (from :data:`LAYER_NAMES`) this extractor returns; the
            network is cut after the deepest of them.
        seed: seed of the random initialisation (``weights="random"`` only).
        download: allow torch hub to download the ImageNet file when it is
            not cached (it fails fast and clearly when offline).

    Input: (B, 3, H, W) float in [0, 1]; ImageNet mean/std normalisation is
    applied inside. Output: dict layer name -> (B, C_l, H_l, W_l) features.
    Parameters are frozen (``requires_grad=False``); gradients flow to the input.

    Attributes:
        weights_label: human-readable provenance, e.g. "imagenet (torchvision
            IMAGENET1K_V1)" or "random (seed 0)" -- carried into metadata.
        is_random: True for random weights.
    """

    def __init__(self, weights: str | os.PathLike = "imagenet", layers: tuple[str, ...] | list[str] = ("conv3_1",),
                 *, seed: int = 0, download: bool = True) -> None:
        super().__init__()
        layers = tuple(layers)
        unknown = [n for n in layers if n not in LAYER_NAMES]
        if unknown or not layers:
            raise PhotostyleError(f"unknown VGG-19 layer name(s) {unknown or '(none given)'}; "
                                  f"use names like conv1_1, relu2_1, pool3 (known: {', '.join(LAYER_NAMES)})")
        self.layers = layers
        full = _build_features()
        self.is_random = False
        if isinstance(weights, str) and weights == "random":
            _random_init(full, seed)
            self.is_random = True
            self.weights_label = f"random (seed {int(seed)})"
        elif isinstance(weights, str) and weights == "imagenet":
            env = os.environ.get(WEIGHTS_ENV_VAR)
            if env:
                path = Path(env).expanduser()
                full.load_state_dict(self._checked(_read_state_dict(path), path))
                self.weights_label = f"imagenet (file {path}, sha256 {file_digest(path)[:12]})"
            else:
                path = imagenet_weights_path()
                if not path.is_file():
                    if not download:
                        raise _missing_weights_error(f"{path} does not exist and download=False")
                    try:
                        path.parent.mkdir(parents=True, exist_ok=True)
                        torch.hub.download_url_to_file(IMAGENET_URL, str(path), progress=True)
                    except Exception as exc:  # URLError, HTTPError, SSL, timeouts...
                        raise _missing_weights_error(f"download failed: {exc}") from None
                full.load_state_dict(self._checked(_read_state_dict(path), path))
                self.weights_label = "imagenet (torchvision IMAGENET1K_V1)"
        else:
            path = Path(weights).expanduser()
            full.load_state_dict(self._checked(_read_state_dict(path), path))
            self.weights_label = f"file {path} (sha256 {file_digest(path)[:12]})"
        deepest = max(LAYER_NAMES.index(n) for n in layers)
        self.body = nn.Sequential(*list(full.children())[: deepest + 1])
        self._names = LAYER_NAMES[: deepest + 1]
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @staticmethod
    def _checked(sd: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
        expected = _build_features().state_dict()
        missing = [k for k in expected if k not in sd]
        bad = [k for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
        if missing or bad:
            raise PhotostyleError(f"{path} is not a VGG-19 state dict (missing {missing[:3]}, "
                                  f"wrong shapes {bad[:3]}); use torchvision's {IMAGENET_FILE}")
        return {k: sd[k] for k in expected}

    def use_channels_last(self, flag: bool = True) -> "VGGFeatures":
        """Run the convolutions in channels-last memory format (faster on CPUs with oneDNN).

        The input keeps its own layout (optimisers flatten it); the returned
        features are then channels-last tensors. Returns self.
        """
        self.channels_last = bool(flag)
        self.body.to(memory_format=torch.channels_last if flag else torch.contiguous_format)
        return self

    def forward(self, image: torch.Tensor,
                taps: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None) -> dict[str, torch.Tensor]:
        """Features at ``self.layers``; (B, 3, H, W) in [0, 1] -> dict of (B, C_l, H_l, W_l).

        taps: optional functions applied to named layers' outputs in flight;
            what a tap returns is what the next module receives (the engine's
            fused loss nodes, :func:`photostyle_lib.layer_loss.layer_losses`).
            A tap with a true attribute ``applies_relu`` returns the ReLU of
            its layer's output and takes the place of the ReLU module that
            follows (which is then not run; the dict still gives the
            convolution's output under its name). Taps must be on layers the
            network computes (not past its deepest).
        """
        taps = taps or {}
        extra = [n for n in taps if n not in self._names]
        if extra:
            raise PhotostyleError(f"taps on {extra}, which this extractor (cut after {self._names[-1]}) "
                                  f"does not compute; build VGGFeatures with those layers")
        x = (image - self.mean) / self.std
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


def layer_size(name: str, height: int, width: int) -> tuple[int, int]:
    """Spatial size (H_l, W_l) of layer ``name`` for an input of (height, width)."""
    idx = LAYER_NAMES.index(name)
    pools = sum(1 for n in LAYER_NAMES[:idx + 1] if n.startswith("pool"))
    h, w = height, width
    for _ in range(pools):
        h, w = h // 2, w // 2
    return h, w
