"""Executors for many independent runs: here one after another, a local process pool, or Dask.

:func:`make_executor` gives ``runs.run_many`` and ``sweep.score_runs`` a
``concurrent.futures``-style executor (or None: serial). Every task writes its
own cached result, so work done before an interruption or a lost worker is kept.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from photostyle_lib.checks import check_choice, check_int
from photostyle_lib.errors import PhotostyleError, require_extra

#: The executor kinds :func:`make_executor` makes.
EXECUTORS = ("serial", "process", "dask")


def _init_worker(threads: int) -> None:
    """Process-pool initializer: share the cores between workers instead of oversubscribing them."""
    import torch

    torch.set_num_threads(threads)


@contextlib.contextmanager
def make_executor(kind: str = "serial", *, address: str | None = None, workers: int | None = None,
                  timeout: float = 30.0) -> Iterator[Any]:
    """A ``concurrent.futures``-style executor for ``runs.run_many`` / :func:`score_runs`, as a context manager.

    Parameters
    ----------
    kind : "serial" | "process" | "dask"
        ``"serial"`` yields None (tasks run one after another in this process).
        ``"process"`` yields a ``ProcessPoolExecutor`` of ``workers`` processes
        (default: half the cores, at least 1), started with "spawn" (torch is not
        fork-safe) and with the cores shared between them.
        ``"dask"`` yields a ``distributed.Client``: connected to the scheduler
        at ``address`` (e.g. "tcp://10.0.0.5:8786"; an existing cluster, used
        as it is), or, without an address, to a new local cluster of
        ``workers`` processes that is shut down on exit.
    address : str, optional
        Dask scheduler address (``kind="dask"`` only).
    workers : int, optional
        Number of local worker processes (not used with an address).
    timeout : float
        Seconds to wait for the scheduler at ``address``.

    Every task writes its own cached result, so work done before an
    interruption or a lost worker is kept.

    Yields
    ------
    None, ProcessPoolExecutor or distributed.Client
        As ``kind`` says; the pool or local cluster is shut down when the ``with`` block ends.

    Raises
    ------
    PhotostyleError
        For an unknown kind, an ``address`` with a kind other than "dask", ``workers`` < 1,
        ``kind="dask"`` without the ``[dask]`` extra (distributed), or a scheduler that cannot
        be reached.
    """
    check_choice("executor kind", kind, EXECUTORS)
    if address is not None and kind != "dask":
        raise PhotostyleError(f"a scheduler address is for kind='dask', got kind={kind!r}")
    cores = os.cpu_count() or 1
    n = check_int("workers", workers, low=1) if workers is not None else max(1, cores // 2)
    if kind == "serial":
        yield None
        return
    if kind == "process":
        import multiprocessing

        pool = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(max(1, cores // n),))
        try:
            yield pool
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return
    distributed = require_extra("distributed", "dask", "the Dask executor (kind='dask')")
    if address is not None:
        try:
            client = distributed.Client(address, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise PhotostyleError(f"cannot reach the Dask scheduler at {address} ({type(exc).__name__}: {exc}); "
                                  "check the address (dask scheduler prints it) and that it is running") from None
        with client:
            yield client
        return
    with distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        client.run(_init_worker, max(1, cores // n))
        yield client
