"""Fault injection on Dask workers (test_sweep): a worker plugin that wraps ``pipeline.stylize`` (the one run path's engine call).

A plugin, not a monkeypatch: it is set up again on the worker the nanny starts after a kill.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from distributed import WorkerPlugin


def claim(path: Path) -> bool:
    """True for the one caller, across processes, that creates ``path`` first."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


class StylizeFaults(WorkerPlugin):
    """On every worker: log each ``stylize`` start and finish to ``folder/log``; the first call of
    all SIGKILLs its worker (mid-task: the run has loaded its images and written its temp folder);
    the second raises OSError (a transient fault, for ``retries=``)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def setup(self, worker) -> None:
        from photostyle_lib.experiments import pipeline

        real = getattr(pipeline.stylize, "real", pipeline.stylize)
        folder = Path(self.folder)

        def log(word: str) -> None:
            with open(folder / "log", "a") as f:
                f.write(f"{word} {os.getpid()}\n")

        def stylize(*args, **kwargs):
            log("start")
            if claim(folder / "killed"):
                os.kill(os.getpid(), signal.SIGKILL)
            if claim(folder / "raised"):
                raise OSError("injected transient fault")
            result = real(*args, **kwargs)
            log("done")
            return result

        stylize.real = real
        pipeline.stylize = stylize
