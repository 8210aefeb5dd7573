"""A run's inputs made ready: the masks checked against their images, and the starting image.

The images themselves are checked by :func:`photostyle_lib.io.images.as_image_tensor`
(the project's one image check); this module adds what only a run needs: masks that
belong to the images (:func:`prepare_masks`), the masks as numpy stacks for the
colour-transfer steps (:func:`mask_arrays`) and the optimisation's first iterate
(:func:`starting_image`).
"""

from __future__ import annotations

import numpy as np
import torch

from photostyle_lib import baselines
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import array_to_tensor, tensor_to_array
from photostyle_lib.semantic.masks import SemanticMasks
from photostyle_lib.engine.config import TransferConfig


def prepare_masks(cfg: TransferConfig, content: torch.Tensor, style: torch.Tensor, masks: SemanticMasks | None,
                  content_masks: torch.Tensor | None = None, style_masks: torch.Tensor | None = None
                  ) -> tuple[SemanticMasks | None, tuple[str, ...]]:
    """The masks a run uses, checked against its images, and the notes that choice leaves.

    Parameters
    ----------
    cfg : TransferConfig
        Its ``segmentation`` says whether the run uses masks.
    content : tensor (1, 3, H, W)
    style : tensor (1, 3, Hs, Ws)
    masks : SemanticMasks or None
        Aligned masks at any resolution of the images' shapes.
    content_masks, style_masks : tensor (C, H', W') and (C, Hs', Ws'), or None
        Raw aligned stacks instead of ``masks`` (labels "label0", "label1", ...).

    Returns
    -------
    masks : SemanticMasks or None
        None when the config uses none (``segmentation="none"``).
    notes : tuple of str
        "masks given but ignored: segmentation='none'" when masks were dropped, else ().

    Raises
    ------
    PhotostyleError
        When only one of the raw stacks is given, when the config needs masks and none
        were given, or when a mask's aspect ratio is not its image's (:func:`check_mask_shape`).
    """
    if masks is None and (content_masks is not None or style_masks is not None):
        if content_masks is None or style_masks is None:
            raise PhotostyleError("give both content_masks and style_masks, or neither")
        masks = SemanticMasks(content=content_masks, style=style_masks,
                              labels=tuple(f"label{i}" for i in range(content_masks.shape[0])), kind="user")
    notes: list[str] = []
    if cfg.uses_masks and masks is None:
        raise PhotostyleError(
            f"this configuration uses {cfg.segmentation} segmentation but no masks were given; pass masks= "
            "(gold: masks.load_gold_masks, segmenter: semantic.request.make_masks) or use "
            "segmentation='none' (preset no_segmentation)")
    if not cfg.uses_masks and masks is not None:
        notes.append("masks given but ignored: segmentation='none'")
        masks = None
    if masks is not None:
        check_mask_shape("content", masks.content, content)
        check_mask_shape("style", masks.style, style)
    return masks, tuple(notes)


def check_mask_shape(name: str, mask: torch.Tensor, image: torch.Tensor) -> None:
    """Masks may be at another resolution than their image, but not another shape (a wrong file).

    Parameters
    ----------
    name : str
        "content" or "style", for the message.
    mask : tensor (C, H', W')
    image : tensor (1, 3, H, W)

    Raises
    ------
    PhotostyleError
        When the aspect ratios H'/W' and H/W differ by more than 2% plus one pixel's worth.
    """
    mh, mw = mask.shape[-2:]
    ih, iw = image.shape[-2:]
    if abs(mh / mw - ih / iw) > 0.02 * (ih / iw) + 1.0 / min(mw, iw):
        raise PhotostyleError(f"the {name} mask is {mh}x{mw} (HxW) but the {name} image is {ih}x{iw}: "
                              f"their aspect ratios differ, so the mask belongs to another image; "
                              f"give the {name} image's own mask")


