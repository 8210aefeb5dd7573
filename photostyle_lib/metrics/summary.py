"""Every metric of one stylised image, and the names and directions of the table's columns."""

from __future__ import annotations

import warnings
from typing import Any

from photostyle_lib.features.vgg import VGGFeatures
from photostyle_lib.metrics.colour_distance import style_distance
from photostyle_lib.metrics.gram import GramVGG, gram_distance
from photostyle_lib.metrics.judge import Judge, edge_ssim, judge_gram_distance
from photostyle_lib.metrics.photorealism import photorealism_score
from photostyle_lib.metrics.structure import structure_score


#: Metric names of :func:`image_metrics`, in table order.
METRICS = ("photorealism", "structure", "style_distance", "style_distance_global", "gram_distance", "judge_gram",
           "edge_ssim")
#: Direction of each metric: True where lower is better.
LOWER_IS_BETTER = {"photorealism": True, "structure": False, "style_distance": True,
                   "style_distance_global": True, "gram_distance": True, "judge_gram": True, "edge_ssim": False}


def image_metrics(output: Any, content: Any, style: Any, content_masks: Any = None, style_masks: Any = None, *,
                  vgg: GramVGG | VGGFeatures | None = None, judge: Judge | None = None) -> dict[str, float]:
    """Every metric of one stylised image, keyed by :data:`METRICS`.

    ``style_distance`` is per region when masks are given (else equal to
    ``style_distance_global``, which ignores masks); ``gram_distance`` uses the
    masks too and is NaN without a ``vgg``; ``judge_gram`` and ``edge_ssim`` are NaN
    without a ``judge`` (:func:`load_judge`).
    """
    judge = judge if judge is not None else Judge(None, None, "skipped: not requested")
    with warnings.catch_warnings():
        # rgb2lab warns on colours at the edge of its domain; the values are still right.
        warnings.simplefilter("ignore", UserWarning)
        glob = style_distance(output, style)
        regional = glob if content_masks is None else style_distance(output, style, content_masks, style_masks)
    return {
        "photorealism": photorealism_score(output, content),
        "structure": structure_score(output, content),
        "style_distance": regional,
        "style_distance_global": glob,
        "gram_distance": gram_distance(output, style, content_masks, style_masks, vgg=vgg),
        "judge_gram": judge_gram_distance(output, style, content_masks, style_masks, judge=judge),
        "edge_ssim": edge_ssim(output, content, judge=judge),
    }
