"""The objective of eq. (10) as a function of the output image.

    f(x) = alpha * sum_l L_c^l + beta * sum_l L_s+^l + gamma * sum_l L_sim^l    (10)
           (+ lambda * L_m, eq. 4, when the regularisation is on)
           (+ tv * TV(x), Luan et al.'s smoothness term, when ``tv_weight > 0``)

:func:`build_objective` computes what does not depend on x once, under ``no_grad``: the
content features (targets of eqs. 2 and 8), the style Grams (eq. 3, or per label eqs. 6-7)
with the masks at every style layer (:func:`layer_masks`), one fused loss node per layer
(:class:`~photostyle_lib.features.layer_loss.LayerTerms`) and the content's matting
Laplacian (:func:`regularization_laplacian`). The returned :class:`Objective` is then a
function of x alone: :meth:`Objective.evaluate` runs the network once with the loss nodes
tapped into it and returns the total and its named terms. The optimisation loop, its
records and its stops live in :mod:`photostyle_lib.engine.optimise`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch

from photostyle_lib import losses
from photostyle_lib.features.layer_loss import LayerTerms, layer_losses
from photostyle_lib.features.vgg import VGGFeatures, layer_pools, layer_size
from photostyle_lib.io.images import tensor_to_array
from photostyle_lib.losses import MaskIndex
from photostyle_lib.photoreal import matting
from photostyle_lib.semantic.masks import SemanticMasks, pool_masks_like_network, resize_masks
from photostyle_lib.engine.config import TransferConfig


@dataclass(frozen=True)
class StyleTargets:
    """The style side of eq. (10) at every style layer, ready for :class:`LayerTerms`.

    Attributes
    ----------
    grams : dict of layer name to tensor (K, C, C)
        Target Gram matrices: K = 1 for the plain Gram (eq. 3, no masks), else one per
        label (eq. 7) in the config's ``style_normalization`` (with "authors_joint", the pair
        labels of :func:`losses.joint_gram_label_masks` too).
    index : dict of layer name to MaskIndex
        The output's masks at each layer (empty without masks).
    valid : dict of layer name to tensor (K,)
        "area" only: 1.0 for labels present in both images, else 0.0 (their terms skipped).
    norms : dict of layer name to tensor (K,) float64
        "authors": ``C * H_l * W_l`` for every label; "authors_joint": ``L * C * H_l * W_l``;
        "luan": C times each label's mask sum; absent for "area" (C times the label's own
        area, inside the loss node).
    label_weights : dict of layer name to tensor (K,)
        "authors": 1 / L (the MSE over L * C * C entries); "authors_joint": each block's
        weight; "luan": each label's mean content mask.
    """

    grams: dict[str, torch.Tensor]
    index: dict[str, MaskIndex]
    valid: dict[str, torch.Tensor]
    norms: dict[str, torch.Tensor]
    label_weights: dict[str, torch.Tensor]


@dataclass(frozen=True)
class Objective:
    """Eq. (10) as a function of the output image x (see the module docstring).

    Attributes
    ----------
    vgg : VGGFeatures
        The network, on the run's device.
    layer_terms : dict of layer name to LayerTerms
        One fused loss node per layer in use, weights alpha, beta, gamma folded in.
    fused_relu : dict of layer name to bool
        True where the tapped convolution is followed by an untapped ReLU: its loss node
        applies that ReLU itself and fuses the ReLU's backward with the terms' gradients.
    laplacian : torch sparse CSR (H*W, H*W), or None
        The content's matting Laplacian M_I (eq. 4) when the regularisation is on.
    regularization_weight : float
        lambda of eq. (4).
    tv_weight : float
        Weight of the total-variation term (0: off).
    use_similarity : bool
        Whether the L1 similarity term (eq. 8) is reported.
    """

    vgg: VGGFeatures
    layer_terms: Mapping[str, LayerTerms]
    fused_relu: Mapping[str, bool]
    laplacian: torch.Tensor | None
    regularization_weight: float
    tv_weight: float
    use_similarity: bool

    def evaluate(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """f(x) of eq. (10) and its weighted terms, with autograd through x.

        Parameters
        ----------
        x : tensor (1, 3, H, W) float32 in [0, 1], the content's size, on the network's device
            Not modified (the paper's clamp to [0, 1] is the optimisation loop's).

        Returns
        -------
        total : 0-d tensor
            The sum of the terms, in the loss's units (it scales with the weights).
        terms : dict of str to 0-d tensor
            "content" (alpha * sum_l L_c^l, eq. 2), "style" (beta * sum_l L_s+^l, eqs. 3, 6),
            then "similarity" (gamma * sum_l L_sim^l, eq. 8) when it is used,
            "regularization" (lambda * L_m, eq. 4) with the Laplacian, and "tv" when
            ``tv_weight > 0``; in that order.
        """
        collected: list[torch.Tensor] = []
        self.vgg(x, taps={n: _tap(t, self.fused_relu[n], collected) for n, t in self.layer_terms.items()})
        values = torch.stack(collected).sum(0)
        terms: dict[str, torch.Tensor] = {"content": values[0], "style": values[1]}
        if self.use_similarity:
            terms["similarity"] = values[2]
        if self.laplacian is not None:
            terms["regularization"] = self.regularization_weight * matting.photorealism_loss(x, self.laplacian)
        if self.tv_weight > 0:
            terms["tv"] = self.tv_weight * losses.total_variation(x)
        total = sum(terms.values())
        return total, terms

    def layer_terms_at(self, x: torch.Tensor) -> dict[str, dict[str, float]]:
        """The network's weighted terms of eq. (10) at x, layer by layer (a diagnostic).

        Parameters
        ----------
        x : tensor (1, 3, H, W) float in [0, 1], the content's size, on the network's device

        Returns
        -------
        dict of layer name to {"content", "style", "similarity"}: floats
            alpha * L_c^l (eq. 2), beta * L_s+^l (eqs. 3, 6) and gamma * L_sim^l (eq. 8) of
            each layer in use (0 where a layer has no such term), in the network's order.
            Summed over the layers they are :meth:`evaluate`'s "content", "style" and
            "similarity" terms; the image-space terms (regularisation, TV) are not per layer.
        """
        collected: list[torch.Tensor] = []
        with torch.no_grad():
            self.vgg(x, taps={n: _tap(t, self.fused_relu[n], collected) for n, t in self.layer_terms.items()})
        order = [n for n in self.vgg.names if n in self.layer_terms]  # the taps fire in the network's order
        return {n: {"content": float(v[0]), "style": float(v[1]), "similarity": float(v[2])}
                for n, v in zip(order, collected)}


def _tap(terms: LayerTerms, apply_relu: bool, collected: list[torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A VGG tap that runs one layer's fused loss node and appends its (3,) values to ``collected``."""
    def tap(features: torch.Tensor) -> torch.Tensor:
        features, values = layer_losses(features, terms, apply_relu)
        collected.append(values)
        return features
    tap.applies_relu = apply_relu  # type: ignore[attr-defined]
    return tap


