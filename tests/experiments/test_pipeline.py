"""Files -> masks -> run -> saved result, as the doors use it."""

import json

import pytest
import torch

from photostyle_lib.experiments import pipeline
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.engine.presets import get_preset
from photostyle_lib.semantic.request import make_masks
from photostyle_lib.semantic.segmenter import segmenter_from_name


@pytest.fixture
def data_dir(pair_data_dir):
    """Here any pair will do: the synthetic set (conftest.pair_data_dir), present in every clone."""
    return pair_data_dir


@pytest.fixture
def pair_images():
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, 32, 48, generator=g), torch.rand(1, 3, 40, 40, generator=g)


def _request(config, **kw):
    return pipeline.files_mask_request(config, **{"masks_given": False, **kw})


def test_files_mask_requests_and_masks(pair_images, data_dir):
    c, s = pair_images
    cm, sm = data_dir / "segmentation" / "in1.png", data_dir / "segmentation" / "tar1.png"
    assert make_masks(_request(get_preset("gatys")), c, s) == (None, {})
    gold_request = _request(get_preset("full"), masks_given=True)
    assert gold_request.mode == "gold"  # mask files win over the preset's soft masks
    gold, md = make_masks(gold_request, c, s, content_mask=cm, style_mask=sm)
    assert gold.kind == "gold" and md == {"segmenter": "gold masks"}
    with pytest.raises(PhotostyleError, match="--content-mask"):
        make_masks(_request(get_preset("luan")), c, s)
    with pytest.raises(PhotostyleError, match="both"):
        make_masks(gold_request, c, s, content_mask=cm)
    hard, md = make_masks(_request(get_preset("full", segmentation="hard"), segmenter="random-tiny"), c, s,
                          device="cpu")
    assert hard.kind == "hard" and torch.all((hard.content == 0) | (hard.content == 1))
    assert md["segmenter_random_weights"] and "theta_s" not in md
    with pytest.raises(PhotostyleError, match="theta_s"):
        _request(get_preset("full"), theta_s=0.0)


def test_segmenter_names():
    tiny = segmenter_from_name("random-tiny", "cpu")
    assert tiny.weights == "random" and segmenter_from_name("random-tiny", "cpu") is tiny


def test_segmenter_follows_its_environment_variable(monkeypatch, tmp_path):
    """$PHOTOSTYLE_SEGMENTER is part of the memo's key: changing it changes the segmenter returned."""
    from photostyle_lib.semantic.segmenter import ADE20KSegmenter, architecture_config

    saved = {}
    for seed in (0, 1):
        d = tmp_path / f"seg{seed}"
        ADE20KSegmenter("random", config=architecture_config(tiny=True), seed=seed, device="cpu").model \
            .save_pretrained(d)
        saved[seed] = d
    monkeypatch.setenv("PHOTOSTYLE_SEGMENTER", str(saved[0]))
    first = segmenter_from_name(None, "cpu")
    assert first.checkpoint == str(saved[0]) and segmenter_from_name(None, "cpu") is first
    monkeypatch.setenv("PHOTOSTYLE_SEGMENTER", str(saved[1]))
    second = segmenter_from_name(None, "cpu")
    assert second.checkpoint == str(saved[1]) and second.identity != first.identity


def test_missing_segmenter_weights_is_actionable(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("PHOTOSTYLE_SEGMENTER", raising=False)
    with pytest.raises(PhotostyleError, match="download"):
        segmenter_from_name("paper-scales", "cpu")


def _stored_masks_match(run_masks, record):
    stored = record.masks()
    assert (stored.labels, stored.kind, stored.pipeline) == (run_masks.labels, run_masks.kind, run_masks.pipeline)
    # masks.npz keeps float16: equal to about 2^-11 of the value
    torch.testing.assert_close(stored.content, run_masks.content, atol=1e-3, rtol=0)
    torch.testing.assert_close(stored.style, run_masks.style, atol=1e-3, rtol=0)


@pytest.mark.parametrize("mode", ["gold", "soft"])
def test_cli_path_and_cached_run_path_make_the_same_masks(data_dir, tmp_path, mode):
    """One request, two doors: files -> transfer_files (CLI, batch) and RunSpec -> run_cached (notebooks, app)."""
    from photostyle_lib.experiments.runs import RunSpec, run_cached
    from photostyle_lib.io.data import get_pair

    pair = get_pair(1, data_dir)
    spec = RunSpec(1, "full", masks=mode, size=40, iterations=1, weights="random", segmenter="random-tiny",
                   theta_s=0.3 if mode == "soft" else 0.2)
    record = run_cached(spec, cache_dir=tmp_path, data_dir=data_dir, device="cpu", progress=False)
    files = dict(content_mask=pair.content_mask, style_mask=pair.style_mask) if mode == "gold" else {}
    run = pipeline.transfer_files(pair.content, pair.style, preset="full", size=40, unmatched="drop",
                                  segmenter="random-tiny", theta_s=spec.theta_s, weights="random", iterations=1,
                                  device="cpu", progress=False, **files)
    assert run.masks.kind == mode
    _stored_masks_match(run.masks, record)
    if mode == "soft":
        assert run.inputs["theta_s"] == record.metadata["theta_s"] == 0.3


def test_transfer_files_and_save(data_dir, tmp_path):
    run = pipeline.transfer_files(data_dir / "input" / "in1.png", data_dir / "style" / "tar1.png", preset="full",
                                  size=40, content_mask=data_dir / "segmentation" / "in1.png",
                                  style_mask=data_dir / "segmentation" / "tar1.png", weights="random",
                                  iterations=2, device="cpu", progress=False)
    out, meta = pipeline.save_run(run, tmp_path / "r.png")
    md = json.loads(meta.read_text())
    assert out.exists() and md["random_weights"] and md["inputs"]["size"] == 40 and md["preset"] == "full"
    with pytest.raises(PhotostyleError, match="already exists"):
        pipeline.save_run(run, tmp_path / "r.png")
