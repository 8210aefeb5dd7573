"""The masked Gram (style-loss) distance in VGG-19 space, eqs. (6)-(7), with ImageNet weights or NaN."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from photostyle_lib import losses
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import as_image_array
from photostyle_lib.semantic.masks import resize_masks
from photostyle_lib.features.vgg import VGGFeatures, layer_size
from photostyle_lib.metrics.inputs import aligned_masks, image_tensor


#: Layers of the Gram distance: the paper's style layers (section 4).
GRAM_LAYERS = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1")


@dataclass(frozen=True)
class GramVGG:
    """The network of :func:`gram_distance`, or None with the reason it is missing.

    Attributes
    ----------
    features : VGGFeatures or None
        A :class:`VGGFeatures` on :data:`GRAM_LAYERS`, or None.
    note : str
        Its weights' provenance, or "skipped: <why>" when ``features`` is None.
    """

    features: VGGFeatures | None
    note: str

    @property
    def available(self) -> bool:
        """Whether the network is loaded (else :func:`gram_distance` gives NaN and ``note`` says why)."""
        return self.features is not None


def load_gram_vgg(weights: str | None = "imagenet", *, device: str = "cpu") -> GramVGG:
    """VGG-19 for :func:`gram_distance`, never downloading.

    The Gram distance measures style in the feature space of a network that has
    learned what images look like; with random weights it measures nothing
    useful, so the metric is only computed with the weights asked for here
    (ImageNet by default). When they are not on this machine the
    PhotostyleError of ``VGGFeatures(weights, download=False)`` is caught and
    returned as the note, and :func:`gram_distance` gives NaN. ``weights=None``
    skips the metric on purpose.
    """
    if weights is None:
        return GramVGG(None, "skipped: not requested (weights=None)")
    try:
        vgg = VGGFeatures(weights, GRAM_LAYERS, download=False).to(device)
    except PhotostyleError as exc:
        return GramVGG(None, f"skipped: {exc}")
    note = vgg.weights_label + (" -- random weights: not a meaningful style measure" if vgg.is_random else "")
    return GramVGG(vgg, note)


def features_and_masks(net: VGGFeatures, output: Any, style: Any, content_masks: Any, style_masks: Any):
    """What :func:`gram_distance` and :func:`judge_gram_distance` start from.

    Parameters
    ----------
    net : VGGFeatures
        The network whose features are taken (no grad, on its device).
    output, style : array (H, W, 3) or tensor (1, 3, H, W), float in [0, 1]
    content_masks, style_masks : as in :func:`~photostyle_lib.metrics.colour_distance.style_distance`

    Returns
    -------
    (out, sty, masks, fo, fs)
        Both images as (H, W, 3) arrays; their aligned (L, H, W) mask stacks (one
        all-ones label each without masks); ``net``'s features of both, dicts layer -> (1, C, h, w).
    """
    out = as_image_array("output", output)
    sty = as_image_array("style", style)
    masks = aligned_masks(content_masks, style_masks, out.shape[:2], sty.shape[:2])
    if masks is None:
        masks = (torch.ones(1, *out.shape[:2]), torch.ones(1, *sty.shape[:2]))
    device = next(net.buffers()).device
    with torch.no_grad():
        fo, fs = net(image_tensor(out, device)), net(image_tensor(sty, device))
    return out, sty, masks, fo, fs


def gram_distance(output: Any, style: Any, content_masks: Any = None, style_masks: Any = None, *,
                  vgg: GramVGG | VGGFeatures | None) -> float:
    """Masked Gram distance in VGG-19 space: the paper's style loss, unweighted.

    Sum over :data:`GRAM_LAYERS` of the area-weighted mean over labels of the
    mean squared difference between the per-label Gram matrices of the output
    (content masks) and the style (style masks), eqs. (6)-(7) with the
    normalisation of ``losses.masked_gram_matrices``; without masks one label
    covering each image (eq. 3). Masks are brought to each layer's size by
    area averaging; labels empty in either image are left out. Label weights:
    their area in the output.

    Parameters
    ----------
    output, style : images as in :func:`style_distance`.
    content_masks, style_masks : as in :func:`style_distance`.
    vgg : from :func:`load_gram_vgg` (or a VGGFeatures whose layers include
        :data:`GRAM_LAYERS`); None or an unavailable one gives NaN.

    Returns
    -------
    float >= 0 (squared VGG-activation units), NaN when skipped. Lower is better.

    Raises
    ------
    PhotostyleError
        The VGG given lacks one of :data:`GRAM_LAYERS`, an input is not an image, or the masks
        are malformed (as in :func:`region_style_distances`).
    """
    net = vgg.features if isinstance(vgg, GramVGG) else vgg
    if net is None:
        return float("nan")
    missing = [n for n in GRAM_LAYERS if n not in net.layers]
    if missing:
        raise PhotostyleError(f"the VGG given lacks layers {missing}; build it with load_gram_vgg()")
    out, sty, masks, fo, fs = features_and_masks(net, output, style, content_masks, style_masks)
    device = next(net.buffers()).device
    with torch.no_grad():
        total = 0.0
        for name in GRAM_LAYERS:
            mo = resize_masks(masks[0], layer_size(name, *out.shape[:2]), "avg").to(device)
            ms = resize_masks(masks[1], layer_size(name, *sty.shape[:2]), "avg").to(device)
            go = losses.masked_gram_matrices(fo[name], mo)
            gs = losses.masked_gram_matrices(fs[name], ms)
            area_o = mo.reshape(mo.shape[0], -1).sum(1)
            valid = (area_o > 0) & (ms.reshape(ms.shape[0], -1).sum(1) > 0)
            if not bool(valid.any()):
                continue
            per_label = ((go - gs) ** 2).mean(dim=(1, 2))
            weight = area_o * valid
            total += float((per_label * weight).sum() / weight.sum())
    return total
