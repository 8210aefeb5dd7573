"""The engine end to end on small images with random weights (smoke level), and its guards."""

import math

import numpy as np

import pytest
import torch

from photostyle_lib.engine import config, extractor, objective, postprocess_chain, presets, schedule
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.semantic.masks import SemanticMasks
from photostyle_lib.engine.config import TransferConfig
from photostyle_lib.engine.transfer import stylize


def _cfg(**kw):
    base = dict(weights="random", iterations=15, device="cpu", postprocess="none")
    base.update(kw)
    return TransferConfig(**base)


def test_transfer_lowers_loss_and_stays_in_range(pair, two_label_masks):
    content, style = pair
    r = stylize(content, style, _cfg(), masks=two_label_masks, progress=False)
    assert r.image.shape == content.shape
    assert 0.0 <= float(r.image.min()) and float(r.image.max()) <= 1.0
    assert r.losses["total"].min() < r.losses["total"].iloc[0]
    assert r.losses.loc[r.losses.iteration == r.best_iteration, "total"].item() == r.losses["total"].min()
    assert len(r.losses) == 15 and r.stop_reason == "iterations"
    assert set(["content", "style", "similarity"]) <= set(r.losses.columns)
    assert r.random_weights and r.metadata()["random_weights"] is True
    assert r.labels == ("sky", "ground")
    md = r.metadata()
    assert md["config"].style_weight == 1e7 and md["git_revision"]
    assert md["device"] == "cpu" and md["device_name"].endswith(f"{torch.get_num_threads()} torch threads")


def test_clamp_iterates_false_leaves_x_unbounded_and_returns_it_clamped(pair):
    """The plain optimisers clamp x into [0, 1] before every evaluation (the paper's code); with
    clamp_iterates=False (Luan et al.'s code) x leaves the box -- Adam's first step moves every pixel
    by lr = 0.5 from a content in [0.1, 0.9] -- and only the returned image is clamped."""
    content, style = pair
    runs = {}
    for clamp in (True, False):
        seen = []
        r = stylize(content, style, _cfg(optimizer="adam", lr=0.5, segmentation="none", iterations=4,
                                         clamp_iterates=clamp), progress=False,
                    image_callback=lambda it, im: seen.append(im.detach().clone()))
        runs[clamp] = (r, seen)
    r, seen = runs[True]
    assert all(float(im.min()) >= 0 and float(im.max()) <= 1 for im in seen)
    r, seen = runs[False]
    assert float(seen[1].min()) < 0 or float(seen[1].max()) > 1
    assert torch.allclose(r.raw_image, seen[r.best_iteration - 1].clamp(0, 1), atol=1e-6)
    assert 0 <= float(r.image.min()) and float(r.image.max()) <= 1
    with pytest.raises(PhotostyleError, match="clamp_iterates"):
        TransferConfig(clamp_iterates="no")


def test_adam_and_no_segmentation(pair):
    content, style = pair
    r = stylize(content, style, _cfg(optimizer="adam", segmentation="none", lr=0.01), progress=False)
    assert r.losses["total"].iloc[-1] < r.losses["total"].iloc[0]
    assert r.losses["similarity"].iloc[0] == 0 and r.losses["similarity"].iloc[1:].gt(0).all()  # starts at content


def test_masks_required_and_ignored(pair, two_label_masks):
    content, style = pair
    with pytest.raises(PhotostyleError, match="no masks were given"):
        stylize(content, style, _cfg(), progress=False)
    r = stylize(content, style, _cfg(segmentation="none", iterations=2), masks=two_label_masks, progress=False)
    assert "ignored" in r.notes[0]


def test_mask_of_another_image_is_refused(pair, two_label_masks):
    content, style = pair
    wrong = SemanticMasks(torch.ones(2, 64, 40) / 2, two_label_masks.style, two_label_masks.labels)
    with pytest.raises(PhotostyleError, match="aspect ratios differ"):
        stylize(content, style, _cfg(), masks=wrong, progress=False)
    # another resolution of the same shape is fine (masks are resized to the image)
    half = SemanticMasks(two_label_masks.content[:, ::2, ::2], two_label_masks.style, two_label_masks.labels)
    assert stylize(content, style, _cfg(iterations=2), masks=half, progress=False).losses.shape[0] == 2


def test_single_label_masked_run_equals_global_run(pair):
    content, style = pair
    ones = SemanticMasks(torch.ones(1, 40, 64), torch.ones(1, 48, 48), ("all",))
    a = stylize(content, style, _cfg(iterations=5), masks=ones, progress=False)
    b = stylize(content, style, _cfg(iterations=5, segmentation="none"), progress=False)
    assert torch.allclose(torch.tensor(a.losses["total"].values), torch.tensor(b.losses["total"].values), rtol=1e-4)


def _scale_content_from(evaluation: int, factor: float):
    """A layer_losses whose content value is multiplied by ``factor`` from the n-th evaluation on."""
    real = objective.layer_losses
    calls = {"n": 0}

    def scaled(features, terms, *args):
        features, values = real(features, terms, *args)
        if terms.content_target is not None:  # one content layer: once per evaluation
            calls["n"] += 1
            if calls["n"] >= evaluation:
                values = values * torch.tensor([factor, 1.0, 1.0])
        return features, values
    return scaled


def test_divergence_guard_returns_best_iterate(pair, monkeypatch):
    content, style = pair
    monkeypatch.setattr(objective, "layer_losses", _scale_content_from(6, 1e9))
    r = stylize(content, style, _cfg(segmentation="none", iterations=50, divergence_patience=3), progress=False)
    assert r.stop_reason.startswith("diverged") and "for 3 evaluations" in r.stop_reason
    assert len(r.losses) == 8 and r.best_iteration <= 5
    assert math.isfinite(float(r.image.sum()))


