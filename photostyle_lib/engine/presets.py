"""The paper's model variants as data: one base TransferConfig and its replacements.

=================  =============================================================
preset             what it is (paper section)
=================  =============================================================
full               soft segmentation + similarity loss + recursive-filter
                   post-process: the paper's model (3.6)
regularization     full, with the photorealism regularisation (3.2) instead of
                   the post-process; regularisation weight 1e2 with full's style
                   and similarity weights, as the run.sh of the authors'
                   ``regularization`` branch passes (``--ws 1e7 --wr 1e2 --wsim 3``;
                   its argparse defaults, 1e4 / 1e4 / 10, are not what it ran) (5.1)
no_segmentation    full without the semantic masks (plain Gram style loss)
no_similarity      full without the L1 similarity loss
no_postprocess     full without the post-process
gatys              the baseline model (3.1): content + global Gram style only
luan               Luan et al. 2017, as their public code runs it (table below)
fast               full, coarse to fine (3 octaves) with a plateau stop per level:
                   this project's time-to-quality schedule, not the paper's
                   (:data:`FAST_SCHEDULE`)
enhanced           full, its post-process followed by per-region colour matching
                   and the closed-form matting-Laplacian smoothing: this
                   project's model, not the paper's (:data:`ENHANCED_POSTPROCESS`)
enhanced_detail    enhanced with the content's brightness gradients given back
                   (screened Poisson on the luminance) and each region's detail
                   contrast matched to its style region's before the smoothing:
                   this project's model
                   (:data:`ENHANCED_DETAIL_POSTPROCESS`)
=================  =============================================================

The ``luan`` preset, value by value (their repository luanfujun/deep-photo-
styletransfer at commit 16744e3; ``ns`` = neuralstyle_seg.lua, stage 1; ``dm`` =
deepmatting_seg.lua, stage 2, the same code plus the Laplacian and the smoothing):

======================  ==================================  ========================================
field                   value (this project's units)        their code
======================  ==================================  ========================================
content_weight          5                                   ns:26 ``-content_weight 5``; MSE over
                                                            C*H*W (ns:311, 316)
style_weight            100 * s^2                           ns:27 ``-style_weight 100``
style_normalization     "luan"                              ns:148-153 target Gram / (nElement *
                                                            mask mean); ns:463-472 output Gram the
                                                            same, ``loss_j * strength * mean``
tv_weight               1e-3 / 2 * (256 / s)^2              ns:28 ``-tv_weight 1e-3``; ns:512-521
                        (hed-vgg16: 0.1x that,              backward of strength/2 * sum of squared
                        LUAN_NETWORK_WEIGHTS)               differences (losses.total_variation)
regularization_weight   1e4 / s^2                           dm:33 ``-lambda 1e4``; dm:253, 283-293
                                                            (cuda_utils.cu: ``2 * val * input`` on
                                                            the [0, 1] image: lambda * V^T L V)
optimizer, lr           "lbfgs", 1.0                        ns:192-195 ``optim_state`` has no
                                                            learningRate (optim.lbfgs: 1) and no
                                                            lineSearch (fixed step); tolX 0,
                                                            tolFun -1: no early stop
clamp_iterates          False                               ns and dm: ``feval`` never bounds
                                                            ``img`` (optim.lbfgs on it directly)
iterations, two_stage   1000 per stage, two stages          ns:29, dm:30; gen_all.py:19, 21 (stage
                                                            2 starts from stage 1's out_t_1000)
layers                  content relu4_2, style relu1_1 ...  ns:45-46
                        relu5_1
postprocess             "local_affine", radius 15,          dm:255-258 best<N>_t_<n> saved from
                        edge 0.01                           SmoothLocalAffine (dm:297-308);
                                                            gen_all.py:21 ``-f_radius 15 -f_edge
                                                            0.01`` (defaults dm:38-39 are 7, 0.05)
segmentation            "gold"                              ns:72-84: their colour masks
mask_downsample         "avg"                               ns:113-124 differ (see below)
======================  ==================================  ========================================

Units. Their weights were set for Caffe VGG-19 fed ``256 * x - mean`` (BGR; ns:270
``mul(256.0)``, not 255). A Caffe network's activations are about ``s = 256 *
mean(ImageNet std) = 57.9`` times those of torchvision's VGG-19 on the same [0, 1]
image (features/weights.py: 255 * mean(std) for this project's Caffe-convention networks, which
feed 255 * x; every network's activations are divided by its feature scale, so the
engine works in torchvision units). Content MSE scales with s^2 and the Gram MSE with
s^4, so dividing their whole objective by s^2 keeps content 5, makes style 100 * s^2,
and divides the pixel-space terms by s^2: lambda (their Laplacian acts on the [0, 1]
image: MattingLaplacian divides by 256 before and after) becomes 1e4 / s^2; TV (on the
256-scaled image, with the 1/2 of its backward) becomes 1e-3 / 2 * 256^2 / s^2 =
9.8e-3 on the [0, 1] image. This is a translation, not a calibration: the networks
are different functions, so s is a typical ratio, not an identity. For the trained
VGG-16 stand-in (``hed-vgg16``) the translated TV weight blurs the image (tuning pair
1: TV is 35% of the final loss and the result is hazy, without the contrast of their
published image): its own TV weight, chosen on tuning pairs, is in
:data:`LUAN_NETWORK_WEIGHTS`; VGG-19 keeps the translation.

Not matched (engine or mask reading, not data): their first stage starts from
``randn * 1e-4`` in Caffe units (ns:183, the mean colour plus noise: ``init="mean_noise"``),
ours from the content (tuning pair 1, hed-vgg16: the same result from either); they keep the last iterate, the engine the best (with the unbounded iterates
the loss falls nearly monotonically, so the two nearly coincide; clamped, the same
plain L-BFGS oscillated on tuning pair 1 and ended in a NaN at evaluation 479); their
stage 1 image is saved min-max normalised to [0, 1] (``image.minmax``) and stage 2
starts from that file, ours from the image clamped to [0, 1]; their first L-BFGS step is min(1, 1/|g|_1) in Caffe
units (ours the same rule in [0, 1] units); masks: their 9 colours with a per-channel
tolerance of 0.1 (ns:387-428; unmatched pixels unlabelled), then per layer a 3x3
average pool at every convolution and a bilinear halving (ceil) at every pooling
(ns:113-124), where ours resizes each layer's masks directly by area average; their
style backward multiplies by the mask once, not twice (ns:479: exact for binary masks
only; ours is the exact gradient).
"""

