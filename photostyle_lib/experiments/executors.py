"""Executors for many independent runs: here one after another, a local process pool, or Dask.

:func:`make_executor` gives ``runs.run_many`` and ``sweep.score_runs`` a
``concurrent.futures``-style executor (or None: serial). Every task writes its
own cached result, so work done before an interruption or a lost worker is kept.

Threads. Every process this project starts to compute in (worker processes here,
notebook kernels in ``runner``) gets its thread counts from the cores this process
may use (:func:`available_cores`, its CPU affinity) shared among the processes, and
OpenMP's passive wait policy (:func:`child_threads`). torch's OpenMP threads spin at
the end of every parallel region by default; on a busy machine the partner thread
is often descheduled, and both spin their time slices away. Measured on a 2-core VM
at load 7: notebook 06's ci computation (pair 8, every method) took 203 s (196 s of
CPU) with the default policy, 21 s with ``OMP_WAIT_POLICY=PASSIVE``, 17 s with one
thread. The metrics notebook's test (``tests/experiments/test_sweep.py``), 37 s on the quiet
machine, took over 900 s loaded 3-4x; beside six busy loops (load 10) it took 751 s
before this setting (the kernel: 347 s of CPU) and 140 s with it.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from photostyle_lib.checks import check_choice, check_int
from photostyle_lib.errors import PhotostyleError, require_extra

#: The executor kinds :func:`make_executor` makes.
EXECUTORS = ("serial", "process", "dask")


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity (``taskset``, a cgroup cpuset), else the machine's count.

    Returns
    -------
    int
        At least 1.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1


def thread_environment(threads: int) -> dict[str, str]:
    """Environment variables for a child process that computes on ``threads`` threads.

    Parameters
    ----------
    threads : int
        Threads for torch (OpenMP, MKL) and numba in the child, >= 1.

    Returns
    -------
    dict of str to str
        ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``NUMBA_NUM_THREADS`` and
        ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep instead of spinning:
        read once, when torch loads, hence set before the child starts).

    Raises
    ------
    PhotostyleError
        If ``threads`` is not an integer >= 1.
    """
    n = str(check_int("threads", threads, low=1))
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "NUMBA_NUM_THREADS": n, "OMP_WAIT_POLICY": "PASSIVE"}


@contextlib.contextmanager
def child_threads(threads: int) -> Iterator[dict[str, str]]:
    """Within the block, processes started from this one get :func:`thread_environment` (``threads``).

    A variable already set in this process's environment wins (a user's
    ``OMP_NUM_THREADS=1``); the environment is restored when the block ends.

    Parameters
    ----------
    threads : int
        Threads per child process, >= 1.

    Yields
    ------
    dict of str to str
        The variables set for the block (those the environment did not already have).

    Raises
    ------
    PhotostyleError
        If ``threads`` is not an integer >= 1.
    """
    added = {k: v for k, v in thread_environment(threads).items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield added
    finally:
        for k in added:
            os.environ.pop(k, None)


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
        (default: half the available cores, at least 1), started with "spawn"
        (torch is not fork-safe) and with the cores shared between them
        (:func:`child_threads`: available cores // workers threads each).
        ``"dask"`` yields a ``distributed.Client``: connected to the scheduler
        at ``address`` (e.g. "tcp://10.0.0.5:8786"; an existing cluster, used
        as it is), or, without an address, to a new local cluster of
        ``workers`` processes, threads shared alike, that is shut down on exit.
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
    cores = available_cores()
    n = check_int("workers", workers, low=1) if workers is not None else max(1, cores // 2)
    per_worker = max(1, cores // n)
    if kind == "serial":
        yield None
        return
    if kind == "process":
        import multiprocessing

        # The pool spawns its workers at the first task, inside the block: the environment stays set till then.
        with child_threads(per_worker):
            pool = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_init_worker, initargs=(per_worker,))
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
    with child_threads(per_worker), distributed.LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        client.run(_init_worker, per_worker)
        yield client


class PeakRSS:
    """Peak resident memory of this process *during* a block, sampled every 50 ms.

    ``ru_maxrss`` is the process's lifetime peak, which in a long-lived worker
    includes earlier tasks; sampling /proc/self/statm bounds the run itself.
    Where /proc is missing (macOS, Windows) the lifetime peak is reported and
    the field name says so.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._proc = Path("/proc/self/statm").exists()

    def _sample(self) -> None:
        try:
            rss = int(Path("/proc/self/statm").read_text().split()[1]) * self._page
        except (OSError, ValueError, IndexError):
            return
        self.peak = max(self.peak, rss)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "PeakRSS":
        if self._proc:
            self._sample()
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc:
            self._stop.set()
            self._thread.join()
            self._sample()

    def report(self, device: Any) -> dict[str, float]:
        """``{"run_peak_rss_mb"}`` (or the lifetime ``process_peak_rss_mb`` without /proc), in MiB, and on a
        CUDA ``device`` (a torch.device) ``cuda_peak_allocated_mb``."""
        if self._proc:
            out = {"run_peak_rss_mb": self.peak / 2 ** 20}
        else:
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            out = {"process_peak_rss_mb": rss / 2 ** 20 if sys.platform == "darwin" else rss / 1024}
        if device.type == "cuda":
            import torch

            out["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
        return out
