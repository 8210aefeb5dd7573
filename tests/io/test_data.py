"""Locating the dataset through the argument / PHOTOSTYLE_DATA; the download script offline."""

import subprocess
import sys
from pathlib import Path

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


def test_default_is_the_working_directory_then_the_checkout(pair_data_dir, tmp_path, monkeypatch):
    """Without argument or $PHOTOSTYLE_DATA: ./data/luan2017 first, then the source checkout's data/luan2017."""
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    checkout = tmp_path / "checkout"
    (checkout / "data").mkdir(parents=True)
    (checkout / "data" / "luan2017").symlink_to(pair_data_dir, target_is_directory=True)
    monkeypatch.setattr(data, "SOURCE_ROOT", checkout)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert data.default_data_dirs() == [work / "data" / "luan2017", checkout / "data" / "luan2017"]
    assert data.data_dir() == pair_data_dir.resolve()  # the checkout's, ./data/luan2017 being absent
    (work / "data" / "luan2017" / "input").mkdir(parents=True)
    (work / "data" / "luan2017" / "style").mkdir()
    assert data.data_dir() == (work / "data" / "luan2017").resolve()  # the working directory's wins
    monkeypatch.setenv(data.ENV_VAR, str(pair_data_dir))
    assert data.data_dir() == pair_data_dir.resolve()  # and $PHOTOSTYLE_DATA wins over both


def test_installed_package_has_no_checkout_default(tmp_path, monkeypatch):
    """An installed wheel (SOURCE_ROOT None) looks only under the working directory, and says where it looked."""
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setattr(data, "SOURCE_ROOT", None)
    monkeypatch.chdir(tmp_path)
    assert data.default_data_dirs() == [tmp_path / "data" / "luan2017"]
    with pytest.raises(PhotostyleError) as info:
        data.data_dir()
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "data" / "luan2017") in message
    assert f"${data.ENV_VAR} is not set" in message and "download_luan2017.py --dest DIR" in message


def test_source_root_is_this_checkout():
    """Imported from the repository (as the tests are): the checkout is found by its pyproject.toml."""
    from pathlib import Path

    assert data.SOURCE_ROOT == Path(__file__).resolve().parents[2]
    assert data.PROJECT_ROOT == data.SOURCE_ROOT


DOWNLOAD = Path(__file__).resolve().parents[2] / "data" / "download_luan2017.py"
#: A URL that refuses at once, as a machine without network does (no DNS, no route).
UNREACHABLE = "http://127.0.0.1:9/"


def _download(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DOWNLOAD), "--base-url", UNREACHABLE, *args],
                          capture_output=True, text=True, timeout=120)


def test_download_offline_names_both_ways_to_a_copy_and_leaves_nothing(tmp_path):
    """What ``make demo`` shows on a machine without network: one message naming PHOTOSTYLE_DATA and
    ``make demo DATA=``, after one try (not one per file), and no folder left behind."""
    dest = tmp_path / "data" / "luan2017"
    done = _download("--dest", str(dest), "--ids", "1", "8")
    assert done.returncode == 1
    err = done.stderr.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("error: could not download input/in1.png (9 more not tried)")
    assert "PHOTOSTYLE_DATA=/path/to/luan2017" in err[1] and "make demo DATA=/path/to/luan2017" in err[1]
    assert "data/README.md" in err[1]
    assert done.stdout.count("\n") == 1  # one progress line: it stopped at the first network error
    assert not (tmp_path / "data").exists()  # nothing half-made: no empty input/, style/, ... nor dest


def test_download_offline_keeps_what_was_there(tmp_path):
    """Folders and files that existed before the run stay; only what it made and left empty goes."""
    dest = tmp_path / "luan2017"
    (dest / "input").mkdir(parents=True)
    (dest / "input" / "in1.png").write_bytes(b"kept")
    (dest / "notes").mkdir()
    done = _download("--dest", str(dest), "--ids", "1")
    assert done.returncode == 1 and "style/tar1.png" in done.stderr
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == ["input", "input/in1.png", "notes"]


def test_parse_pairs_ranges_lists_and_one_line_errors():
    from photostyle_lib.errors import PhotostyleError
    from photostyle_lib.io.data import HELD_OUT_PAIRS, TUNING_PAIRS, parse_pairs

    assert parse_pairs("21-23,30") == [21, 22, 23, 30]
    assert parse_pairs(" 5 , 1-3, 2 ") == [5, 1, 2, 3]            # order kept, repeats dropped
    for bad, says in (("30-21", "low to high"), ("a-b", "not a pair id"), ("1-", "not a pair id"),
                      ("", "no pair"), ("0", "start at 1"), ("3,x", "'x'")):
        with pytest.raises(PhotostyleError, match=says) as err:
            parse_pairs(bad)
        assert "\n" not in str(err.value)
    assert TUNING_PAIRS == tuple(range(1, 21)) and HELD_OUT_PAIRS == tuple(range(21, 61))


def test_tuning_pairs_only_passes_tuning_pairs_and_names_held_out_ones():
    from photostyle_lib.io.data import HELD_OUT_PAIRS, TUNING_PAIRS, tuning_pairs_only
    assert tuning_pairs_only((1, 8, 20)) == [1, 8, 20]
    assert set(TUNING_PAIRS).isdisjoint(HELD_OUT_PAIRS)
    with pytest.raises(PhotostyleError, match=r"pairs \[21, 60\] are held out"):
        tuning_pairs_only([1, 21, 60])