from __future__ import annotations

import functools

import numpy as np

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.engine.config import TransferConfig
from photostyle_lib.features.vgg import IMAGENET_STD, resolve_weights

#: Every preset optimises with the projected L-BFGS (bounds [0, 1], backtracking line search:
#: ``lbfgs.projected_lbfgs``), not the paper's plain fixed-step L-BFGS, which diverges on trained
#: features (pair 1: the loss jumped 1e3-5e4x the best mid-run); ``optimizer="lbfgs"`` reproduces it
#: (the ``luan`` preset keeps their code's plain L-BFGS at step 1).
BASE = TransferConfig(optimizer="projected_lbfgs")
#: Luan et al.'s Caffe-VGG activations over this engine's (torchvision units): they feed 256 * x.
_LUAN_SCALE = 256.0 * float(np.mean(IMAGENET_STD))

#: The ``fast`` preset's schedule on top of ``full``: octaves 1/4, 1/2, 1 of the long side, evaluations
#: per level (coarsest first), each level stopped early once the best loss fell < 0.3% over 30 evaluations.
#: Chosen by ``studies/time_to_quality.py`` on tuning pairs 1, 5 and 8 only (512 px, hed-vgg16,
#: adaptive line search with the curvature test, 2026-12-02), of four schedules at 0.24-0.28x full's work
#: (full-size-equivalent evaluations): (100, 60, 100) left pair 5's style distance 20.8% worse than full's,
#: (200, 90) on two levels 14.2%, (100, 60, 120) 19.0%; (150, 100, 90) kept every metric of every pair
#: within 2.3% of full's or better (means: photorealism -11.6%, structure -0.8%, style distance -14.2%, i.e.
#: better) at 0.25x the work. The earlier (100, 60, 100) was chosen at 256 px (pairs 1 and 8). A longer
#: last level, (150, 100, 120), changed no mean by more than 1.2 points at 0.29x the work (0.31x the time).
#: Each finer level starts from the coarser result with the content's finer band added back
#: (``level_start="content_detail"``, schedule.level_start), measured on the same pairs against the plain
#: upsampling: photorealism -28% vs -11.6%, structure -1.3% vs -0.8% (worst pair +0.4% vs +2.2%), style
#: distance -15.3% vs -14.2%, at the same work.
FAST_SCHEDULE = {"pyramid_levels": 3, "level_iterations": (150, 100, 90), "plateau_window": 30, "plateau_tol": 3e-3,
                 "level_start": "content_detail"}

