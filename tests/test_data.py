"""Locating the dataset through the argument / PHOTOSTYLE_DATA."""

import pytest

from photostyle_lib.io import data
from photostyle_lib.errors import PhotostyleError


def test_env_var_and_pairs(data_dir, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(data_dir))
    ids = data.list_pairs()
    assert ids[0] == 1 and len(ids) == 60
    p = data.get_pair(23)
    assert p.content.name == "in23.png" and p.style_mask.name == "tar23.png"
    assert p.luan_result is not None and p.luan_result.exists()


def test_missing_data_dir_is_actionable(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    with pytest.raises(PhotostyleError, match="download_luan2017.py"):
        data.data_dir()


def test_unknown_pair(pair_data_dir):
    with pytest.raises(PhotostyleError, match="not in"):
        data.get_pair(999, pair_data_dir)


def test_synthetic_set_has_the_dataset_layout(pair_data_dir, monkeypatch):
    """The stand-in set the tests use without the dataset (conftest.write_synthetic_dataset)."""
    from conftest import SYNTHETIC_PAIR_IDS
    from photostyle_lib.semantic.masks import load_gold_masks

    monkeypatch.setenv(data.ENV_VAR, str(pair_data_dir))
    assert data.list_pairs() == list(SYNTHETIC_PAIR_IDS)
    p = data.get_pair(8)
    assert p.content.name == "in8.png" and p.style_mask.name == "tar8.png" and p.luan_result.exists()
    m = load_gold_masks(p.content_mask, p.style_mask)
    assert set(m.labels) == {"blue", "black", "green"}
    assert float(m.content.sum(0).min()) == float(m.content.sum(0).max()) == 1.0  # one label per pixel
