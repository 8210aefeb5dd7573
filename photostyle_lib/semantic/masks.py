"""Semantic masks: colour-coded gold masks, label alignment, per-layer resizing.

A *mask stack* is a float tensor (C, H, W) with values in [0, 1]: channel c is
the (hard or soft) membership of each pixel in label c. Hard masks are one-hot
(every pixel sums to 1 over labels); soft masks are segmenter probabilities
(sums <= 1 after the theta_s cutoff). Content and style stacks are aligned: the
same C labels, in the same order, possibly at different image sizes.

:class:`SemanticMasks` is the one type the engine takes, whatever made it:
gold masks read here, segmenter masks (``photostyle_lib.semantic.cut``) or
user-drawn masks. Reading and writing colour-coded masks lives in
:mod:`photostyle_lib.semantic.palette` (its names are re-exported here).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from photostyle_lib.checks import check_choice
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import PathLike
from photostyle_lib.semantic.palette import (  # re-exported
    PALETTE,
    PALETTE_FILES,
    block_factor,
    core_sizes,
    core_threshold,
    legend_image,
    palette_image,
    read_color_mask,
    readable_label_map,
    write_palette_masks,
)

__all__ = [
    "PALETTE", "PALETTE_FILES", "Downsample", "MaskKind", "SemanticMasks", "align_labels", "block_factor",
    "core_sizes", "core_threshold", "label_map", "legend_image", "load_gold_masks", "palette_image",
    "pool_masks_like_network", "read_color_mask", "readable_label_map", "resize_masks", "write_palette_masks",
]

MaskKind = Literal["gold", "hard", "soft", "user"]
Downsample = Literal["avg", "max"]


@dataclass(frozen=True)
class SemanticMasks:
    """Aligned content and style mask stacks.

    Attributes
    ----------
    content
        (C, Hc, Wc) float32 in [0, 1], masks of the content image.
    style
        (C, Hs, Ws) float32 in [0, 1], masks of the style image.
    labels
        the C label names, shared by both stacks.
    kind
        "gold" (hand-made colour masks), "hard" (segmenter argmax),
        "soft" (segmenter probabilities) or "user" (drawn by the user).
    dropped_content_labels
        labels found in the content only, removed
        (their pixels receive no style loss) -- the paper's rule.
    dropped_style_labels
        labels found in the style only, removed (no
        content region would take their style).
    pipeline
        for segmenter masks, the probability -> masks maths that
        made them ("authors" or "merged", see
        ``cut.semantic_masks``), for figure captions and
        metadata; None for gold and user masks.
    """

    content: torch.Tensor
    style: torch.Tensor
    labels: tuple[str, ...]
    kind: str = "gold"
    dropped_content_labels: tuple[str, ...] = ()
    dropped_style_labels: tuple[str, ...] = ()
    pipeline: str | None = None

    def __post_init__(self) -> None:
        for name in ("content", "style"):
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor) or t.ndim != 3:
                shape = tuple(t.shape) if hasattr(t, "shape") else type(t).__name__
                raise PhotostyleError(f"{name} masks must be a tensor of shape (C, H, W), got {shape}")
            if not torch.isfinite(t).all():
                raise PhotostyleError(f"{name} masks contain NaN or infinite values")
            if t.numel() and (float(t.min()) < -1e-6 or float(t.max()) > 1 + 1e-6):
                raise PhotostyleError(f"{name} mask values must lie in [0, 1], "
                                      f"got [{float(t.min()):.3g}, {float(t.max()):.3g}]")
        if self.content.shape[0] != self.style.shape[0]:
            raise PhotostyleError(f"content has {self.content.shape[0]} mask channels but style has "
                                  f"{self.style.shape[0]}; align them with align_labels()")
        if len(self.labels) != self.content.shape[0]:
            raise PhotostyleError(f"{len(self.labels)} label names for {self.content.shape[0]} mask channels")
        if self.content.shape[0] == 0:
            raise PhotostyleError("no label is shared by the content and style masks; "
                                  "paint matching regions with the same colour in both masks")

    @property
    def num_labels(self) -> int:
        """L, the number of shared labels (mask channels)."""
        return len(self.labels)

    def resized(self, content_size: tuple[int, int], style_size: tuple[int, int],
                mode: Downsample = "avg") -> "SemanticMasks":
        """The same masks brought to the images' sizes.

        Parameters
        ----------
        content_size, style_size : (int, int)
            (H, W) in pixels of the content and the style image.
        mode : {"avg", "max"}
            As :func:`resize_masks`.

        Returns
        -------
        SemanticMasks
            A copy with (L, H, W) content and (L, Hs, Ws) style stacks, other fields kept.

        Raises
        ------
        PhotostyleError
            If ``mode`` is not "avg" or "max".
        """
        return dataclasses.replace(self, content=resize_masks(self.content, content_size, mode),
                                   style=resize_masks(self.style, style_size, mode))

    def to(self, device: torch.device | str) -> "SemanticMasks":
        """The same masks with both stacks on ``device``.

        Parameters
        ----------
        device : torch.device or str

        Returns
        -------
        SemanticMasks
        """
        return dataclasses.replace(self, content=self.content.to(device), style=self.style.to(device))


def resize_masks(masks: torch.Tensor, size: tuple[int, int], mode: Downsample = "avg") -> torch.Tensor:
    """Bring a mask stack to ``size``.

    ``mode="avg"`` is area averaging: each output pixel is the mean of the input
    pixels it covers, so per-pixel label sums (1 for a partition) and each
    label's area fraction are kept. ``mode="max"`` is max pooling, as the
    paper's public code does alongside the network's pooling layers: a label
    is kept wherever any covered pixel has it (regions grow at boundaries).
    Upsampling (rare: a mask smaller than its image) is bilinear in both modes.

    Parameters
    ----------
    masks : torch.Tensor, (C, H, W), float in [0, 1]
    size : (int, int)
        Target (h, w) in pixels.
    mode : {"avg", "max"}

    Returns
    -------
    torch.Tensor, (C, h, w), float32 in [0, 1]
        ``masks`` itself when it already has that size.

    Raises
    ------
    PhotostyleError
        If ``mode`` is not "avg" or "max".
    """
    check_choice("mask downsampling mode", mode, ("avg", "max"))
    h, w = int(size[0]), int(size[1])
    if tuple(masks.shape[-2:]) == (h, w):
        return masks
    x = masks.unsqueeze(0).float()
    if h > masks.shape[1] or w > masks.shape[2]:
        out = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    elif mode == "avg":
        out = F.adaptive_avg_pool2d(x, (h, w))
    else:
        out = F.adaptive_max_pool2d(x, (h, w))
    return out[0].clamp_(0.0, 1.0)


def pool_masks_like_network(masks: torch.Tensor, pools: int) -> torch.Tensor:
    """Masks max-pooled ``pools`` times by 2x2 windows of stride 2, as VGG pools its features.

    What the authors' code does to its masks on the way down the network (each
    ``nn.MaxPool2d`` of the network applied to the masks too): a layer after k
    poolings sees ``floor(H / 2^k) x floor(W / 2^k)`` masks, a last odd row or
    column dropped at each pooling as the network drops it. (``resize_masks(...,
    "max")`` to the same size uses adaptive windows, which differ from this near the
    edges when a side is not divisible by 2^k.)

    Parameters
    ----------
    masks : torch.Tensor, (L, H, W), float in [0, 1]
        At the image's size.
    pools : int >= 0

    Returns
    -------
    torch.Tensor, (L, H // 2^pools, W // 2^pools), float32 in [0, 1]
    """
    x = masks.unsqueeze(0).float()
    for _ in range(int(pools)):
        x = F.max_pool2d(x, kernel_size=2, stride=2)
    return x[0]


def align_labels(content: torch.Tensor, content_labels: tuple[str, ...] | list[str],
                 style: torch.Tensor, style_labels: tuple[str, ...] | list[str], *,
                 kind: str = "gold", unmatched: Literal["error", "drop"] = "error",
                 renormalize: bool = False) -> SemanticMasks:
    """Align two mask stacks on the labels they share.

    Labels present in the style only are dropped (nothing in the content would
    take their style). Labels present in the content only are handled by
    ``unmatched``: ``"error"`` (the default, right for hand-made masks, where
    it is usually a painting mistake) raises a PhotostyleError naming them;
    ``"drop"`` removes them -- the paper's rule for segmenter masks, "constrain
    the labels of the content image to the ones present in the style image" --
    and, with ``renormalize=True``, rescales each content pixel's remaining
    memberships to sum to what it summed to before (probabilities), so pixels
    keep their total weight. Pixels whose only labels were dropped get no style.

    Parameters
    ----------
    content : torch.Tensor, (Cc, H, W), float in [0, 1]
    content_labels : sequence of str, length Cc
    style : torch.Tensor, (Cs, Hs, Ws), float in [0, 1]
    style_labels : sequence of str, length Cs
    kind : str, keyword-only
        :attr:`SemanticMasks.kind` of the result ("gold", ...).
    unmatched : {"error", "drop"}, keyword-only
    renormalize : bool, keyword-only

    Returns
    -------
    SemanticMasks
        With labels ordered as in ``style_labels``; the dropped labels recorded.

    Raises
    ------
    PhotostyleError
        If ``unmatched`` is unknown, a stack and its names differ in length, content
        labels are unmatched under ``"error"``, or no label is shared.
    """
    check_choice("unmatched", unmatched, ("error", "drop"))
    content_labels, style_labels = tuple(content_labels), tuple(style_labels)
    if content.shape[0] != len(content_labels) or style.shape[0] != len(style_labels):
        raise PhotostyleError("each mask channel needs exactly one label name")
    shared = tuple(lab for lab in style_labels if lab in content_labels)
    content_only = tuple(lab for lab in content_labels if lab not in style_labels)
    style_only = tuple(lab for lab in style_labels if lab not in content_labels)
    if content_only and unmatched == "error":
        raise PhotostyleError(
            f"labels {', '.join(content_only)} appear in the content mask but not in the style mask; "
            "paint those regions with a colour the style mask uses, or pass unmatched='drop' "
            "(CLI: --unmatched drop) to leave them without style")
    if not shared:
        raise PhotostyleError(
            f"content labels ({', '.join(content_labels)}) and style labels ({', '.join(style_labels)}) "
            "have nothing in common; paint matching regions with the same colour in both masks")
    ci = [content_labels.index(lab) for lab in shared]
    si = [style_labels.index(lab) for lab in shared]
    c = content[ci].float()
    if renormalize and content_only:
        before = content.float().sum(0, keepdim=True)
        after = c.sum(0, keepdim=True)
        c = torch.where(after > 0, c * (before / after.clamp_min(1e-12)), c).clamp_(0.0, 1.0)
    return SemanticMasks(content=c, style=style[si].float(), labels=shared, kind=kind,
                         dropped_content_labels=content_only, dropped_style_labels=style_only)


def load_gold_masks(content_mask: PathLike, style_mask: PathLike, *,
                    unmatched: Literal["error", "drop"] = "error", kind: str = "gold",
                    **read_kwargs) -> SemanticMasks:
    """Read a pair of colour-coded masks (content, style) and align their labels.

    The stacks keep the masks' own resolutions; the engine resizes them to the
    images' sizes and to each layer's.

    Parameters
    ----------
    content_mask, style_mask : str or os.PathLike
        Colour-coded mask images.
    unmatched : {"error", "drop"}, keyword-only
        As :func:`align_labels`.
    kind : str, keyword-only
        As :func:`align_labels`.
    **read_kwargs
        Go to :func:`read_color_mask` (palette, tolerance, ...).

    Returns
    -------
    SemanticMasks

    Raises
    ------
    PhotostyleError
        As :func:`read_color_mask` and :func:`align_labels`.
    """
    c, cl = read_color_mask(content_mask, **read_kwargs)
    s, sl = read_color_mask(style_mask, **read_kwargs)
    return align_labels(c, cl, s, sl, kind=kind, unmatched=unmatched)


def label_map(masks: torch.Tensor) -> torch.Tensor:
    """Index of the strongest label per pixel.

    Parameters
    ----------
    masks : torch.Tensor, (C, H, W), float in [0, 1]

    Returns
    -------
    torch.Tensor, (H, W), int64
        In 0..C-1, and -1 where every mask is 0.
    """
    idx = masks.argmax(0)
    return torch.where(masks.amax(0) > 0, idx, torch.full_like(idx, -1))
