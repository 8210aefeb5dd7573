"""The VGG-16 / VGG-19 layer stacks: layer names, torchvision's module layout, sizes, exact rescaling.

A network here is torchvision's ``vggNN().features`` block, an ``nn.Sequential`` of
3 x 3 convolutions (padding 1), ReLUs and 2 x 2 max-poolings; blocks 1-5 have
:data:`ARCHITECTURES` convolutions each. Layers are named after the convolution
they follow (``conv3_1``, ``relu3_1``, ``pool3``).
"""

from __future__ import annotations

import torch
from torch import nn

from photostyle_lib.errors import PhotostyleError


#: Convolutions per block.
ARCHITECTURES: dict[str, tuple[int, ...]] = {"vgg19": (2, 2, 4, 4, 4), "vgg16": (2, 2, 3, 3, 3)}
#: Network names as printed: "vgg19" -> "VGG-19".
NETWORK_NAMES = {"vgg19": "VGG-19", "vgg16": "VGG-16"}


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


def build_features(architecture: str = "vgg19") -> nn.Sequential:
    """torchvision's ``vggNN().features`` block, untrained (PyTorch's default initialisation).

    Parameters
    ----------
    architecture : "vgg19" | "vgg16"

    Returns
    -------
    nn.Sequential
        37 (VGG-19) or 31 (VGG-16) modules, named by :func:`layer_names` in order.
    """
    layers: list[nn.Module] = []
    in_ch = 3
    for b, n in enumerate(ARCHITECTURES[architecture], start=1):
        out_ch = min(64 * 2 ** (b - 1), 512)
        for _ in range(n):
            layers += [nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            in_ch = out_ch
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def random_init(features: nn.Sequential, seed: int) -> None:
    """torchvision's VGG initialisation (Kaiming normal, fan_out; zero bias), seeded."""
    gen = torch.Generator().manual_seed(int(seed))
    for m in features:
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            std = (2.0 / fan_out) ** 0.5
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
                m.bias.zero_()


def divide_activations(features: nn.Sequential, scale: float) -> None:
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
