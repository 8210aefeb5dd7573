"""Atomic file writes: a file holds its old bytes or all the new ones, never a part.

A write goes to a temp file beside its target (:func:`stage_file`), which is
fsync'ed and renamed onto it (:func:`commit_files`); several files (an image and
its metadata) are staged first and renamed back to back.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.outputs import PathLike, temp_prefix


def _default_file_mode() -> int:
    """0o666 less the process's umask (0o644 under the usual 022): what ``open()`` would create.

    Read once at import, where no other thread can see the umask change.
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


#: Mode of every file the project writes (images, metadata, cache files): as a plain ``open()``.
FILE_MODE = _default_file_mode()


def stage_file(path: PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a file's new content beside ``path`` without touching ``path``; return the temp file.

    The temp file (``.<name>.<host>~<pid>~*.tmp`` in ``path``'s folder, so the rename is
    within one file system, and a later run can tell it was left by a dead process:
    ``outputs.remove_stale_temps``) gets :data:`FILE_MODE`, is flushed and fsync'ed, then handed
    to :func:`commit_files`.

    Parameters
    ----------
    path : str or os.PathLike
        The final path; its folder must exist.
    write : callable (binary file) -> None
        Fills the binary file it is given.

    Returns
    -------
    pathlib.Path
        The staged temp file.

    Raises
    ------
    PhotostyleError
        If the file cannot be written (full disk, read-only folder): the temp file is
        removed and ``path`` is as it was. Any other exception of ``write`` (a signal)
        propagates unchanged, after the same clean-up.
    """
    p = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=temp_prefix(p.name), suffix=".tmp")
    except OSError as exc:
        raise write_error(p, exc) from None
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise write_error(p, exc) from None
        raise
    return Path(tmp)


def write_error(path: Path, exc: OSError) -> PhotostyleError:
    """One line for a failed write (full disk, read-only folder): what happened and what to do."""
    return PhotostyleError(f"cannot write {path} ({exc.strerror or exc}); free some space or choose a "
                           "writable path (the old file, if any, is unchanged)")


def commit_files(staged: Iterable[tuple[Path, Path]]) -> None:
    """Rename each staged temp file onto its final path, in the order given, then fsync their folders.

    Each rename is atomic: a reader (or a crash) sees the old file or the new
    one, never a part. Several files (an image and its metadata) are renamed
    back to back, the metadata last; a crash between two renames (a window of
    microseconds) is detectable because the metadata records its image's
    sha256. Temp files not renamed (an error mid-way) are removed.

    Parameters
    ----------
    staged : iterable of (pathlib.Path, pathlib.Path)
        (temp file from :func:`stage_file`, final path) pairs.

    Raises
    ------
    PhotostyleError
        If a rename fails (the final path is a folder, the file system refuses).
    """
    staged = list(staged)
    try:
        for tmp, final in staged:
            try:
                os.replace(tmp, final)
            except OSError as exc:
                raise write_error(final, exc) from None
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
    for folder in {final.parent for _, final in staged}:
        _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    """Make renames in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_file_atomically(path: PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """:func:`stage_file` then :func:`commit_files`: ``path`` holds the old bytes or all the new ones.

    Parameters
    ----------
    path : str or os.PathLike
    write : callable (binary file) -> None
        As :func:`stage_file`.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    p = Path(path)
    commit_files([(stage_file(p, write), p)])
    return p


def check_writable(path: PathLike) -> Path:
    """Make ``path``'s folder if needed and check that ``path`` can be written as a file.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    PhotostyleError
        If ``path`` is a directory, its folder cannot be created, or the folder is not writable.
    """
    p = Path(path)
    if p.is_dir():
        raise PhotostyleError(f"{p} is a directory; give a file path such as {p / 'out.png'}")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PhotostyleError(f"cannot create the folder {p.parent} ({exc.strerror or exc}); "
                              "choose another output path") from None
    if not os.access(p.parent, os.W_OK):
        raise PhotostyleError(f"the folder {p.parent} is not writable; choose another output path")
    return p
