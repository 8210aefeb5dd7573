"""The README's Python examples run as written: offline, on the dataset layout, at a tiny size.

Every ```` ```python ```` block of README.md is run in a fresh interpreter, in an empty working
folder, with ``$PHOTOSTYLE_DATA`` pointing at a folder laid out like the dataset (the published set
where ``$PHOTOSTYLE_DATA`` has it, else the synthetic pairs of conftest) and ``HF_HUB_OFFLINE=1``.
The one documented change: a block's line ``size, iterations = ...`` becomes
``size, iterations = 48, 2``. The ```` ```bash ```` blocks are command synopses and lists, run by
their own tests (test_cli, test_benchmarks, test_notebooks).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image


from photostyle_lib.io.images import WEIGHTS_TEXT_KEY, weights_text

ROOT = Path(__file__).resolve().parents[1]
#: The line of a block that sets its scale; the test runs it at this size instead.
SIZE_LINE = re.compile(r"^size, iterations = .*$", re.MULTILINE)
TINY = "size, iterations = 48, 2"


def python_blocks(text: str) -> list[str]:
    """The code of every ```python fenced block of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def tiny(block: str) -> str:
    """``block`` with its ``size, iterations = ...`` line (at most one) set to :data:`TINY`."""
    assert len(SIZE_LINE.findall(block)) <= 1, "a block sets size, iterations once"
    return SIZE_LINE.sub(TINY, block)


@pytest.fixture
def layout_dir(pair_data_dir) -> Path:
    """A folder with the dataset's layout: $PHOTOSTYLE_DATA's published set if there, else synthetic pairs."""
    env = os.environ.get("PHOTOSTYLE_DATA")
    return Path(env) if env and (Path(env) / "input" / "in1.png").is_file() else pair_data_dir


def test_python_blocks_are_found_and_made_tiny():
    blocks = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert blocks, "the README has a Python example"
    assert all(TINY in tiny(b) for b in blocks if SIZE_LINE.search(b))
    assert tiny("a = 1\nsize, iterations = 512, 500  # comment\nb = 2\n") == f"a = 1\n{TINY}\nb = 2\n"


@pytest.mark.parametrize("index", range(len(python_blocks((ROOT / "README.md").read_text(encoding="utf-8")))))
def test_readme_python_block_runs_offline(index, layout_dir, tmp_path):
    block = tiny(python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))[index])
    env = {**os.environ, "PHOTOSTYLE_DATA": str(layout_dir), "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=1200)  # a hang guard: seconds quietly, minutes on a loaded machine
    assert proc.returncode == 0, f"README python block {index} failed:\n{block}\n{proc.stderr[-3000:]}"
    # What the transfer example promises: the image with its weights label, the metadata beside it.
    for png in tmp_path.glob("*.png"):
        meta = json.loads((tmp_path / f"{png.name}.json").read_text())
        assert Image.open(png).text.get(WEIGHTS_TEXT_KEY) == weights_text(meta["weights_warning"])[WEIGHTS_TEXT_KEY]
        assert meta["network"]["kind"] == "original" and meta["evaluations"] >= 1  # the example's weights
        assert max(Image.open(png).size) == 48
