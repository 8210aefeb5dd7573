"""The run cache's entries on disk: a folder per run, its manifest, and the checks made on reading it.

An entry (``runs/<key>``) carries ``manifest.json``: every file's size and sha256.
:func:`read_entry` checks them and that every file the entry's kind needs is there; an
entry with a missing, truncated or altered file, no manifest, or a file in the entry's place
is discarded (one warning line on stderr naming it) and its run computed again
(``runs.run_cached``). Runs stopped before the end are kept apart (:func:`keep_interrupted`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from photostyle_lib.engine.presets import PRESETS
from photostyle_lib.io.metadata import file_digest, write_json
from photostyle_lib.io.outputs import temp_prefix

MANIFEST = "manifest.json"


def was_interrupted(md: dict[str, Any]) -> bool:
    """True if the run (or the first stage of a two-stage one) was stopped by Ctrl-C: not a result."""
    notes = md.get("notes") or ()
    return md.get("stop_reason") == "interrupted" or any("stopped: interrupted" in str(n) for n in notes)


def keep_interrupted(tmp: Path, dest: Path) -> None:
    """Move an interrupted run's folder to ``dest`` (replacing an older one): a partial result to look at."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        shutil.rmtree(dest, ignore_errors=True)
    try:
        os.replace(tmp, dest)
    except OSError:
        pass  # another process is writing the same key: its copy will do


def _entry_files(folder: Path) -> list[Path]:
    """The entry's files, its manifest and hidden files excepted, by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST and not p.name.startswith("."))


def write_manifest(folder: Path) -> None:
    """``manifest.json``: {"format", "files": {name: {"bytes", "sha256"}}} of every file in ``folder``."""
    files = {p.name: {"bytes": p.stat().st_size, "sha256": file_digest(p)} for p in _entry_files(folder)}
    write_json({"format": 1, "files": files}, folder / MANIFEST)


def _required_files(md: dict[str, Any]) -> list[str]:
    """The files every complete entry of this run's kind holds (``RunRecord``'s docstring)."""
    names = ["metadata.json", "image.png", "content.png", "style.png"]
    if md.get("method") in PRESETS:
        names += ["raw.png", "losses.csv"]
        config = md.get("config")
        if isinstance(config, dict) and config.get("segmentation", "none") != "none":
            names.append("masks.npz")
    return names


def _missing_file(folder: Path) -> str | None:
    """The first file a complete entry needs that ``folder`` lacks, as a problem; None if all are there."""
    try:
        md = json.loads((folder / "metadata.json").read_text())
    except (OSError, ValueError) as exc:
        return f"metadata.json is unreadable ({type(exc).__name__})"
    if not isinstance(md, dict):
        return "metadata.json is not an object"
    for name in _required_files(md):
        if not (folder / name).is_file():
            return f"{name} is missing"
    return None


def entry_problem(folder: Path) -> str | None:
    """What is wrong with a cache entry, or None if every file matches its manifest and none is missing."""
    man = folder / MANIFEST
    if not man.exists():
        return _missing_file(folder) or f"{MANIFEST} is missing"
    try:
        files = json.loads(man.read_text())["files"]
        files.items()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"{MANIFEST} is unreadable"
    if "metadata.json" not in files:
        return "metadata.json is not in the manifest"
    missing = _missing_file(folder)
    if missing is not None:
        return missing
    for name, want in files.items():
        p = folder / name
        if not p.is_file():
            return f"{name} is missing"
        if p.stat().st_size != want.get("bytes"):
            return f"{name} has {p.stat().st_size} bytes, the manifest says {want.get('bytes')}"
        if file_digest(p) != want.get("sha256"):
            return f"{name} does not match its sha256 in the manifest"
    return None


def read_entry(final: Path) -> dict[str, Any] | None:
    """The metadata of the intact entry ``final``; None if there is none (a damaged one is discarded,
    with one warning line on stderr naming it, and a legacy one given a manifest)."""
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        print(f"photostyle: warning: cache entry {final} is not a folder; removing it and recomputing the run",
              file=sys.stderr, flush=True)
        try:
            final.unlink()
        except OSError:
            pass  # another process removed it first
        return None
    if not (final / "metadata.json").exists() and not (final / MANIFEST).exists():
        if final.is_dir() and not any(final.iterdir()):
            final.rmdir()
        elif not final.exists():
            return None
    if final.is_dir():
        problem = entry_problem(final)
        if problem is None:
            return json.loads((final / "metadata.json").read_text())
        print(f"photostyle: warning: cache entry {final} is damaged ({problem}); discarding and recomputing it",
              file=sys.stderr, flush=True)
        trash = final.with_name(f"{temp_prefix(final.name)}damaged{time.monotonic_ns()}")  # stale if we die
        try:
            os.replace(final, trash)
        except OSError:
            return None  # another process moved it first
        shutil.rmtree(trash, ignore_errors=True)
    return None