def build_objective(content: torch.Tensor, style: torch.Tensor, cfg: TransferConfig, masks: SemanticMasks | None,
                    vgg: VGGFeatures) -> Objective:
    """Everything of eq. (10) that does not depend on x, computed once.

    Parameters
    ----------
    content : tensor (1, 3, H, W) float32 in [0, 1], on the network's device
    style : tensor (1, 3, Hs, Ws) float32 in [0, 1], on the network's device
    cfg : TransferConfig
        Weights, layers, mask handling and style normalisation.
    masks : SemanticMasks or None
        Aligned masks at any resolution (area-averaged to the images' sizes here), or
        None for the plain Gram style loss.
    vgg : VGGFeatures
        Computes every layer of ``cfg.all_layers()``.

    Returns
    -------
    Objective
    """
    h, w = content.shape[-2:]
    style_size = tuple(style.shape[-2:])
    layers = cfg.all_layers()
    use_sim = cfg.use_similarity and cfg.similarity_weight > 0
    with torch.no_grad():
        c_feats = vgg(content)
        s_feats = vgg(style)
        targets = style_targets(c_feats, s_feats, cfg, masks, (h, w), style_size, content.device)
        layer_terms = {}
        for n in layers:
            layer_terms[n] = LayerTerms(
                content_target=c_feats[n].detach() if n in cfg.content_layers else None,
                content_weight=cfg.content_weight,
                style_target=targets.grams.get(n), style_index=targets.index.get(n),
                style_valid=targets.valid.get(n), style_weight=cfg.style_weight, style_norm=targets.norms.get(n),
                style_label_weights=targets.label_weights.get(n),
                similarity_target=c_feats[n].detach() if use_sim and n in cfg.similarity_layers else None,
                similarity_weight=cfg.similarity_weight if use_sim else 0.0)
        del c_feats, s_feats
    return Objective(vgg=vgg, layer_terms=layer_terms, fused_relu=fused_relus(vgg.names, layer_terms),
                     laplacian=regularization_laplacian(content, cfg),
                     regularization_weight=cfg.regularization_weight, tv_weight=cfg.tv_weight,
                     use_similarity=use_sim)


