"""The benchmark scripts run end to end on tiny inputs and print their tables (numbers not judged)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def data_dir(pair_data_dir):
    """Here any pair will do: the synthetic set (conftest.pair_data_dir), present in every clone."""
    return pair_data_dir


ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _table_rows(text: str, first_column: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [first_column])
    return [line.split() for line in lines[start + 1:] if line.strip()]


def test_bench_engine_prints_ratios():
    text = _run("benchmarks/bench_engine.py", "--sizes", "48", "--steps", "1", "--presets", "gatys", "full",
                "--device", "cpu")
    assert "random weights" in text
    rows = _table_rows(text, "size")
    names = [" ".join(r[1:-2]) for r in rows]
    assert names == ["bare VGG conv3_1 fwd+bwd", "gatys", "full", "+ L-BFGS, 100 pairs stored",
                     "(torch.optim.LBFGS instead)"]
    seconds = [float(r[-2]) for r in rows]
    ratios = [float(r[-1]) for r in rows]
    assert ratios[0] == 1.0 and all(s > 0 for s in seconds) and all(r > 0 for r in ratios)


def test_bench_transfer_writes_labelled_results(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("PHOTOSTYLE_DATA", str(data_dir))
    text = _run("benchmarks/bench_transfer.py", "--size", "48", "--iterations", "2", "--no-segment",
                "--presets", "gatys", "luan", "--device", "cpu", "--out", str(tmp_path))
    rows = _table_rows(text, "preset")
    assert [r[0] for r in rows] == ["gatys", "luan"]
    assert [int(r[1]) for r in rows] == [2, 4]  # luan: two stages of 2
    for name in ("gatys", "luan"):
        md = json.loads((tmp_path / f"pair1_{name}_48.png.json").read_text())
        assert md["random_weights"] is True and md["evaluations"] == (2 if name == "gatys" else 4)
        assert md["device_name"] and (tmp_path / f"pair1_{name}_48.png").exists()


def test_bench_transfer_without_data_says_how_to_get_it(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "benchmarks/bench_transfer.py", "--data", str(tmp_path / "nowhere")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "download_luan2017.py" in out.stderr and "nowhere" in out.stderr
    assert "Traceback" not in out.stderr


def test_bench_baselines_prints_times_ratio_and_style_distances(tmp_path, monkeypatch):
    monkeypatch.setenv("PHOTOSTYLE_DATA", str(tmp_path / "nowhere"))   # the seeded synthetic pair
    text = _run("benchmarks/bench_baselines.py", "--size", "64", "--repeat", "1")
    assert "synthetic" in text
    rows = {" ".join(r[:-3]): [float(v) for v in r[-3:]] for r in _table_rows(text, "method")
            if len(r) > 3 and not r[0].startswith("idt")}
    seconds, ratio, distance = rows["pitie_idt (ours)"]
    assert seconds > 0 and ratio == 1.0
    # IDT moves the colours most of the way to the style's; Reinhard's mean/std match less so
    assert distance < 0.2 * rows["(content itself)"][2] and distance < rows["reinhard (ours)"][2]
    peer = "pdf_transfer (python-color-transfer)"
    try:
        import python_color_transfer  # noqa: F401
    except ImportError:
        assert "not installed" in text and peer not in rows
    else:
        assert rows[peer][0] > 0 and rows[peer][1] > 0 and rows[peer][2] > 0


def test_bench_photorealism_prints_ours_and_the_peers(tmp_path, monkeypatch):
    monkeypatch.setenv("PHOTOSTYLE_DATA", str(tmp_path / "nowhere"))
    text = _run("benchmarks/bench_photorealism.py", "--sizes", "40", "--repeat", "1", "--threads", "1")
    rows = {" ".join(r[:-1]): r[-1] for r in _table_rows(text, "size") if len(r) > 1}
    assert float(rows["laplacian ours [s]"]) > 0 and float(rows["rf ours [s]"]) > 0
    try:
        import cv2
        has_opencv = hasattr(cv2, "ximgproc")
    except ImportError:
        has_opencv = False
    if has_opencv:
        assert float(rows["rf max |ours - opencv|"]) < 1 / 255
    else:
        assert "OpenCV ximgproc: not installed" in text