def test_a_transient_jump_does_not_end_the_run(pair, monkeypatch):
    """The loss may jump 1000x for a few evaluations and recover to a lower minimum (measured with the paper's
    plain L-BFGS on trained features): the guard waits ``divergence_patience`` evaluations."""
    content, style = pair
    real = objective.layer_losses
    calls = {"n": 0}

    def jump(features, terms, *args):
        features, values = real(features, terms, *args)
        if terms.content_target is not None:
            calls["n"] += 1
            if calls["n"] in (6, 7):
                values = values + torch.tensor([1e9, 0.0, 0.0])
        return features, values

    monkeypatch.setattr(objective, "layer_losses", jump)
    r = stylize(content, style, _cfg(segmentation="none", iterations=12, divergence_patience=3), progress=False)
    assert r.stop_reason == "iterations" and len(r.losses) == 12
    assert r.losses["total"].iloc[5] > 1e8 and r.losses["total"].iloc[-1] < 1e8


def test_projected_lbfgs_run_stays_in_range_and_never_accepts_a_rise(pair, two_label_masks):
    content, style = pair
    cfg = _cfg(optimizer="projected_lbfgs", iterations=25, style_weight=1e9)
    r = stylize(content, style, cfg, masks=two_label_masks, progress=False)
    assert r.stop_reason in ("iterations",) or r.stop_reason.startswith("converged")
    assert float(r.raw_image.min()) >= 0.0 and float(r.raw_image.max()) <= 1.0
    totals = r.losses["total"].to_numpy()
    assert totals[r.best_iteration - 1] == totals.min() and totals.min() < totals[0]


def test_nan_guard(pair, monkeypatch):
    content, style = pair
    monkeypatch.setattr(objective, "layer_losses", _scale_content_from(4, float("nan")))
    r = stylize(content, style, _cfg(segmentation="none", iterations=50), progress=False)
    assert "nan" in r.stop_reason and r.best_iteration <= 3


def test_interrupt_keeps_best(pair):
    content, style = pair

    def stop(it, row):
        if it == 4:
            raise KeyboardInterrupt

    r = stylize(content, style, _cfg(segmentation="none", iterations=50), progress=False, callback=stop)
    assert r.stop_reason == "interrupted" and len(r.losses) == 4


@pytest.mark.parametrize("bad", [dict(style_weight=-1),
                                 dict(iterations=0), dict(optimizer="sgd"), dict(lr=float("nan")),
                                 dict(segmentation="fuzzy"), dict(content_layers=("conv9_1",)),
                                 dict(postprocess="blur"), dict(line_search="golden"),
                                 dict(curvature_cosine=1.0), dict(curvature_cosine=-0.01)])
def test_config_rejects_bad_values(bad):
    with pytest.raises(PhotostyleError):
        TransferConfig(**bad)


