"""The committed records and the pages that cite them agree with the files in the repository.

``records/README.md`` is the index: one table row per ``records/<study>/<variant>/`` folder,
naming the ``studies/<study>.py`` command that made it. Every relative link of the README and
the pages in ``docs/`` must lead to a file or folder that exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "records"
INDEX = RECORDS / "README.md"
PAGES = [ROOT / "README.md", INDEX, ROOT / "results" / "README.md", ROOT / "benchmarks" / "README.md",
         *sorted((ROOT / "docs").glob("*.md"))]

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
SCRIPT = re.compile(r"`(studies/(\w+)\.py)\b")
NO_SCRIPT = "no script"
DATA_SUFFIXES = {".csv", ".json"}


def index_rows(text: str) -> list[list[str]]:
    """The record table's body rows, as lists of stripped cells (header and rule left out)."""
    rows = [line for line in text.splitlines() if line.startswith("| [")]
    return [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows]


def row_folder(cells: list[str]) -> str:
    """The record folder a row links to, relative to records/ and without its trailing slash."""
    found = LINK.search(cells[0])
    assert found, f"the first cell names no folder: {cells[0]}"
    return found.group(1).rstrip("/")


def record_folders() -> set[str]:
    """Every ``<study>/<variant>`` folder under records/."""
    return {f"{study.name}/{variant.name}" for study in RECORDS.iterdir() if study.is_dir()
            for variant in study.iterdir() if variant.is_dir()}


def links(page: Path) -> list[str]:
    """The relative link targets of a markdown page, outside fenced code, anchors removed."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    targets = [m.group(1) for m in LINK.finditer(text)]
    return [t.split("#", 1)[0] for t in targets
            if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def test_index_names_every_record_folder_once():
    rows = index_rows(INDEX.read_text(encoding="utf-8"))
    named = [row_folder(cells) for cells in rows]
    assert len(named) == len(set(named)), f"a folder is named twice: {sorted(named)}"
    on_disk = record_folders()
    assert on_disk, "records/ holds no record folder"
    assert set(named) - on_disk == set(), "the index names folders that do not exist"
    assert on_disk - set(named) == set(), "record folders missing from the index"


def test_index_rows_have_six_cells():
    for cells in index_rows(INDEX.read_text(encoding="utf-8")):
        assert len(cells) == 6 and all(cells), f"a row needs record, command, network, pairs, what, status: {cells}"


def test_every_command_names_its_study_script():
    for cells in index_rows(INDEX.read_text(encoding="utf-8")):
        folder, command = row_folder(cells), cells[1]
        script = SCRIPT.search(command)
        if script is None:
            assert command.startswith(NO_SCRIPT), f"{folder}: the command names no studies/ script"
            continue
        assert (ROOT / script.group(1)).is_file(), f"{folder}: {script.group(1)} does not exist"
        assert folder.split("/")[0] == script.group(2), f"{folder}: the study folder is not named after {script.group(1)}"


def test_every_record_holds_a_data_file():
    for folder in sorted(record_folders()):
        files = [p for p in (RECORDS / folder).rglob("*") if p.suffix in DATA_SUFFIXES]
        assert files, f"records/{folder} holds no .csv or .json"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    missing = [t for t in links(page) if not (page.parent / t).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing paths: {missing}"


def test_links_leave_out_web_addresses_anchors_and_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[here](there.md) [web](https://example.org) [anchor](#x)\n```\n[code](no.md)\n```\n")
    assert links(page) == ["there.md"]
