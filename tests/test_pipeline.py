"""Files -> masks -> run -> saved result, as the doors use it."""

import json

import pytest
import torch

from photostyle_lib.experiments import pipeline
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.engine.presets import get_preset


@pytest.fixture
def data_dir(pair_data_dir):
    """Here any pair will do: the synthetic set (conftest.pair_data_dir), present in every clone."""
    return pair_data_dir


@pytest.fixture
def pair_images():
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, 32, 48, generator=g), torch.rand(1, 3, 40, 40, generator=g)


def test_make_masks_modes(pair_images, data_dir):
    c, s = pair_images
    assert pipeline.make_masks(c, s, get_preset("gatys")) is None
    gold = pipeline.make_masks(c, s, get_preset("full"), content_mask=data_dir / "segmentation" / "in1.png",
                               style_mask=data_dir / "segmentation" / "tar1.png")
    assert gold.kind == "gold"
    with pytest.raises(PhotostyleError, match="--content-mask"):
        pipeline.make_masks(c, s, get_preset("luan"))
    with pytest.raises(PhotostyleError, match="both"):
        pipeline.make_masks(c, s, get_preset("full"), content_mask=data_dir / "segmentation" / "in1.png")
    hard = pipeline.make_masks(c, s, get_preset("full", segmentation="hard"), segmenter="random-tiny")
    assert hard.kind == "hard" and torch.all((hard.content == 0) | (hard.content == 1))


def test_segmenter_names():
    tiny = pipeline.segmenter_from_name("random-tiny", "cpu")
    assert tiny.weights == "random" and pipeline.segmenter_from_name("random-tiny", "cpu") is tiny


def test_missing_segmenter_weights_is_actionable(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("PHOTOSTYLE_SEGMENTER", raising=False)
    pipeline.segmenter_from_name.cache_clear()
    with pytest.raises(PhotostyleError, match="download"):
        pipeline.segmenter_from_name("paper-scales", "cpu")


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
