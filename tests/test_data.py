"""Locating the dataset through the argument / PHOTOSTYLE_DATA."""

import pytest

from photostyle_lib import data
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


def test_unknown_pair(data_dir):
    with pytest.raises(PhotostyleError, match="not in"):
        data.get_pair(999, data_dir)