def mask_arrays(masks: SemanticMasks | None, image: torch.Tensor, style: torch.Tensor
                ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Masks as numpy stacks at the two images' sizes, for the per-region colour transfers.

    Parameters
    ----------
    masks : SemanticMasks or None
    image : tensor (1, 3, H, W)
        The content-side image (the content, or the image being post-processed).
    style : tensor (1, 3, Hs, Ws)

    Returns
    -------
    (array (C, H, W), array (C, Hs, Ws)) float32, area-averaged; or (None, None) without masks.
    """
    if masks is None:
        return None, None
    m = masks.resized(tuple(image.shape[-2:]), tuple(style.shape[-2:]), "avg")
    return m.content.cpu().numpy(), m.style.cpu().numpy()


def reinhard_start(content: torch.Tensor, style: torch.Tensor, masks: SemanticMasks | None) -> torch.Tensor:
    """``init="reinhard"``: the content recoloured per region (``baselines.masked_reinhard``).

    Parameters
    ----------
    content : tensor (1, 3, H, W) float in [0, 1]
    style : tensor (1, 3, Hs, Ws) float in [0, 1]
    masks : SemanticMasks or None
        None: one global Reinhard transfer.

    Returns
    -------
    tensor (1, 3, H, W) float32 in [0, 1], on the content's device.
    """
    cm, sm = mask_arrays(masks, content, style)
    recoloured = baselines.masked_reinhard(tensor_to_array(content), tensor_to_array(style), cm, sm)
    return array_to_tensor(recoloured).to(content.device, torch.float32)


#: Caffe VGG's mean pixel in RGB on the [0, 1] scale of an input fed as 256 * x (Luan et al.'s
#: ``preprocess``: BGR 103.939, 116.779, 123.68).
CAFFE_MEAN_RGB = (123.68 / 256.0, 116.779 / 256.0, 103.939 / 256.0)


def mean_noise_start(content: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Luan et al.'s first-stage start: the Caffe mean colour plus Gaussian noise of std 1e-4 / 256.

    Their ``img = torch.randn(...):mul(0.0001)`` lives in the mean-subtracted input of a network
    fed 256 * x, so on the [0, 1] image it is the mean colour (``CAFFE_MEAN_RGB``) plus noise of
    std 1e-4 / 256 (about 4e-7): a near-constant image, from which the losses build the picture.

    Parameters
    ----------
    content : tensor (1, 3, H, W) float32 (only its shape and device are used)
    seed : seeds the noise (torch.Generator on the CPU, so every device gets the same start)

    Returns
    -------
    tensor (1, 3, H, W) float32 on the content's device, values within 1e-5 of the mean colour.
    """
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(tuple(content.shape), generator=gen, dtype=torch.float32) * (1e-4 / 256.0)
    mean = torch.tensor(CAFFE_MEAN_RGB, dtype=torch.float32).view(1, 3, 1, 1)
    return (mean + noise).to(content.device)


def initial_image(content: torch.Tensor, style: torch.Tensor, cfg: TransferConfig,
                  masks: SemanticMasks | None) -> torch.Tensor:
    """The start ``cfg.init`` names, (1, 3, H, W) float32 in [0, 1] (not a leaf).

    "content": the content (the paper's code); "reinhard": :func:`reinhard_start` (this
    project's); "mean_noise": :func:`mean_noise_start` (Luan et al.'s first stage).
    """
    if cfg.init == "reinhard":
        return reinhard_start(content, style, masks)
    if cfg.init == "mean_noise":
        return mean_noise_start(content, cfg.seed)
    return content


def starting_image(content: torch.Tensor, style: torch.Tensor, cfg: TransferConfig, masks: SemanticMasks | None,
                   init: torch.Tensor | None) -> torch.Tensor:
    """The optimisation's first iterate x_0, a leaf that requires grad.

    Parameters
    ----------
    content : tensor (1, 3, H, W) float32 in [0, 1], on the run's device
    style : tensor (1, 3, Hs, Ws) float32 in [0, 1], on the run's device
    cfg : TransferConfig
        ``cfg.init`` chooses the start when ``init`` is None (:func:`initial_image`).
    masks : SemanticMasks or None
    init : tensor (1, 3, H, W) or None
        An explicit start (e.g. a previous stage's image); it wins over ``cfg.init``.

    Returns
    -------
    tensor (1, 3, H, W) float32, contiguous, on the content's device, ``requires_grad=True``.
        Contiguous: an init made by a permute (e.g. from an (H, W, 3) array) is a strided
        view, and the optimisers work on x's flat storage.

    Raises
    ------
    PhotostyleError
        When ``init``'s shape is not the content's.
    """
    if init is not None:
        start = init.to(content.device, torch.float32)
    else:
        start = initial_image(content, style, cfg, masks)
    if tuple(start.shape) != tuple(content.shape):
        raise PhotostyleError(f"init has shape {tuple(start.shape)} but content {tuple(content.shape)}")
    return start.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
