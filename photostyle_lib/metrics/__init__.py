"""Quantitative metrics of a stylised photo: photorealism, structure, style distance.

The paper evaluates its variants by eye only. These metrics put numbers on the
three things it argues about, one function each:

=========================  ===================================================
:func:`photorealism_score`  matting-Laplacian energy of the output under the
                            content's Laplacian (eq. 4), per pixel and channel;
                            0 for a locally affine recolouring of the content,
                            lower = more photo-like
:func:`structure_score`     SSIM (scikit-image) of the luminance *gradient
                            magnitudes* of output and content, after undoing a
                            global tone change; 1 = the content's edges survive
                            exactly, lower = lost or invented edges
:func:`style_distance`      sliced Wasserstein-2 distance between the output's and
                            the style's colours in CIELab, per matched semantic
                            region when masks are given (area-weighted), in
                            CIE76 Delta-E units; 0 = same colour distribution
:func:`gram_distance`       the masked Gram (style-loss) distance in VGG-19 space,
                            only meaningful with ImageNet weights; NaN when they
                            are missing (:func:`load_gram_vgg` says why)
:func:`judge_gram_distance` the judge's style measure: relative Frobenius
                            distance of per-label Gram matrices in a network
                            no method optimises (HED's VGG-16 judging runs on
                            VGG-19), area-weighted; 0 = the style's statistics
:func:`edge_ssim`           the judge's structure measure: SSIM between the HED
                            edge maps of output and content (as WCT2 reports
                            structure); 1 = the content's edges
:func:`structure_error`     mean absolute difference of the output's and the
                            content's forward differences (Figure 7's table);
                            0 = exactly the content's edges and texture
:func:`edge_transition`     mean colour-gradient magnitude of the output in a band
                            around given label boundaries, relative to the
                            content's there; 1 = the content's own edges,
                            > 1 = a colour split added at the boundary
=========================  ===================================================

Images are numpy arrays (H, W, 3) float in [0, 1] or torch tensors (1, 3, H, W)
/ (3, H, W) in [0, 1]; both are accepted everywhere. Masks are
:class:`photostyle_lib.semantic.masks.SemanticMasks` or (C, H, W) stacks in [0, 1]
(tensors or arrays) and are brought to the images' sizes by area averaging.

This module is pure maths: it imports nothing from the engine, the CLI or the runner.

One module per measure: :mod:`~photostyle_lib.metrics.photorealism`,
:mod:`~photostyle_lib.metrics.structure`, :mod:`~photostyle_lib.metrics.colour_distance`,
:mod:`~photostyle_lib.metrics.gram`, :mod:`~photostyle_lib.metrics.judge`,
:mod:`~photostyle_lib.metrics.boundaries`; :mod:`~photostyle_lib.metrics.summary` runs them
all; :mod:`~photostyle_lib.metrics.inputs` holds what they share. Every public name is
importable from here.
"""

from photostyle_lib.metrics.boundaries import boundary_band, edge_transition
from photostyle_lib.metrics.colour_distance import region_style_distances, style_distance
from photostyle_lib.metrics.gram import GRAM_LAYERS, GramVGG, gram_distance, load_gram_vgg
from photostyle_lib.metrics.judge import Judge, edge_ssim, judge_gram_distance, load_judge
from photostyle_lib.metrics.photorealism import photorealism_score
from photostyle_lib.metrics.structure import STRUCTURE_KINDS, structure_error, structure_score
from photostyle_lib.metrics.summary import LOWER_IS_BETTER, METRICS, image_metrics

__all__ = [
    "photorealism_score",
    "structure_score",
    "structure_error",
    "style_distance",
    "region_style_distances",
    "gram_distance",
    "edge_transition",
    "boundary_band",
    "load_gram_vgg",
    "GramVGG",
    "judge_gram_distance",
    "edge_ssim",
    "load_judge",
    "Judge",
    "image_metrics",
    "METRICS",
    "LOWER_IS_BETTER",
    "GRAM_LAYERS",
    "STRUCTURE_KINDS",
]