def style_targets(c_feats: Mapping[str, torch.Tensor], s_feats: Mapping[str, torch.Tensor], cfg: TransferConfig,
                  masks: SemanticMasks | None, content_size: tuple[int, int], style_size: tuple[int, int],
                  device: torch.device) -> StyleTargets:
    """The style Grams and the output's layer masks, in the config's normalisation.

    Parameters
    ----------
    c_feats, s_feats : dict of layer name to tensor (1, C_l, H_l, W_l)
        The content's and the style's features (every style layer present).
    cfg : TransferConfig
        ``style_layers``, ``mask_downsample``, ``style_normalization``.
    masks : SemanticMasks or None
        None: the plain Gram of eq. (3), one "label".
    content_size, style_size : (H, W), (Hs, Ws)
        The images' sizes, pixels.
    device : torch.device
        Where the masks and weights go.

    Returns
    -------
    StyleTargets
    """
    norms: dict[str, torch.Tensor] = {}
    label_weights: dict[str, torch.Tensor] = {}
    if masks is None:
        grams = {n: losses.gram_matrix(s_feats[n]).unsqueeze(0) for n in cfg.style_layers}
        return StyleTargets(grams, {}, {}, norms, label_weights)
    h, w = content_size
    m = masks.resized((h, w), style_size, "avg")
    out_index, sty_index = layer_masks(m.content, m.style, cfg, (h, w), style_size, device, label_weights)
    valid: dict[str, torch.Tensor] = {}
    if cfg.style_normalization == "authors":
        grams = {n: losses.authors_masked_grams(s_feats[n], sty_index[n]) for n in cfg.style_layers}
        for n in cfg.style_layers:
            c_l, (h_l, w_l) = c_feats[n].shape[1], layer_size(n, h, w)
            norms[n] = torch.full((out_index[n].num_labels,), float(c_l * h_l * w_l), dtype=torch.float64,
                                  device=device)
        # their rule, no ``valid``: every label counts (one empty in the style pulls its region's Gram to 0)
    elif cfg.style_normalization == "authors_joint":
        num = m.content.shape[0]
        grams = {n: losses.joint_gram_masked_grams(s_feats[n], sty_index[n], num) for n in cfg.style_layers}
        for n in cfg.style_layers:
            c_l, (h_l, w_l) = c_feats[n].shape[1], layer_size(n, h, w)
            norms[n] = torch.full((out_index[n].num_labels,), float(num * c_l * h_l * w_l),
                                  dtype=torch.float64, device=device)
    elif cfg.style_normalization == "luan":
        grams = {n: losses.luan_masked_grams(s_feats[n], sty_index[n]) for n in cfg.style_layers}
        for n in cfg.style_layers:
            norms[n] = float(c_feats[n].shape[1]) * out_index[n].sums.to(torch.float64)
        # their rule, no ``valid``: a label empty in the style pulls its content region's Gram to 0
    else:
        grams = {n: losses.masked_gram_matrices(s_feats[n], sty_index[n]) for n in cfg.style_layers}
        valid = {n: ((out_index[n].areas > 0) & (sty_index[n].areas > 0)).float() for n in cfg.style_layers}
    return StyleTargets(grams, out_index, valid, norms, label_weights)


