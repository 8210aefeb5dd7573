"""What a door may write: every collision found before work starts, and temp files a rerun cleans.

One rule for every door that writes (``transfer``, ``batch``, ``segment``,
``report``, ``--save-every`` snapshots, the app's Save): no existing file is
replaced without ``--overwrite``; no input is ever replaced, even with it; all
collisions are found before any work starts (:func:`check_outputs`); writes are
atomic (``images.stage_file`` / ``images.commit_files``).

Temp files and folders carry their writer's host and process id in their name
(:func:`temp_prefix`), so a later run tells a live writer's temp file from one
that a killed process (SIGKILL, SIGTERM, power loss) left behind, and removes
the latter (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from photostyle_lib.errors import PhotostyleError

PathLike = str | os.PathLike
#: Temp files without a writer tag (written before tags existed) older than this are stale (seconds).
UNTAGGED_STALE_SECONDS = 3600.0
#: Temp files of another host older than this are stale (its writer cannot be asked; seconds).
FOREIGN_STALE_SECONDS = 24 * 3600.0


def _host() -> str:
    """This machine's name, reduced to characters that are safe in a file name and free of the tag's ``~``."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def temp_prefix(name: str) -> str:
    """The prefix of a temp file or folder for ``name``: ``.<name>.<host>~<pid>~`` (see :func:`temp_owner`)."""
    return f".{name}.{_host()}~{os.getpid()}~"


def temp_owner(entry: str, name: str) -> tuple[str, int] | None:
    """``(host, pid)`` of the process that made the temp entry ``entry`` for ``name``; None if untagged."""
    m = re.match(rf"^\.{re.escape(name)}\.([A-Za-z0-9-]+)~(\d+)~", entry)
    return None if m is None else (m.group(1), int(m.group(2)))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _stale(entry: Path, name: str) -> bool:
    """True if the temp ``entry`` for ``name`` belongs to no live writer."""
    owner = temp_owner(entry.name, name)
    try:
        age = time.time() - entry.lstat().st_mtime
    except OSError:
        return False
    if owner is None:
        return age > UNTAGGED_STALE_SECONDS
    host, pid = owner
    if host != _host():
        return age > FOREIGN_STALE_SECONDS
    return pid != os.getpid() and not _pid_alive(pid)


def remove_stale_temps(path: PathLike) -> list[Path]:
    """Remove temp files and folders for ``path`` (``.<name>.*`` beside it) that no live process writes.

    Parameters
    ----------
    path : str or os.PathLike
        A final path (an output file, a cache entry); its folder need not exist.

    Returns
    -------
    list of pathlib.Path
        What was removed.
    """
    p = Path(path)
    removed = []
    try:
        entries = list(p.parent.glob(f".{glob_escape(p.name)}.*"))
    except OSError:
        return removed
    for entry in entries:
        if not _stale(entry, p.name):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            pass  # another process removed it first, or it is not ours to remove
    return removed


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters quoted, for ``Path.glob``."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _same_file(a: Path, b: Path) -> bool:
    """True if ``a`` and ``b`` name one file: equal after resolving symlinks and ``..``, or one inode."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overwriting_inputs(outputs: Iterable[PathLike], inputs: Mapping[str, PathLike | None]) -> None:
    """Refuse output paths that are one of the input files.

    Paths are compared after resolving symlinks and ``..`` (and by inode, for
    hard links), so ``-o ./x/../content.png`` or a link to the style photo is
    caught. ``--overwrite`` never allows it: it would destroy what the user gave.

    Parameters
    ----------
    outputs : iterable of str or os.PathLike
        Paths about to be written (``~`` expanded).
    inputs : mapping of str to path or None
        Role ("content", "style", ...) -> input path; None entries are skipped.

    Raises
    ------
    PhotostyleError
        If an output is an input file, naming its role.
    """
    for out in outputs:
        o = Path(out).expanduser()
        for role, given in inputs.items():
            if given is None:
                continue
            i = Path(given).expanduser()
            if _same_file(o, i):
                raise PhotostyleError(f"output {o} is the {role} file {i}; choose another output path "
                                      "(--overwrite never replaces an input)")


def check_folder(folder: PathLike) -> None:
    """Check that ``folder`` is, or can be made as, a writable folder; nothing is created.

    Parameters
    ----------
    folder : str or os.PathLike

    Raises
    ------
    PhotostyleError
        If ``folder`` or an ancestor is a file, or the nearest existing ancestor is not writable.
    """
    folder = Path(folder).expanduser()
    probe = folder
    while not probe.exists():
        if probe.is_symlink() or probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise PhotostyleError(f"cannot write into {folder}: {probe} is a file, not a folder; "
                              "choose another output path")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise PhotostyleError(f"the folder {probe} is not writable; choose another output path")


def check_outputs(outputs: Iterable[PathLike], inputs: Mapping[str, PathLike | None] | None = None, *,
                  overwrite: bool = False, flag: str = "--overwrite",
                  replaceable: Callable[[Path], bool] | None = None) -> list[Path]:
    """Every reason not to write ``outputs``, found before any work starts; stale temp files removed.

    Creates nothing: a refused command leaves no empty folder behind.

    Parameters
    ----------
    outputs : iterable of str or os.PathLike
        Every file the command will write (``~`` expanded).
    inputs : mapping of str to path or None, optional
        Role -> file the command reads: never replaced, whatever ``overwrite`` says.
    overwrite : bool, keyword-only
        Replace existing files.
    flag : str, keyword-only
        How the user says ``overwrite`` (``--overwrite``, ``overwrite=True``), for the message.
    replaceable : callable (Path) -> bool, optional, keyword-only
        True for an existing file this door made and may refresh without ``overwrite``
        (a report page, a batch summary).

    Returns
    -------
    list of pathlib.Path
        The outputs, ``~`` expanded.

    Raises
    ------
    PhotostyleError
        Naming the path: two outputs are one file, an output is an input file, a folder, an
        existing file (without ``overwrite``), or lies in a folder that cannot be written.
    """
    paths = [Path(p).expanduser() for p in outputs]
    seen: dict[Path, Path] = {}
    for p in paths:
        key = Path(os.path.abspath(p))
        if key in seen:
            raise PhotostyleError(f"{seen[key]} would be written twice; give distinct output paths")
        seen[key] = p
    refuse_overwriting_inputs(paths, inputs or {})
    for p in paths:
        if p.is_dir():
            raise PhotostyleError(f"output {p} is a folder; give a file path such as {p / 'out.png'}")
        if (p.exists() or p.is_symlink()) and not overwrite and not (replaceable is not None and replaceable(p)):
            raise PhotostyleError(f"{p} already exists; choose another output path or pass {flag} to replace it")
        check_folder(p.parent)
        remove_stale_temps(p)
    return paths
