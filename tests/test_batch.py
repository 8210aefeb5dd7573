"""The batch door end to end: a CSV and a dataset-like folder, resumed, summarised; bad rows fail first."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from photostyle_lib import batch
from photostyle_lib import cli


@pytest.fixture
def pairs(tmp_path):
    """A folder laid out like the dataset, two pairs with gold masks."""
    rng = np.random.default_rng(0)
    for sub in ("input", "style", "segmentation"):
        (tmp_path / sub).mkdir()
    y, x = np.mgrid[0:40, 0:60]
    for n in (1, 2):
        content = np.stack([y * 6, x * 4, (x + y) * 2 * n], -1).clip(0, 255).astype(np.uint8)
        Image.fromarray(content).save(tmp_path / "input" / f"in{n}.png")
        Image.fromarray(rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)).save(tmp_path / "style" / f"tar{n}.png")
        cm = np.zeros((40, 60, 3), np.uint8)
        cm[:20] = (0, 0, 255)
        sm = np.zeros((50, 50, 3), np.uint8)
        sm[:, :25] = (0, 0, 255)
        Image.fromarray(cm).save(tmp_path / "segmentation" / f"in{n}.png")
        Image.fromarray(sm).save(tmp_path / "segmentation" / f"tar{n}.png")
    return tmp_path


FAST = ["--weights", "random", "--size", "48", "--iterations", "2", "--device", "cpu", "--no-progress"]


def test_batch_csv_runs_resumes_and_summarises(pairs, capsys):
    d = pairs
    (d / "runs.csv").write_text(
        "content,style,content_mask,style_mask,preset,iterations,alpha,output\n"
        "input/in1.png,style/tar1.png,segmentation/in1.png,segmentation/tar1.png,full,,,a.png\n"
        "input/in2.png,style/tar2.png,segmentation/in2.png,segmentation/tar2.png,gatys,3,2.5,\n")
    out = d / "out"
    argv = ["batch", str(d / "runs.csv"), "-o", str(out), *FAST]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "row" in text and "stop" in text and "seconds" in text
    a = json.loads((out / "a.png.json").read_text())
    b = json.loads((out / "row2_in2.png.json").read_text())
    assert a["config"]["iterations"] == 2 and a["preset"] == "full"  # the flag: the cell was empty
    assert b["config"]["iterations"] == 3 and b["config"]["content_weight"] == 2.5 and b["preset"] == "gatys"
    summary = (out / batch.SUMMARY_FILE).read_text().splitlines()
    assert summary[0] == "row,output,stop,seconds" and len(summary) == 3
    # a rerun skips both; a torn pair (metadata lost) is run again
    before = (out / "a.png").stat().st_mtime_ns
    (out / "row2_in2.png.json").unlink()
    assert cli.main(argv) == 0
    rows = (out / batch.SUMMARY_FILE).read_text().splitlines()
    assert "skipped" in rows[1] and "skipped" not in rows[2]
    assert (out / "a.png").stat().st_mtime_ns == before and (out / "row2_in2.png.json").exists()


def test_batch_folder_of_pairs(pairs):
    out = pairs / "res"
    assert cli.main(["batch", str(pairs), "-o", str(out), "--pairs", "2", *FAST]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["pair2.png"]
    md = json.loads((out / "pair2.png.json").read_text())
    assert md["inputs"]["mask_kind"] == "gold" and md["inputs"]["content"].endswith("in2.png")


def test_batch_bad_rows_fail_before_any_run(pairs, capsys, monkeypatch):
    import photostyle_lib.experiments.pipeline as pipeline

    monkeypatch.setattr(pipeline, "transfer_files", lambda *a, **k: pytest.fail("ran before checking all rows"))
    d = pairs
    cases = {
        "content,style\ninput/in1.png,style/tar1.png\ninput/in9.png,style/tar1.png\n": "row 2 (row2_in9.png)",
        "content,style,iterations\ninput/in1.png,style/tar1.png,zero\n": "row 1: iterations",
        "content,style,colour\ninput/in1.png,style/tar1.png,red\n": "unknown option 'colour'",
        "content\ninput/in1.png\n": "columns ['style'] are missing",
        "content,style,output\ninput/in1.png,style/tar1.png,x.png\ninput/in2.png,style/tar2.png,x.png\n":
            "both write",
    }
    for text, expected in cases.items():
        (d / "bad.csv").write_text(text)
        assert cli.main(["batch", str(d / "bad.csv"), "-o", str(d / "o"), "--segmenter", "random-tiny", *FAST]) == 2
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1, err
    assert cli.main(["batch", str(d), "-o", str(d / "o"), "--pairs", "7", *FAST]) == 2
    assert "not in the folder" in capsys.readouterr().err
    shutil.rmtree(d / "segmentation")
    assert cli.main(["batch", str(d), "-o", str(d / "o"), *FAST]) == 2
    assert "--masks segmenter" in capsys.readouterr().err


def test_parse_pair_ids():
    assert batch.parse_pair_ids("1,3-5,3", [1, 2, 3, 4, 5]) == [1, 3, 4, 5]
    assert batch.parse_pair_ids(None, [2, 4]) == [2, 4]
    with pytest.raises(Exception, match="range like"):
        batch.parse_pair_ids("a-b", [1])