#: The ``enhanced`` preset's post-process on top of ``full``'s optimisation: eq. (9), then every semantic
#: region's colours given its style region's distribution (baselines.masked_idt), then
#: (Id + lambda L) O = S with the content's matting Laplacian (postprocess.matting_smooth), lambda = 3.
#: Chosen by ``studies/sweep_postprocess.py`` on tuning pairs 1-10 and 16 only (256 px, hed-vgg16,
#: gold masks, 2026-12-01; records/sweep_postprocess/hed-vgg16): its rule (lowest style distance with
#: at most half Luan et al.'s photorealism energy and at least their structure) picked lambda 3 of
#: 1 / 3 / 10 / 30 (ratios to Luan et al.'s: energy 0.66 / 0.34 / 0.19 / 0.12, structure 1.08 / 1.09 /
#: 1.10 / 1.11, style distance 0.17 / 0.20 / 0.26 / 0.35).
ENHANCED_POSTPROCESS = {"postprocess": "recursive_filter+colour_match+matting_smooth", "smooth_lambda": 3.0}
#: The ``enhanced_detail`` preset's post-process on top of ``full``'s optimisation: eq. (9), per-region colour
#: matching, a screened Poisson step on the luminance with the content's brightness gradients (mu = 4 px^2:
#: postprocess.screened_poisson_luminance), each region's detail contrast over 4 octaves matched to its style
#: region's (gains within [1/1.5, 1.5]: detail.match_region_detail), then the matting-Laplacian smoothing at
#: enhanced's lambda 3. Chosen by ``studies/sweep_postprocess.py --pairs 1-20 --lambdas 3 --poisson-lambdas 1 2 4
#: --detail-gains 1.5 2 3 --regrain luminance`` on tuning pairs 1-20 only (256 px, imagenet-vgg19-caffe, gold
#: masks, 2026-12-06; records/sweep_postprocess/imagenet-vgg19-caffe-detail-luminance): its rule (the +dm
#: variant beating Luan et al.'s means on the most of the five measures, then the smallest worst ratio) picked
#: mu 4, gain 1.5: ratios to theirs 0.45 / 1.17 / 0.30 / 0.97 / 1.02 (photorealism, structure, colour distance,
#: judge Gram distance, edge SSIM), against enhanced's 0.45 / 1.02 / 0.17 / 1.19 / 0.93 on the same pairs.
#: The first chain (the per-channel screened Poisson step, mu 4, gain 3; records/sweep_postprocess/
#: imagenet-vgg19-caffe-detail) gave back the content's colour gradients under grey styles (held-out pair 36's
#: fringes, docs/quality.md); the same rule on the luminance version replaced it. The rule saw the judge's
#: measures on the tuning pairs (no run optimises them; the held-out pairs test it).
ENHANCED_DETAIL_POSTPROCESS = {
    "postprocess": "recursive_filter+colour_match+screened_poisson_luminance+detail_match+matting_smooth",
    "smooth_lambda": 3.0, "poisson_lambda": 4.0, "detail_max_gain": 1.5}

