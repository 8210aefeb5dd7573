"""The VGG feature extractor a run uses: built once per weights identity, checked, put on the device."""

from __future__ import annotations

import functools

import torch

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.features.vgg import VGGFeatures, weights_identity


def feature_extractor(weights: str, layers: tuple[str, ...], seed: int = 0, convention: str = "auto") -> VGGFeatures:
    """A VGGFeatures for ``weights`` and ``layers``, built once and reused.

    The reuse key is explicit: for "random" the seed; for "imagenet" the file
    it resolves to ($PHOTOSTYLE_VGG_WEIGHTS or torch hub's cache) with its
    size and modification time; for a path, the same. Changing the variable
    or replacing the file therefore builds a new network. The network is
    moved to the run's device by :func:`run_extractor`.

    Parameters
    ----------
    weights : str
        "imagenet", "random", another of ``vgg.NAMED_WEIGHTS``, or a state-dict path.
    layers : tuple of str
        Layer names the extractor returns (``vgg.LAYER_NAMES``).
    seed : int >= 0
        Seed of the random initialisation (used for random weights only).
    convention : str
        "auto", "torch" or "caffe" (``VGGFeatures``).

    Returns
    -------
    VGGFeatures
        The same object for the same identity, layers and convention (4 kept, least
        recently used dropped first).
    """
    key = weights_identity(weights, seed, convention)
    return _cached_extractor(key, weights, tuple(layers), int(seed) if str(weights).startswith("random") else 0,
                             convention)


@functools.lru_cache(maxsize=4)
def _cached_extractor(key: tuple, weights: str, layers: tuple[str, ...], seed: int, convention: str) -> VGGFeatures:
    return VGGFeatures(weights, layers, seed=seed, convention=convention)


def run_extractor(extractor: VGGFeatures | None, layers: tuple[str, ...], weights: str, seed: int, convention: str,
                  device: torch.device) -> VGGFeatures:
    """The extractor of one run, on ``device``, in the memory format the engine uses there.

    Parameters
    ----------
    extractor : VGGFeatures or None
        One to reuse (it must compute every layer of ``layers``); None builds (or reuses)
        :func:`feature_extractor`'s for ``weights``, ``seed`` and ``convention``.
    layers : tuple of str
        The layers the run's terms read (``TransferConfig.all_layers()``).
    weights, seed, convention
        As :func:`feature_extractor`.
    device : torch.device
        Where the run optimises.

    Returns
    -------
    VGGFeatures
        The extractor itself, moved to ``device``; channels-last convolutions on the CPU
        (about 25% faster with oneDNN, and the masked Grams then gather pixel rows
        without a copy), torch's default layout elsewhere.

    Raises
    ------
    PhotostyleError
        When the given extractor lacks some of ``layers``.
    """
    if extractor is None:
        extractor = feature_extractor(weights, layers, seed, convention)
    missing = [n for n in layers if n not in extractor.layers]
    if missing:
        raise PhotostyleError(f"the given extractor lacks layers {missing}; build VGGFeatures with {layers}")
    return extractor.to(device).use_channels_last(device.type == "cpu")
