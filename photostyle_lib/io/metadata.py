"""Provenance written next to every result: parameters, weights, timings, versions, git revision."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from photostyle_lib.io.data import SOURCE_ROOT

#: git_revision() of an installed package (a wheel) or a checkout without git.
NOT_A_CHECKOUT = "unknown (not a git checkout)"


def git_revision(root: Path | None = SOURCE_ROOT) -> str:
    """Commit hash of the source checkout the package runs from (``+dirty`` with uncommitted changes).

    ``root`` None (an installed wheel: no checkout), a folder outside a git work tree, or
    no git on the PATH: :data:`NOT_A_CHECKOUT`. git runs in ``root``, never in the working
    directory, so a wheel used inside some other repository does not report that one's commit.
    """
    if root is None:
        return NOT_A_CHECKOUT
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return NOT_A_CHECKOUT


def versions() -> dict[str, str]:
    """Versions of Python and the libraries a result depends on."""
    import numpy
    import scipy
    import torch
    import torchvision

    import photostyle_lib

    return {"photostyle": photostyle_lib.__version__, "python": platform.python_version(),
            "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": numpy.__version__, "scipy": scipy.__version__,
            "cuda": torch.version.cuda or "none"}


def device_description(device: Any) -> str:
    """What ran a computation, for timings to be read against: the GPU's name, or the CPU and threads.

    device: a torch.device or its string ("cpu", "cuda", "cuda:1", "mps").
    """
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)} (CUDA {torch.version.cuda})"
    if dev.type == "cpu":
        return f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    return dev.type


def jsonable(value: Any) -> Any:
    """Turn dataclasses, paths, tuples and numpy scalars into JSON-friendly values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def file_digest(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def base_metadata() -> dict[str, Any]:
    """Fields every metadata file carries: time, git revision, versions, host."""
    return {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "git_revision": git_revision(), "versions": versions(), "host": platform.node()}


def _json_bytes(data: dict[str, Any]) -> bytes:
    return (json.dumps(jsonable(data), indent=2, sort_keys=False) + "\n").encode()


def stage_json(data: dict[str, Any], path: str | os.PathLike) -> Path:
    """``data`` as indented JSON in a staged temp file beside ``path`` (images.stage_file; folders made).

    Raises
    ------
    PhotostyleError
        If the folder cannot be made or the file written (full disk, read-only folder).
    """
    from photostyle_lib.io.images import write_error, stage_file

    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(p, exc) from None
    blob = _json_bytes(data)
    return stage_file(p, lambda f: f.write(blob))


def write_json(data: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``data`` as indented JSON atomically (temp file, fsync, rename; mode images.FILE_MODE)."""
    from photostyle_lib.io.images import commit_files

    p = Path(path)
    commit_files([(stage_json(data, p), p)])
    return p