PRESETS: dict[str, TransferConfig] = {
    "full": BASE,
    "regularization": BASE.replace(use_regularization=True, postprocess="none", regularization_weight=1e2),
    "no_segmentation": BASE.replace(segmentation="none"),
    "no_similarity": BASE.replace(use_similarity=False),
    "no_postprocess": BASE.replace(postprocess="none"),
    "gatys": BASE.replace(segmentation="none", use_similarity=False, postprocess="none"),
    "luan": BASE.replace(segmentation="gold", use_similarity=False, use_regularization=True, two_stage=True,
                         content_weight=5.0, style_weight=100.0 * _LUAN_SCALE ** 2,
                         style_normalization="luan", tv_weight=1e-3 / 2 * (256.0 / _LUAN_SCALE) ** 2,
                         regularization_weight=1e4 / _LUAN_SCALE ** 2, optimizer="lbfgs", lr=1.0,
                         clamp_iterates=False,
                         postprocess="local_affine", affine_radius=15, affine_edge=0.01, mask_downsample="avg",
                         iterations=1000, content_layers=("relu4_2",),
                         style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")),
    "fast": BASE.replace(**FAST_SCHEDULE),
    "enhanced": BASE.replace(**ENHANCED_POSTPROCESS),
    "enhanced_detail": BASE.replace(**ENHANCED_DETAIL_POSTPROCESS),
}

#: The five variants of the ablation study (Figure 4), in the figure's column order.
ABLATION = ("full", "regularization", "no_segmentation", "no_similarity", "no_postprocess")


#: Presets whose style / similarity weights are the paper's (beta, gamma) and so follow the network.
NETWORK_TUNED = ("full", "regularization", "no_segmentation", "no_similarity", "no_postprocess", "gatys", "fast",
                 "enhanced", "enhanced_detail")

#: Loss weights per network for :data:`NETWORK_TUNED`, on top of the base (the paper's, which belong to
#: ImageNet VGG-19). Chosen by ``studies/sweep_weights.py`` on tuning pairs 1-20 only (its rule and
#: the measured table are in the README); networks not listed use the paper's.
NETWORK_WEIGHTS: dict[str, dict[str, float]] = {
    # studies/sweep_weights.py, 2026-12-01: pairs 1, 8, 16 at 256 px, beta in {3e6, 1e7, 3e7}, gamma 3.
    # Mean style distance 2.10x / 2.22x / 2.48x Luan et al.'s published, photorealism energy 3.77x / 3.76x /
    # 3.11x theirs: none within the rule's 1.25x, so its fallback (closest to the style) picked 3e6.
    "hed-vgg16": {"style_weight": 3e6, "similarity_weight": 3.0},
    # imagenet-vgg19-caffe (the original VGG-19) has no entry: the paper's weights. studies/sweep_weights.py,
    # 2026-12-05, the authors' final masked loss, pairs 1, 8, 16 at 256 px, beta in {1e5, 3e5, 1e6, 1e7}, gamma 3
    # (records/sweep_weights/imagenet-vgg19-caffe): colour distance 1.88 / 1.76 / 1.72 / 1.72x Luan et al.'s published,
    # the judge's Gram distance 1.23 / 1.24 / 1.24 / 1.27x, photorealism energy 3.4 / 3.7 / 3.8 / 4.0x. None within
    # 1.5x on both, so the judge rule's fallback (the lowest larger ratio) kept the paper's 1e7.
}


#: Loss weights per network for the ``luan`` preset, on top of its translation of their code's (whose
#: units assume VGG-19's activation scale, see the table above); networks not listed keep the translation.
#: Chosen on tuning pairs only (docs/quality.md, the ``luan`` paragraph).
LUAN_NETWORK_WEIGHTS: dict[str, dict[str, float]] = {
    # 2026-12-02, tuning pairs 1 and 8 at 256 px, both stages of 1000 evaluations, gold masks: at 1x the
    # translation the results are hazy (pair 1: TV 35% of the final loss); at 0.1x nearer Luan et al.'s
    # published images (mean |RGB| difference 0.059 / 0.149 -> 0.058 / 0.103), structure 0.65 / 0.61 ->
    # 0.71 / 0.75, style distance 9.95 / 19.6 -> 9.75 / 18.9. Stage 1 alone at 0.01x and 0 was noisy.
    "hed-vgg16": {"tv_weight": 0.1 * PRESETS["luan"].tv_weight},
}


#: Which per-network table each preset reads: :data:`NETWORK_WEIGHTS` for :data:`NETWORK_TUNED`,
#: :data:`LUAN_NETWORK_WEIGHTS` for ``luan``; the others (``regularization``: the paper's code's weights
#: for that variant) have none.
_NETWORK_TABLES: dict[str, dict[str, dict[str, float]]] = {
    **{name: NETWORK_WEIGHTS for name in NETWORK_TUNED}, "luan": LUAN_NETWORK_WEIGHTS}


def network_weights(name: str, network: str) -> dict[str, float]:
    """The loss weights preset ``name`` takes for ``network`` (an empty dict: the preset's own)."""
    return dict(_NETWORK_TABLES.get(name, {}).get(network, {}))


@functools.lru_cache(maxsize=1)
def _auto_network() -> str:
    """The network ``weights="auto"`` resolves to in this process (one probe, as VGGFeatures makes)."""
    return str(resolve_weights("auto", announce=False)[0])


def get_preset(name: str, **overrides) -> TransferConfig:
    """The named preset, with optional field overrides (e.g. iterations=50, weights="random").

    With ``weights`` naming a network with loss weights of its own (:func:`network_weights`:
    :data:`NETWORK_WEIGHTS` for the presets of :data:`NETWORK_TUNED`, :data:`LUAN_NETWORK_WEIGHTS`
    for ``luan``), those apply first; explicit overrides win over them.

    Raises
    ------
    PhotostyleError
        If ``name`` is not a key of :data:`PRESETS`, naming the presets.
    """
    if name not in PRESETS:
        raise PhotostyleError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    network = str(overrides.get("weights"))
    if network == "auto" and name in _NETWORK_TABLES:
        network = _auto_network()
    tuned = network_weights(name, network)
    changes = {**tuned, **overrides}
    return PRESETS[name].replace(**changes) if changes else PRESETS[name]