def test_bad_images(pair):
    content, style = pair
    with pytest.raises(PhotostyleError, match=r"\(1, 3, H, W\)"):  # one channel ((3, H, W) is accepted)
        stylize(content[:, :1], style, _cfg(segmentation="none"), progress=False)
    with pytest.raises(PhotostyleError, match=r"\[0, 1\]"):
        stylize(content * 255, style, _cfg(segmentation="none"), progress=False)
    with pytest.raises(PhotostyleError, match="at least 16x16"):
        stylize(content[..., :8, :8], style, _cfg(segmentation="none"), progress=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_request_without_cuda(pair):
    content, style = pair
    with pytest.raises(PhotostyleError, match="CUDA is not available"):
        stylize(content, style, _cfg(segmentation="none", device="cuda"), progress=False)


def test_presets_are_configs_from_one_base():
    assert set(presets.ABLATION) <= set(presets.PRESETS)
    full = presets.PRESETS["full"]
    assert (full.content_weight, full.style_weight, full.similarity_weight, full.lr, full.iterations) == \
        (1.0, 1e7, 3.0, 0.1, 500)
    assert (full.content_layers, full.style_layers, full.similarity_layers) == \
        (("conv2_2",), ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"), ("conv1_1", "conv1_2", "conv2_1"))
    assert (full.rf_sigma_s, full.rf_sigma_r, full.rf_iterations, full.mask_downsample) == \
        (60.0, 100 / 255, 3, "max")  # theta_s is the masks' (semantic.request.MaskRequest)
    assert (full.segmentation, full.use_similarity, full.postprocess, full.use_regularization) == \
        ("soft", True, "recursive_filter", False)
    luan = presets.PRESETS["luan"]
    assert luan.two_stage and luan.iterations == 1000 and luan.content_layers == ("relu4_2",)
    assert presets.PRESETS["no_segmentation"].replace(segmentation="soft") == full
    assert presets.PRESETS["no_postprocess"].replace(postprocess="recursive_filter") == full
    assert presets.PRESETS["regularization"].use_regularization
    assert presets.get_preset("gatys", iterations=7).iterations == 7
    with pytest.raises(PhotostyleError, match="unknown preset"):
        presets.get_preset("picasso")


def test_regularization_and_postprocess_paths_run(pair, two_label_masks):
    content, style = pair
    cfg = presets.get_preset("full", weights="random", iterations=4, device="cpu")
    r = stylize(content, style, cfg, masks=two_label_masks, progress=False)
    from photostyle_lib.photoreal import postprocess
    from photostyle_lib.io.images import tensor_to_array

    expected = postprocess.refine(tensor_to_array(r.raw_image), tensor_to_array(content))
    assert np.allclose(tensor_to_array(r.image), expected, atol=1e-6)  # eq. (9) on the kept iterate
    assert not torch.equal(r.image, r.raw_image)
    reg = presets.get_preset("regularization", weights="random", iterations=4, device="cpu")
    r2 = stylize(content, style, reg, masks=two_label_masks, progress=False)
    assert r2.losses["regularization"].gt(0).all()


def test_luan_two_stage(pair, two_label_masks):
    from photostyle_lib.io.images import tensor_to_array
    from photostyle_lib.photoreal.local_affine import smooth_local_affine

    content, style = pair
    cfg = presets.get_preset("luan", weights="random", iterations=3, device="cpu")
    assert (cfg.lr, cfg.optimizer, cfg.style_normalization, cfg.postprocess) == (1.0, "lbfgs", "luan", "local_affine")
    assert (cfg.affine_radius, cfg.affine_edge) == (15, 0.01)
    r = stylize(content, style, cfg, masks=two_label_masks, progress=False)
    # their published best*_t_1000.png: SmoothLocalAffine of the stage-2 image
    expected = smooth_local_affine(tensor_to_array(r.raw_image), tensor_to_array(content), 15, 0.01)
    assert np.allclose(tensor_to_array(r.image), expected, atol=1e-6) and not torch.equal(r.image, r.raw_image)
    assert list(r.losses["stage"].unique()) == [1, 2]
    assert r.losses.loc[r.losses.stage == 1, "regularization"].eq(0).all()
    assert r.losses.loc[r.losses.stage == 2, "regularization"].gt(0).all()
    assert list(r.losses["iteration"]) == list(range(1, 7))  # 3 per stage, numbered across both
    md = r.metadata()
    assert r.best_iteration > 3 and md["best_loss"]["stage"] == 2 and md["evaluations"] == 6
    assert r.timings["per_step"] == pytest.approx(r.timings["optimise"] / 6)


def test_regularization_lowers_laplacian_energy(pair, two_label_masks):
    """The photorealism term pulls the output toward a locally affine recolouring of the content."""
    from photostyle_lib.photoreal import matting
    from photostyle_lib.io.images import tensor_to_array

    content, style = pair
    base = dict(weights="random", iterations=20, device="cpu", style_weight=1e7)
    free = stylize(content, style, presets.get_preset("no_postprocess", **base), masks=two_label_masks,
                   progress=False)
    reg = stylize(content, style, presets.get_preset("regularization", regularization_weight=1e2, **base),
                  masks=two_label_masks, progress=False)
    L = matting.matting_laplacian(tensor_to_array(content))
    e_free = matting.laplacian_energy(tensor_to_array(free.image), L)
    e_reg = matting.laplacian_energy(tensor_to_array(reg.image), L)
    assert free.best_iteration > 1 and e_reg < 0.01 * e_free


def test_feature_extractor_reuse_is_keyed_on_the_weights_file(tmp_path, monkeypatch):
    import torchvision

    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    torch.manual_seed(1)
    torch.save(torchvision.models.vgg19(weights=None).state_dict(), a)
    torch.manual_seed(2)
    torch.save(torchvision.models.vgg19(weights=None).state_dict(), b)
    monkeypatch.setenv("PHOTOSTYLE_VGG_WEIGHTS", str(a))
    ea = extractor.feature_extractor("imagenet", ("conv1_1",))
    assert extractor.feature_extractor("imagenet", ("conv1_1",)) is ea
    assert extractor.feature_extractor("imagenet", ("conv1_1",), seed=5) is ea  # seed only matters for random
    monkeypatch.setenv("PHOTOSTYLE_VGG_WEIGHTS", str(b))
    eb = extractor.feature_extractor("imagenet", ("conv1_1",))
    assert eb is not ea and not torch.equal(eb.body[0].weight, ea.body[0].weight)
    assert extractor.feature_extractor("random", ("conv1_1",), seed=1) is not \
        extractor.feature_extractor("random", ("conv1_1",), seed=2)


def test_network_weights_apply_to_the_paper_weight_presets_only(monkeypatch):
    monkeypatch.setitem(presets.NETWORK_WEIGHTS, "random-vgg16", {"style_weight": 5.0, "similarity_weight": 0.5})
    full = presets.get_preset("full", weights="random-vgg16")
    assert (full.style_weight, full.similarity_weight) == (5.0, 0.5)
    assert presets.get_preset("full", weights="random-vgg16", style_weight=7.0).style_weight == 7.0  # explicit wins
    assert presets.get_preset("full", weights="random").style_weight == presets.BASE.style_weight
    assert presets.get_preset("luan", weights="random-vgg16").style_weight == presets.PRESETS["luan"].style_weight
    assert presets.get_preset("gatys", weights="random-vgg16").style_weight == 5.0
    # regularization takes full's beta and gamma (its branch's run.sh) and so follows the network too
    reg = presets.get_preset("regularization", weights="random-vgg16")
    assert (reg.style_weight, reg.similarity_weight, reg.regularization_weight) == (5.0, 0.5, 1e2)
    assert reg.use_regularization and reg.postprocess == "none"


def test_luan_network_weights_apply_to_luan_only(monkeypatch):
    monkeypatch.setitem(presets.LUAN_NETWORK_WEIGHTS, "random-vgg16", {"tv_weight": 1e-5})
    luan = presets.get_preset("luan", weights="random-vgg16")
    assert luan == presets.PRESETS["luan"].replace(tv_weight=1e-5, weights="random-vgg16")
    assert presets.get_preset("luan", weights="random-vgg16", tv_weight=2e-5).tv_weight == 2e-5  # explicit wins
    assert presets.get_preset("full", weights="random-vgg16").tv_weight == presets.BASE.tv_weight
    # ImageNet VGG-19 keeps the translation of their code's weight; the stand-in has its own, smaller one
    assert presets.get_preset("luan", weights="imagenet").tv_weight == presets.PRESETS["luan"].tv_weight
    assert 0 < presets.get_preset("luan", weights="hed-vgg16").tv_weight < presets.PRESETS["luan"].tv_weight


def test_local_affine_postprocess_is_smooth_local_affine(pair):
    from photostyle_lib.io.images import tensor_to_array
    from photostyle_lib.photoreal.local_affine import smooth_local_affine

    content, style = pair
    noisy = (content + 0.2 * torch.rand(content.shape, generator=torch.Generator().manual_seed(4))).clamp(0, 1)
    cfg = _cfg(postprocess="local_affine", affine_radius=4, affine_edge=0.05)
    out = postprocess_chain.apply_postprocess(noisy, content, cfg)
    expected = smooth_local_affine(tensor_to_array(noisy), tensor_to_array(content), radius=4, edge=0.05)
    assert out.dtype == torch.float32 and out.shape == content.shape
    assert np.allclose(tensor_to_array(out), expected, atol=1e-6) and not np.allclose(expected, tensor_to_array(noisy))
    with pytest.raises(PhotostyleError, match="affine_edge"):
        _cfg(postprocess="local_affine", affine_edge=0.0)


def test_the_chained_postprocess_is_the_filter_then_the_smoothing(pair):
    """"recursive_filter+local_affine" equals postprocess.refine followed by smooth_local_affine."""
    from photostyle_lib.photoreal import postprocess
    from photostyle_lib.io.images import tensor_to_array
    from photostyle_lib.photoreal.local_affine import smooth_local_affine

    content, _ = pair
    noisy = (content + 0.2 * torch.rand(content.shape, generator=torch.Generator().manual_seed(5))).clamp(0, 1)
    cfg = _cfg(postprocess="recursive_filter+local_affine", affine_radius=4, affine_edge=0.05)
    out = postprocess_chain.apply_postprocess(noisy, content, cfg)
    c = tensor_to_array(content)
    filtered = np.clip(postprocess.refine(tensor_to_array(noisy), c, sigma_s=cfg.rf_sigma_s, sigma_r=cfg.rf_sigma_r,
                                          num_iterations=cfg.rf_iterations), 0, 1).astype(np.float32)
    expected = smooth_local_affine(filtered.astype(np.float64), c, radius=4, edge=0.05)
    assert np.allclose(tensor_to_array(out), expected, atol=1e-5)
    only_filter = postprocess_chain.apply_postprocess(noisy, content, cfg.replace(postprocess="recursive_filter"))
    assert not torch.allclose(out, only_filter, atol=1e-3)


def test_luan_terms_at_the_first_evaluation_are_their_formulas(pair, two_label_masks):
    """Stage 1 starts at the content: its style term is beta * sum over layers of their per-label loss (Gram /
    (C * mask sum), weighted by the content mask's mean) on the engine's features and layer masks, its TV term
    tv_weight * their sum of squared differences."""
    from photostyle_lib import losses
    from photostyle_lib.semantic.masks import resize_masks
    from photostyle_lib.features.vgg import layer_size

    content, style = pair
    cfg = presets.get_preset("luan", weights="random", iterations=1, device="cpu", two_stage=False,
                             use_regularization=False, postprocess="none")
    r = stylize(content, style, cfg, masks=two_label_masks, progress=False)
    vgg = extractor.feature_extractor(cfg.weights, cfg.all_layers(), cfg.seed, cfg.weights_convention)
    with torch.no_grad():
        fc, fs = vgg(content), vgg(style)
    m = two_label_masks.resized(tuple(content.shape[-2:]), tuple(style.shape[-2:]), "avg")
    expected = 0.0
    for n in cfg.style_layers:
        mc = resize_masks(m.content, layer_size(n, *content.shape[-2:]), cfg.mask_downsample)
        ms = resize_masks(m.style, layer_size(n, *style.shape[-2:]), cfg.mask_downsample)
        expected += losses.luan_masked_style_loss(fc[n].double(), fs[n].double(), mc.double(), ms.double()).item()
    row = r.losses.iloc[0]
    assert row["style"] == pytest.approx(cfg.style_weight * expected, rel=1e-4)
    assert row["tv"] == pytest.approx(cfg.tv_weight * losses.total_variation(content.double()).item(), rel=1e-5)
    assert row["content"] == pytest.approx(0.0, abs=1e-9)


def test_image_callback_sees_each_evaluated_image(pair):
    content, style = pair
    seen = []
    r = stylize(content, style, _cfg(segmentation="none", iterations=6), progress=False,
                image_callback=lambda it, im: seen.append((it, im.detach().clone())))
    assert [it for it, _ in seen] == list(range(1, 7))
    assert torch.equal(seen[0][1], content.float())  # the first evaluation is at the start image
    best = seen[r.best_iteration - 1][1]
    assert torch.allclose(best.clamp(0, 1), r.raw_image, atol=1e-6)  # the kept image is the best evaluation's


def test_reinhard_init_starts_from_the_per_region_recolouring(pair, two_label_masks):
    """init="reinhard": the first evaluated image is baselines.masked_reinhard of the inputs with
    the run's masks (resized to each image), not the content; an explicit init= tensor wins."""
    from photostyle_lib.baselines import masked_reinhard
    from photostyle_lib.io.images import tensor_to_array

    content, style = pair
    seen = []
    r = stylize(content, style, _cfg(init="reinhard", iterations=3), masks=two_label_masks, progress=False,
                image_callback=lambda it, im: seen.append(im.detach().clone()) if it == 1 else None)
    m = two_label_masks.resized(tuple(content.shape[-2:]), tuple(style.shape[-2:]), "avg")
    expected = masked_reinhard(tensor_to_array(content), tensor_to_array(style), m.content.numpy(), m.style.numpy())
    first = seen[0][0].permute(1, 2, 0).numpy()
    assert np.abs(first - expected).max() < 1e-5
    assert np.abs(first - tensor_to_array(content)).max() > 0.05        # it did move away from the content
    assert r.metadata()["config"].init == "reinhard"
    seen.clear()
    stylize(content, style, _cfg(init="reinhard", iterations=2), masks=two_label_masks, progress=False, init=content,
            image_callback=lambda it, im: seen.append(im.detach().clone()) if it == 1 else None)
    assert torch.allclose(seen[0], content)


def test_mean_noise_init_is_the_caffe_mean_colour_plus_tiny_seeded_noise(pair):
    """init="mean_noise" (Luan et al.'s first stage): the first evaluated image is the Caffe mean
    pixel (BGR 103.939, 116.779, 123.68 over 256, in RGB order) within a few noise stds of 1e-4 / 256,
    not constant, the same for the same seed and different for another; stage 2 of the two-stage
    schedule starts from stage 1's image, not from the noise again."""
    from photostyle_lib.engine.inputs import mean_noise_start

    content, style = pair
    seen = []
    grab = lambda it, im: seen.append(im.detach().clone()) if it in (1, 3) else None  # noqa: E731
    stylize(content, style, _cfg(init="mean_noise", iterations=2, segmentation="none", seed=5), progress=False,
            image_callback=grab)
    first = seen[0].double()
    mean = torch.tensor([123.68, 116.779, 103.939], dtype=torch.float64).view(1, 3, 1, 1) / 256
    dev = first - mean
    assert dev.abs().max() < 6e-4 / 256 and 0.5e-4 / 256 < dev.std() < 2e-4 / 256
    a, b = mean_noise_start(content, 5), mean_noise_start(content, 6)
    assert torch.equal(a, mean_noise_start(content, 5)) and not torch.equal(a, b)
    assert torch.allclose(seen[0], a)
    seen.clear()
    grab = lambda it, im: seen.append(im.detach().clone()) if it in (1, 6) else None  # noqa: E731
    stylize(content, style, _cfg(init="mean_noise", iterations=5, segmentation="none", two_stage=True,
                                 use_regularization=True, postprocess="none"), progress=False, image_callback=grab)
    noise = mean_noise_start(content, 0)
    assert torch.allclose(seen[0], noise)
    stage1_kept = seen[1]  # evaluation 6 is stage 2's first: stage 1's kept image (clamped)
    assert (stage1_kept - noise).abs().max() > 1e-5  # the noise std is 4e-7; measured 8.7e-4 here


def test_init_choice_is_checked():
    with pytest.raises(PhotostyleError, match="init"):
        TransferConfig(init="noise")


def test_a_strided_init_tensor_is_accepted(pair):
    """An init made by a permute (not contiguous) runs under the projected optimiser."""
    content, style = pair
    strided = content[0].permute(1, 2, 0).contiguous().permute(2, 0, 1).unsqueeze(0)
    assert not strided.is_contiguous()
    r = stylize(content, style, _cfg(segmentation="none", optimizer="projected_lbfgs", iterations=3), init=strided,
                progress=False)
    assert len(r.losses) >= 1 and torch.isfinite(r.image).all()


def test_stop_run_from_a_callback_keeps_the_best(pair):
    """StopRun raised at evaluation 4 (callback or image_callback): that evaluation counts, then the run ends."""
    content, style = pair

    def stop_at_4(it, *_):
        if it == 4:
            raise config.StopRun

    for hook in ("callback", "image_callback"):
        r = stylize(content, style, _cfg(segmentation="none", iterations=50), progress=False, **{hook: stop_at_4})
        assert r.stop_reason == config.STOPPED_BY_USER == "stopped by user"
        assert len(r.losses) == 4
        totals = r.losses["total"].to_numpy()
        assert totals[r.best_iteration - 1] == totals.min()


def test_stop_in_the_first_stage_skips_the_second(pair):
    """A two-stage run stopped in stage 1 runs no stage 2; its best image gets the config's post-process."""
    content, style = pair
    cfg = _cfg(segmentation="none", iterations=20, two_stage=True, use_regularization=True,
               postprocess="recursive_filter")
    seen = []

    def stop_at_3(it, row):
        seen.append(it)
        if it == 3:
            raise config.StopRun

    r = stylize(content, style, cfg, progress=False, callback=stop_at_3)
    assert seen == [1, 2, 3] and r.stop_reason == config.STOPPED_BY_USER
    assert list(r.losses["stage"]) == [1, 1, 1] and r.config == cfg
    assert any("stage 2 not run" in n for n in r.notes)
    expected = postprocess_chain.apply_postprocess(r.raw_image, content, cfg)
    assert torch.allclose(r.image, expected, atol=1e-6)
    assert float((r.image - r.raw_image).abs().max()) > 1e-4  # the post-process ran

# --------------------------------------------------------------------------- coarse to fine, plateau stop


def test_pyramid_sizes_are_octaves_of_the_long_side():
    assert schedule.pyramid_sizes(40, 64, 3) == [(10, 16), (20, 32), (40, 64)]
    assert schedule.pyramid_sizes(300, 200, 2) == [(150, 100), (300, 200)]  # portrait: the height is the long side
    assert schedule.pyramid_sizes(37, 50, 1) == [(37, 50)]
    sizes = schedule.pyramid_sizes(171, 256, 3)
    assert [max(s) for s in sizes] == [64, 128, 256] and sizes[-1] == (171, 256)
    for (h, w), f in zip(sizes, (0.25, 0.5, 1.0)):
        assert abs(h - 171 * f) <= 0.5 + 1e-9 and w == 256 * f


def _pyramid_cfg(**kw):
    return _cfg(**{"pyramid_levels": 2, "level_iterations": (5, 4), **kw})


def test_each_level_starts_from_the_upsampled_previous_result(pair, two_label_masks):
    """Level 1 starts at the content downsampled (the requested start); level 2 at level 1's kept image,
    bilinearly upsampled; iterations numbered across levels; the post-process once, at full size."""
    from photostyle_lib.photoreal import postprocess
    from photostyle_lib.io.images import resize_tensor, tensor_to_array

    content, style = pair
    seen, rows = [], []
    r = stylize(content, style, _pyramid_cfg(postprocess="recursive_filter"), masks=two_label_masks, progress=False,
                callback=lambda it, row: rows.append(it),
                image_callback=lambda it, im: seen.append((it, im.detach().clone())))
    table = r.losses
    n = len(table)
    assert [it for it, _ in seen] == rows == list(table.iteration) == list(range(1, n + 1))
    levels = table.level.to_numpy()
    n1 = int((levels == 1).sum())
    assert list(levels) == [1] * n1 + [2] * (n - n1) and 1 <= n1 <= 5 and n - n1 >= 1
    assert all(im.shape[-2:] == (20, 32) for it, im in seen[:n1])
    assert all(im.shape[-2:] == (40, 64) for it, im in seen[n1:])
    assert torch.allclose(seen[0][1], resize_tensor(content, (20, 32)), atol=1e-6)
    best1 = int(table.loc[table.level == 1, "total"].idxmin()) + 1   # first minimum, as the engine keeps it
    expected = torch.nn.functional.interpolate(seen[best1 - 1][1].clamp(0, 1), size=(40, 64), mode="bilinear",
                                               align_corners=False)
    assert torch.allclose(seen[n1][1], expected, atol=1e-6)
    assert not torch.allclose(seen[n1][1], content, atol=1e-3)       # not restarted from the content
    assert r.best_iteration > n1 and torch.allclose(seen[r.best_iteration - 1][1].clamp(0, 1), r.raw_image, atol=1e-6)
    assert np.allclose(tensor_to_array(r.image), postprocess.refine(tensor_to_array(r.raw_image),
                                                                    tensor_to_array(content)), atol=1e-6)
    assert r.image.shape == content.shape and any(note.startswith("level 1 (20x32 px") for note in r.notes)
    md = r.metadata()
    assert md["best_loss"]["level"] == 2 and md["evaluations"] == n
    assert r.timings["per_step"] == pytest.approx(r.timings["optimise"] / n)


def test_level_start_content_detail_adds_the_content_band_the_coarse_level_lacks():
    """content_detail: U(coarse) + content - U(D(content)), clamped; a coarse result equal to D(content)
    gives the content back; bilinear is U alone. D and U written out independently of the engine."""
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(3)
    content = torch.rand(1, 3, 40, 64, generator=g)
    coarse = torch.rand(1, 3, 20, 32, generator=g)
    up = lambda t: F.interpolate(t, size=(40, 64), mode="bilinear", align_corners=False)  # noqa: E731
    down = F.interpolate(content, size=(20, 32), mode="bilinear", align_corners=False, antialias=True)
    assert torch.allclose(schedule.level_start(coarse, content, (20, 32), "bilinear"), up(coarse), atol=1e-6)
    expected = (up(coarse) + content - up(down)).clamp(0, 1)
    got = schedule.level_start(coarse, content, (20, 32), "content_detail")
    assert torch.allclose(got, expected, atol=1e-5) and got.min() >= 0 and got.max() <= 1
    assert not torch.allclose(got, up(coarse), atol=1e-2)           # the detail is really added
    assert torch.allclose(schedule.level_start(down, content, (20, 32), "content_detail"), content, atol=1e-5)
    with pytest.raises(PhotostyleError, match="level_start"):
        TransferConfig(level_start="sharp")


def test_a_level_with_content_detail_starts_from_the_sharpened_upsample(pair, two_label_masks):
    """In the schedule: level 2's first image is level_start(level 1's kept image, content at level 2)."""
    from photostyle_lib.io.images import resize_tensor

    content, style = pair
    seen = []
    r = stylize(content, style, _pyramid_cfg(level_iterations=(3, 1), level_start="content_detail"),
                masks=two_label_masks, progress=False, image_callback=lambda it, im: seen.append(im.detach().clone()))
    n1 = int((r.losses.level == 1).sum())
    best1 = int(r.losses.loc[r.losses.level == 1, "total"].idxmin())
    expected = schedule.level_start(seen[best1].clamp(0, 1), resize_tensor(content, (40, 64)), (20, 32),
                                    "content_detail")
    assert torch.allclose(seen[n1], expected, atol=1e-6)
    assert not torch.allclose(seen[n1], schedule.level_start(seen[best1].clamp(0, 1), content, (20, 32)), atol=1e-3)


def test_the_coarsest_level_starts_from_the_requested_start_downsampled(pair, two_label_masks):
    from photostyle_lib.baselines import masked_reinhard
    from photostyle_lib.io.images import array_to_tensor, resize_tensor, tensor_to_array

    content, style = pair
    first = []
    grab = lambda it, im: first.append(im.detach().clone()) if it == 1 else None  # noqa: E731
    stylize(content, style, _pyramid_cfg(init="reinhard", level_iterations=(1, 1)), masks=two_label_masks,
            progress=False, image_callback=grab)
    m = two_label_masks.resized(tuple(content.shape[-2:]), tuple(style.shape[-2:]), "avg")
    full = array_to_tensor(masked_reinhard(tensor_to_array(content), tensor_to_array(style), m.content.numpy(),
                                           m.style.numpy()))
    assert torch.allclose(first[0], resize_tensor(full, (20, 32)), atol=1e-5)
    start = torch.full_like(content, 0.3)
    stylize(content, style, _pyramid_cfg(level_iterations=(1, 1)), masks=two_label_masks, progress=False,
            init=start, image_callback=grab)
    assert torch.allclose(first[1], torch.full((1, 3, 20, 32), 0.3), atol=1e-6)


def test_masks_and_style_are_rebuilt_per_level(pair, two_label_masks, monkeypatch):
    from photostyle_lib.semantic.masks import resize_masks

    content, style = pair
    calls = []
    real = objective.layer_masks

    def record(c, s, cfg, content_size, style_size, *args):
        calls.append((c.clone(), s.clone(), content_size, style_size))
        return real(c, s, cfg, content_size, style_size, *args)

    monkeypatch.setattr(objective, "layer_masks", record)
    stylize(content, style, _pyramid_cfg(level_iterations=(1, 1)), masks=two_label_masks, progress=False)
    assert [(c_size, s_size) for _, _, c_size, s_size in calls] == [((20, 32), (24, 24)), ((40, 64), (48, 48))]
    for c, s, c_size, s_size in calls:
        assert torch.allclose(c, resize_masks(two_label_masks.content, c_size, "avg"), atol=1e-6)
        assert torch.allclose(s, resize_masks(two_label_masks.style, s_size, "avg"), atol=1e-6)


def test_plateaued_is_the_relative_change_of_the_best_loss():
    best = [10.0, 9.0, 8.99, 8.989]
    assert schedule.plateaued(best, 2, 1e-2)            # (9 - 8.989) / 9 = 0.0012
    assert not schedule.plateaued(best, 3, 1e-2)        # (10 - 8.989) / 10 = 0.10
    assert not schedule.plateaued(best, 4, 1.0)         # fewer than window + 1 values
    assert not schedule.plateaued(best, 0, 1.0)         # off


def _synthetic_loss(monkeypatch, factor):
    """The engine's loss replaced by tv_weight * f(n) at the n-th evaluation (every other weight 0)."""
    from photostyle_lib import losses
    calls = {"n": 0}

    def fake(x):
        calls["n"] += 1
        return x.sum() * 0.0 + factor(calls["n"])

    monkeypatch.setattr(losses, "total_variation", fake)
    return dict(content_weight=0.0, style_weight=0.0, use_similarity=False, tv_weight=1.0, segmentation="none",
                optimizer="adam", lr=0.01, plateau_window=5, plateau_tol=1e-3)


def test_plateau_stops_a_flat_loss_and_not_a_decreasing_one(pair, monkeypatch):
    content, style = pair
    flat = stylize(content, style, _cfg(iterations=200, **_synthetic_loss(monkeypatch, lambda n: 1.0)),
                   progress=False)
    assert flat.stop_reason == "plateau" and len(flat.losses) < 50
    falling = stylize(content, style, _cfg(iterations=30, **_synthetic_loss(monkeypatch, lambda n: 0.9 ** n)),
                      progress=False)
    assert falling.stop_reason == "iterations" and len(falling.losses) == 30
    pyramid = stylize(content, style, _cfg(pyramid_levels=2, level_iterations=(200, 200),
                                           **_synthetic_loss(monkeypatch, lambda n: 1.0)), progress=False)
    assert pyramid.stop_reason == "plateau" and "stopped: plateau" in pyramid.notes[-1]
    assert set(pyramid.losses.level) == {1, 2} and len(pyramid.losses) < 100


def test_schedule_fields_are_checked(pair):
    with pytest.raises(PhotostyleError, match="one evaluation budget per level"):
        TransferConfig(pyramid_levels=3, level_iterations=(10, 10))
    with pytest.raises(PhotostyleError, match="level_iterations"):
        TransferConfig(pyramid_levels=2, level_iterations=(10, 0))
    with pytest.raises(PhotostyleError, match="two_stage"):
        TransferConfig(pyramid_levels=2, two_stage=True)
    with pytest.raises(PhotostyleError, match="plateau_window"):
        TransferConfig(plateau_window=-1)
    assert TransferConfig(pyramid_levels=2, level_iterations=[3, 4]).level_iterations == (3, 4)
    content, style = pair
    with pytest.raises(PhotostyleError, match="at least 16x16 px: use fewer levels"):
        stylize(content, style, _cfg(segmentation="none", pyramid_levels=3), progress=False)


def test_fast_preset_is_full_with_the_schedule():
    fast, full = presets.PRESETS["fast"], presets.PRESETS["full"]
    assert fast == full.replace(**presets.FAST_SCHEDULE) and fast.uses_pyramid and not full.uses_pyramid
    assert len(fast.level_iterations) == fast.pyramid_levels and fast.plateau_window > 0
    assert presets.get_preset("fast", weights="hed-vgg16").style_weight == \
        presets.NETWORK_WEIGHTS["hed-vgg16"]["style_weight"]


def test_stop_in_a_coarse_level_skips_the_finer_ones(pair):
    """StopRun in the pyramid's first level ends the whole schedule: no finer level runs, the kept image
    comes back at full size, and the notes say the rest was skipped."""
    content, style = pair

    def stop_at_3(it, *_):
        if it == 3:
            raise config.StopRun

    r = stylize(content, style, _cfg(segmentation="none", pyramid_levels=2, level_iterations=(20, 20)),
                progress=False, callback=stop_at_3)
    assert r.stop_reason == config.STOPPED_BY_USER
    assert set(r.losses["level"]) == {1} and len(r.losses) == 3
    assert r.image.shape == content.shape
    assert any("skipped: stopped by user" in n for n in r.notes)


def test_the_colour_match_chain_is_its_steps_in_order(pair, two_label_masks):
    """"recursive_filter+colour_match+matting_smooth" equals refine, then masked_idt with the run's masks
    (resized to each image), then matting_smooth, composed by hand."""
    from photostyle_lib.photoreal import postprocess
    from photostyle_lib.baselines import masked_idt
    from photostyle_lib.io.images import array_to_tensor, tensor_to_array

    content, style = pair
    noisy = (content + 0.2 * torch.rand(content.shape, generator=torch.Generator().manual_seed(6))).clamp(0, 1)
    cfg = _cfg(postprocess="recursive_filter+colour_match+matting_smooth", smooth_lambda=3.0)
    out = postprocess_chain.apply_postprocess(noisy, content, cfg, style=style, masks=two_label_masks)
    c = tensor_to_array(content)
    step1 = tensor_to_array(array_to_tensor(postprocess.refine(tensor_to_array(noisy), c)))
    m = two_label_masks.resized(tuple(content.shape[-2:]), tuple(style.shape[-2:]), "avg")
    step2 = tensor_to_array(array_to_tensor(masked_idt(step1, tensor_to_array(style), m.content.numpy(),
                                                       m.style.numpy(), seed=cfg.seed)))
    step3 = postprocess.matting_smooth(step2, c, 3.0)
    assert np.abs(tensor_to_array(out) - step3).max() < 1e-4
    with pytest.raises(PhotostyleError, match="needs the style"):
        postprocess_chain.apply_postprocess(noisy, content, cfg)


def test_the_detail_match_chain_is_its_steps_in_order(pair, two_label_masks):
    """"...+screened_poisson+detail_match+matting_smooth" equals the steps composed by hand, with the run's
    masks resized to each image and the config's detail settings."""
    from photostyle_lib.photoreal import detail, postprocess
    from photostyle_lib.io.images import array_to_tensor, tensor_to_array

    content, style = pair
    noisy = (content + 0.2 * torch.rand(content.shape, generator=torch.Generator().manual_seed(7))).clamp(0, 1)
    cfg = _cfg(postprocess="screened_poisson+detail_match+matting_smooth", poisson_lambda=2.0, detail_bands=3,
               detail_max_gain=3.0, smooth_lambda=3.0)
    out = postprocess_chain.apply_postprocess(noisy, content, cfg, style=style, masks=two_label_masks)
    c = tensor_to_array(content)
    step1 = tensor_to_array(array_to_tensor(np.clip(postprocess.screened_poisson(tensor_to_array(noisy), c, 2.0),
                                                    0, 1)))
    m = two_label_masks.resized(tuple(content.shape[-2:]), tuple(style.shape[-2:]), "avg")
    step2 = tensor_to_array(array_to_tensor(detail.match_region_detail(step1, tensor_to_array(style),
                                                                       m.content.numpy(), m.style.numpy(),
                                                                       bands=3, max_gain=3.0)))
    step3 = postprocess.matting_smooth(step2, c, 3.0)
    assert np.abs(tensor_to_array(out) - step3).max() < 1e-4
    lum = postprocess_chain.apply_postprocess(noisy, content, cfg.replace(postprocess="screened_poisson_luminance"))
    expected = postprocess.screened_poisson_luminance(tensor_to_array(noisy), c, 2.0)
    assert np.abs(tensor_to_array(lum) - expected).max() < 1e-4  # the tensor's float32 rounding
    with pytest.raises(PhotostyleError, match="detail_match post-process needs the style"):
        postprocess_chain.apply_postprocess(noisy, content, cfg)
    with pytest.raises(PhotostyleError, match="detail_max_gain"):
        cfg.replace(detail_max_gain=0.5)
    with pytest.raises(PhotostyleError, match="detail_bands"):
        cfg.replace(detail_bands=0)


def test_postprocess_chains_are_checked():
    assert config.postprocess_steps("none") == ()
    assert config.postprocess_steps("local_affine+matting_smooth") == ("local_affine", "matting_smooth")
    assert config.postprocess_steps("screened_poisson_luminance+detail_match") == ("screened_poisson_luminance",
                                                                                  "detail_match")
    with pytest.raises(PhotostyleError, match=r"unknown step\(s\) \['sharpen'\]"):
        TransferConfig(postprocess="recursive_filter+sharpen")
    with pytest.raises(PhotostyleError, match="smooth_lambda"):
        TransferConfig(smooth_lambda=-1.0)


def test_a_run_with_the_colour_match_chain_ends_nearer_the_style_colours(pair, two_label_masks):
    """End to end: the chain's result is nearer the style's per-region colours than the raw image."""
    from photostyle_lib import metrics

    content, style = pair
    r = stylize(content, style, _cfg(iterations=5, postprocess="recursive_filter+colour_match+matting_smooth"),
                masks=two_label_masks, progress=False)
    raw = metrics.style_distance(r.raw_image, style, two_label_masks)
    final = metrics.style_distance(r.image, style, two_label_masks)
    assert final < raw


# --------------------------------------------------------------------------- when the plain optimisers clamp


class _PullTo:
    """An objective f(x) = sum (x - target)^2 with the Objective's evaluate() interface."""

    def __init__(self, target: float) -> None:
        self.target = target

    def evaluate(self, x):
        total = ((x - self.target) ** 2).sum()
        return total, {"content": total, "style": total * 0}


@pytest.mark.parametrize("clamp_at", ["evaluation", "step"])
def test_clamp_at_evaluation_or_after_each_step(clamp_at):
    """'evaluation' (the authors' code before 1f5b657): every evaluated x is in [0, 1]; 'step' (their final
    main.py): x may leave [0, 1] inside a step of up to 20 L-BFGS iterations, and is clamped after it."""
    from photostyle_lib.engine.config import TransferConfig
    from photostyle_lib.engine.optimise import optimise

    cfg = TransferConfig(weights="random", device="cpu", optimizer="lbfgs", lr=1.0, iterations=30, clamp_at=clamp_at)
    x = torch.full((1, 3, 4, 4), 0.5, requires_grad=True)
    seen = []
    optimise(_PullTo(1.5), x, cfg, progress=False, image_callback=lambda it, im: seen.append(float(im.max())))
    assert float(x.detach().max()) <= 1.0
    if clamp_at == "evaluation":
        assert max(seen) <= 1.0
    else:
        assert max(seen) > 1.0
    with pytest.raises(Exception, match="clamp_at"):
        TransferConfig(clamp_at="never")