def layer_masks(content: torch.Tensor, style: torch.Tensor, cfg: TransferConfig, content_size: tuple[int, int],
                style_size: tuple[int, int], device: torch.device,
                label_weights: dict[str, torch.Tensor]) -> tuple[dict[str, MaskIndex], dict[str, MaskIndex]]:
    """Content and style masks at each style layer's resolution, prepared for masked Grams.

    With ``style_normalization="authors"`` each label weighs 1 / L; with "authors_joint" each
    layer's stacks gain the pair labels of :func:`losses.joint_gram_label_masks` (their loss
    weights go to ``label_weights``); with
    ``"luan"`` each label's weight is the mean of its content mask at the layer
    (:func:`losses.luan_label_weights`).

    Parameters
    ----------
    content, style : tensor (L, H, W) and (L, Hs, Ws) float in [0, 1]
        The masks at the images' sizes.
    cfg : TransferConfig
        ``style_layers``, ``mask_downsample`` ("max" or "avg"), ``style_normalization``.
    content_size, style_size : (H, W), (Hs, Ws)
        The images' sizes, pixels (each layer's size follows from them, ``vgg.layer_size``).
    device : torch.device
    label_weights : dict
        Filled in place: layer name -> (K,) weights ("authors", "authors_joint", "luan"); left as
        is for "area".

    Returns
    -------
    (dict of layer name to MaskIndex, dict of layer name to MaskIndex)
        The output's (content's) and the style's masks at every style layer.
    """
    out, sty = {}, {}
    for name in cfg.style_layers:
        if cfg.mask_downsample == "max":  # pooled with the network, as the authors' code
            mc = pool_masks_like_network(content, layer_pools(name))
            ms = pool_masks_like_network(style, layer_pools(name))
        else:
            mc = resize_masks(content, layer_size(name, *content_size), cfg.mask_downsample)
            ms = resize_masks(style, layer_size(name, *style_size), cfg.mask_downsample)
        if cfg.style_normalization == "authors":
            label_weights[name] = torch.full((mc.shape[0],), 1.0 / mc.shape[0], dtype=torch.float64, device=device)
        elif cfg.style_normalization == "authors_joint":
            mc, ms, label_weights[name] = losses.joint_gram_label_masks(mc, ms)
            label_weights[name] = label_weights[name].to(device)
        elif cfg.style_normalization == "luan":
            label_weights[name] = losses.luan_label_weights(mc).to(device)
        out[name] = MaskIndex.from_masks(mc.to(device))
        sty[name] = MaskIndex.from_masks(ms.to(device))
    return out, sty


def fused_relus(computed: tuple[str, ...], tapped: Mapping[str, object]) -> dict[str, bool]:
    """For every tapped layer, whether its loss node takes over the ReLU that follows it.

    Parameters
    ----------
    computed : tuple of str
        The modules the network runs, in order (``VGGFeatures.names``).
    tapped : mapping keyed by layer name
        The layers with a loss node.

    Returns
    -------
    dict of layer name to bool
        True when the next module is a ReLU without a tap of its own.
    """
    out = {}
    for n in tapped:
        i = computed.index(n)
        out[n] = i + 1 < len(computed) and computed[i + 1].startswith("relu") and computed[i + 1] not in tapped
    return out


def regularization_laplacian(content: torch.Tensor, cfg: TransferConfig) -> torch.Tensor | None:
    """The content's matting Laplacian M_I of eq. (4) on the content's device, or None when unused.

    Parameters
    ----------
    content : tensor (1, 3, H, W) float in [0, 1]
    cfg : TransferConfig
        Used when ``use_regularization`` and ``regularization_weight > 0``; ``matting_eps``
        and ``matting_radius`` are Levin's eps and window radius.

    Returns
    -------
    torch sparse CSR (H*W, H*W) in the content's dtype (float32 in a run), or None
        Built once per image and settings (``matting.cached_matting_laplacian``).
    """
    if not (cfg.use_regularization and cfg.regularization_weight > 0):
        return None
    lap = matting.cached_matting_laplacian(tensor_to_array(content), eps=cfg.matting_eps, radius=cfg.matting_radius)
    return matting.laplacian_to_torch(lap, device=content.device, dtype=content.dtype)
