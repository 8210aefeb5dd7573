"""The batch door end to end: a CSV and a dataset-like folder, resumed, summarised; bad rows fail first."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from photostyle_lib.doors import batch, cli


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
    # a rerun skips both; a torn pair (metadata lost) is refused, not replaced, until --overwrite
    before = (out / "a.png").stat().st_mtime_ns
    assert cli.main(argv) == 0
    rows = (out / batch.SUMMARY_FILE).read_text().splitlines()
    assert "skipped" in rows[1] and "skipped" in rows[2]
    (out / "row2_in2.png.json").unlink()
    image = (out / "row2_in2.png").read_bytes()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "row2_in2.png (an image without its metadata)" in err and "--overwrite" in err and err.count("\n") == 1
    assert (out / "row2_in2.png").read_bytes() == image
    assert cli.main(argv + ["--overwrite"]) == 0
    rows = (out / batch.SUMMARY_FILE).read_text().splitlines()
    assert "skipped" not in rows[1] and "skipped" not in rows[2] and (out / "row2_in2.png.json").exists()
    assert (out / "a.png").stat().st_mtime_ns != before


def test_batch_folder_of_pairs(pairs):
    out = pairs / "res"
    assert cli.main(["batch", str(pairs), "-o", str(out), "--pairs", "2", *FAST]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["pair2.png"]
    md = json.loads((out / "pair2.png.json").read_text())
    assert md["inputs"]["mask_kind"] == "gold" and md["inputs"]["content"].endswith("in2.png")


def test_batch_bad_rows_fail_before_any_run(pairs, capsys, monkeypatch):
    import photostyle_lib.experiments.pipeline as pipeline

    monkeypatch.setattr(pipeline, "run_files", lambda *a, **k: pytest.fail("ran before checking all rows"))
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


def test_batch_never_replaces_a_users_file_nor_a_later_rows_input(pairs, capsys, monkeypatch):
    """Issue 37, case 1: a user's own DIR/pair1.png is refused (exit 2, one line, file intact, nothing run);
    a CSV row whose output is a later row's content is refused even with --overwrite."""
    import photostyle_lib.experiments.pipeline as pipeline

    monkeypatch.setattr(pipeline, "run_files", lambda *a, **k: pytest.fail("ran before refusing"))
    out = pairs / "res"
    out.mkdir()
    (out / "pair1.png").write_bytes(b"my own picture")
    assert cli.main(["batch", str(pairs), "-o", str(out), "--pairs", "1", *FAST]) == 2
    err = capsys.readouterr().err
    assert "pair1.png (an image without its metadata)" in err and err.count("\n") == 1
    assert (out / "pair1.png").read_bytes() == b"my own picture"
    shutil.copy(pairs / "input" / "in2.png", pairs / "later.png")
    (pairs / "rows.csv").write_text("content,style,output\n"
                                    f"input/in1.png,style/tar1.png,{pairs / 'later.png'}\n"
                                    "later.png,style/tar2.png,b.png\n")
    before = (pairs / "later.png").read_bytes()
    for extra in ([], ["--overwrite"]):
        assert cli.main(["batch", str(pairs / "rows.csv"), "-o", str(out), *FAST, *extra]) == 2
        err = capsys.readouterr().err
        assert "is the row 2 content file" in err and "never replaces an input" in err
    assert (pairs / "later.png").read_bytes() == before


def test_batch_done_means_same_inputs_and_settings(pairs, capsys):
    """Issue 37, case 4: after a row's iterations, preset or style changed, the rerun does not say
    "done before": it refuses, naming what changed, and --overwrite runs it again."""
    out = pairs / "res"
    argv = ["batch", str(pairs), "-o", str(out), "--pairs", "1", "--preset", "gatys", *FAST]
    assert cli.main(argv) == 0
    md = json.loads((out / "pair1.png.json").read_text())
    assert md["request"]["preset"] == "gatys" and len(md["request_sha256"]) == 64
    assert cli.main(argv) == 0
    assert "skipped" in (out / batch.SUMMARY_FILE).read_text()
    capsys.readouterr()
    image = (out / "pair1.png").read_bytes()
    for changed, named in ((["--iterations", "3"], "iterations"), (["--preset", "no_postprocess"], "preset")):
        assert cli.main(argv + changed) == 2
        err = capsys.readouterr().err
        assert f"made with other {named}" in err or named in err.split("made with other")[1], err
    shutil.copy(pairs / "style" / "tar2.png", pairs / "style" / "tar1.png")   # the style file changed
    assert cli.main(argv) == 2
    assert "made with other style" in capsys.readouterr().err
    assert (out / "pair1.png").read_bytes() == image
    assert cli.main(argv + ["--overwrite"]) == 0
    assert "skipped" not in (out / batch.SUMMARY_FILE).read_text()
    assert cli.main(argv) == 0 and "skipped" in (out / batch.SUMMARY_FILE).read_text()


def test_refused_batch_creates_no_folder_and_reversed_range_is_named(pairs, capsys):
    """Issue 37, case 8: a refused batch leaves no empty output folder; --pairs 5-3 says it is reversed."""
    out = pairs / "new" / "res"
    assert cli.main(["batch", str(pairs), "-o", str(out), "--pairs", "2-1", *FAST]) == 2
    err = capsys.readouterr().err
    assert "empty range" in err and "1-2" in err
    (pairs / "bad.csv").write_text("content,style\ninput/in1.png,style/nothere.png\n")
    assert cli.main(["batch", str(pairs / "bad.csv"), "-o", str(out), *FAST]) == 2
    assert "not found" in capsys.readouterr().err
    assert not (pairs / "new").exists()


def test_batch_on_a_full_disk_says_so_in_one_line(pairs, capsys, monkeypatch):
    """Issue 37, case 7: every write fails with ENOSPC: each row is an error in the table, the summary
    cannot be written, and the command ends with one line and exit 2, no traceback, no temp file left."""
    import errno
    import os

    real = os.replace

    def full(src, dst):
        if str(dst).startswith(str(pairs / "res")):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)
    monkeypatch.setattr(os, "replace", full)
    assert cli.main(["batch", str(pairs), "-o", str(pairs / "res"), "--pairs", "1", *FAST]) == 2
    captured = capsys.readouterr()
    assert "No space left on device" in captured.err and captured.err.count("\n") == 1
    assert "Traceback" not in captured.err
    assert "error: cannot write" in captured.out
    assert [p.name for p in (pairs / "res").iterdir()] == []


def test_batch_rerun_removes_temp_files_a_killed_batch_left(pairs):
    """Issue 37, case 5: SIGTERM / SIGKILL mid-write leaves DIR/.pair1.png.<host>~<pid>~*.tmp; the
    rerun removes those of dead processes before it starts."""
    import os
    import subprocess
    import sys

    from photostyle_lib.io.outputs import temp_prefix

    out = pairs / "res"
    out.mkdir()
    pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                             text=True).stdout)
    left = [out / (temp_prefix(n).replace(f"~{os.getpid()}~", f"~{pid}~") + "x.tmp")
            for n in ("pair1.png", "pair1.png.json", batch.SUMMARY_FILE)]
    for p in left:
        p.write_bytes(b"half")
    assert cli.main(["batch", str(pairs), "-o", str(out), "--pairs", "1", *FAST]) == 0
    assert sorted(p.name for p in out.iterdir()) == [batch.SUMMARY_FILE, "pair1.png", "pair1.png.json"]
