"""The judge: style and structure measured in a network no method optimises (HED's VGG-16 and edges)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from skimage.metrics import structural_similarity

from photostyle_lib import losses
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import as_image_array
from photostyle_lib.semantic.masks import resize_masks
from photostyle_lib.features.vgg import VGGFeatures, layer_size
from photostyle_lib.metrics.gram import GRAM_LAYERS, features_and_masks
from photostyle_lib.metrics.inputs import image_tensor
from photostyle_lib.metrics.structure import SSIM_SIGMA


@dataclass(frozen=True)
class Judge:
    """The networks of :func:`judge_gram_distance` and :func:`edge_ssim`, or None with the reason.

    Attributes
    ----------
    features : VGGFeatures or None
        HED's VGG-16 on :data:`GRAM_LAYERS` (a different network from the VGG-19 the
        methods optimise in, trained for another task).
    edges : HEDEdges or None
        HED's edge detector (the same weights file).
    note : str
        Provenance, or "skipped: <why>".
    """

    features: VGGFeatures | None
    edges: Any
    note: str

    @property
    def available(self) -> bool:
        """Whether the judge is loaded (else its measures are NaN and ``note`` says why)."""
        return self.features is not None


def load_judge(weights: str | None = "hed-vgg16", *, device: str = "cpu") -> Judge:
    """The judge networks (HED's VGG-16 and its edge detector); a missing package gives NaN measures.

    ``weights`` None skips the judge on purpose; only ``"hed-vgg16"`` has an edge head.

    Raises
    ------
    PhotostyleError
        If ``weights`` is neither None nor ``"hed-vgg16"``.
    """
    if weights is None:
        return Judge(None, None, "skipped: not requested (judge=None)")
    if weights != "hed-vgg16":
        raise PhotostyleError(f"the judge is HED's network (judge='hed-vgg16'), got {weights!r}")
    from photostyle_lib.features.hed_edges import HEDEdges
    try:
        feats = VGGFeatures(weights, GRAM_LAYERS, download=False).to(device)
        edges = HEDEdges().to(device)
    except PhotostyleError as exc:
        return Judge(None, None, f"skipped: {exc}")
    return Judge(feats, edges, f"judge: {feats.weights_label}")


def judge_gram_distance(output: Any, style: Any, content_masks: Any = None, style_masks: Any = None, *,
                        judge: Judge) -> float:
    """Relative Frobenius distance of per-label Grams in the judge's network, area-weighted.

    For each layer l of :data:`GRAM_LAYERS` and each label k present in both images:
    ``d_lk = ||G_lk[O] - G_lk[S]||_F / ||G_lk[S]||_F`` with ``G`` the area-normalised
    masked Gram (:func:`losses.masked_gram_matrices`; masks brought to each layer by
    area averaging). The result is ``sum_k a_k mean_l d_lk / sum_k a_k`` with ``a_k``
    the label's area in the output. Dimensionless, scale-free (a network's feature
    scale cancels); no method optimises it (the judge is not the optimised network).

    Parameters
    ----------
    output, style : images as in :func:`style_distance`.
    content_masks, style_masks : as in :func:`style_distance` (None: one label per image).
    judge : from :func:`load_judge`; unavailable gives NaN.

    Returns
    -------
    float >= 0, NaN when skipped. Lower is closer to the style.
    """
    if not judge.available:
        return float("nan")
    net = judge.features
    out, sty, masks, fo, fs = features_and_masks(net, output, style, content_masks, style_masks)
    device = next(net.buffers()).device
    with torch.no_grad():
        per_label = []
        for name in GRAM_LAYERS:
            mo = resize_masks(masks[0], layer_size(name, *out.shape[:2]), "avg").to(device)
            ms = resize_masks(masks[1], layer_size(name, *sty.shape[:2]), "avg").to(device)
            go = losses.masked_gram_matrices(fo[name].double(), mo.double())
            gs = losses.masked_gram_matrices(fs[name].double(), ms.double())
            per_label.append(torch.linalg.matrix_norm(go - gs) / torch.linalg.matrix_norm(gs).clamp_min(1e-300))
        area = masks[0].reshape(masks[0].shape[0], -1).double().sum(1)
        valid = (area > 0) & (masks[1].reshape(masks[1].shape[0], -1).sum(1) > 0)
        if not bool(valid.any()):
            return float("nan")
        d = torch.stack(per_label).mean(0).cpu()
        weight = area * valid
    return float((d * weight).sum() / weight.sum())


def edge_ssim(output: Any, content: Any, *, judge: Judge) -> float:
    """SSIM between the HED edge maps of the output and the content (WCT2's structure measure).

    Edge maps from :class:`~photostyle_lib.features.hed_edges.HEDEdges` (probabilities in
    [0, 1]); SSIM by scikit-image (Gaussian window, sigma 1.5, data range 1).

    Parameters
    ----------
    output, content : images as in :func:`structure_score`, the same size (>= 16 px a side).
    judge : from :func:`load_judge`; unavailable gives NaN.

    Returns
    -------
    float in [-1, 1], NaN when skipped; 1 = the content's edges exactly. Higher is better.

    Raises
    ------
    PhotostyleError
        If the images differ in size.
    """
    if not judge.available:
        return float("nan")
    out = as_image_array("output", output)
    con = as_image_array("content", content)
    if out.shape != con.shape:
        raise PhotostyleError(f"output {out.shape[:2]} and content {con.shape[:2]} differ in size")
    device = next(judge.edges.buffers()).device
    with torch.no_grad():
        eo = judge.edges(image_tensor(out, device))[0, 0].double().cpu().numpy()
        ec = judge.edges(image_tensor(con, device))[0, 0].double().cpu().numpy()
    return float(structural_similarity(eo, ec, data_range=1.0, gaussian_weights=True, sigma=SSIM_SIGMA,
                                       use_sample_covariance=False))
