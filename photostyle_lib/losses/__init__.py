"""Loss terms of the paper, on VGG feature maps.

Shapes: a feature map is a tensor (1, C, H, W) (or (C, H, W)); a mask stack
is (L, H, W) with values in [0, 1] at the feature map's resolution.

Normalisation (the paper's public code, after the PyTorch tutorial, which is
what makes beta = 1e7 a sensible style weight):

* Gram matrix ``G = F F^T / (C * H * W)`` with F the (C, H*W) feature matrix;
* content and style losses are *mean* squared errors, the similarity loss a
  *mean* absolute error.

.. note:: Eqs. (2), (3) and (8) write sums with 1/(2 N D) and 1/(2 N^2)
   factors (N = C filters, D = H*W positions, G = F F^T unnormalised). The
   content and similarity means here are 2 times eqs. (2) and (8), a constant.
   The Gram MSE is not a constant multiple of eq. (3): it is
   ``2 / (C * H * W)^2`` times it, a factor that differs per layer and with the
   image size. beta = 1e7 belongs to the code's form (the authors' run script),
   which this project keeps; eq. (3) literally would need another beta per layer.

The terms live in one module per concept: :mod:`~photostyle_lib.losses.gram`
(Gram matrices), :mod:`~photostyle_lib.losses.terms` (eqs. 2, 3, 8 and total
variation), :mod:`~photostyle_lib.losses.mask_index` and
:mod:`~photostyle_lib.losses.masked` (eqs. 6-7), :mod:`~photostyle_lib.losses.variants`
(the authors' and Luan et al.'s normalisations). Every public name is importable
from here.
"""

from photostyle_lib.losses.gram import feature_matrix, gram_matrix, pixel_rows, rows_gram, rows_times
from photostyle_lib.losses.mask_index import MaskIndex
from photostyle_lib.losses.masked import gram_loss, masked_gram_matrices, masked_style_loss, segment_grams
from photostyle_lib.losses.terms import content_loss, similarity_loss, style_loss, total_variation
from photostyle_lib.losses.variants import (
    authors_masked_grams,
    authors_masked_style_loss,
    joint_gram_label_masks,
    joint_gram_masked_grams,
    joint_gram_masked_style_loss,
    luan_label_weights,
    luan_masked_grams,
    luan_masked_style_loss,
)

__all__ = [
    "MaskIndex", "authors_masked_grams", "authors_masked_style_loss", "content_loss", "feature_matrix",
    "gram_loss", "gram_matrix", "joint_gram_label_masks", "joint_gram_masked_grams",
    "joint_gram_masked_style_loss", "luan_label_weights", "luan_masked_grams", "luan_masked_style_loss",
    "masked_gram_matrices", "masked_style_loss", "pixel_rows", "rows_gram", "rows_times", "segment_grams",
    "similarity_loss", "style_loss", "total_variation",
]
