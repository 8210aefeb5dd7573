"""Keep freed memory in the process for the CPU engine (glibc only).

glibc's malloc serves every block above 32 MiB (a 64-channel feature map of
a 512 px image is 42 MiB) with a fresh ``mmap`` and returns it to the system
on ``free``; the next step's tensor of the same size then page-faults on
every 4 KiB page it touches. An optimisation step allocates dozens of such
maps, and the faults cost about a third of a ``full`` step on the CPU
(benchmarks/bench_engine.py). PyTorch keeps freed GPU memory in its caching
allocator for the same reason; on the CPU it relies on malloc, so this
module tells glibc to do the same: serve large blocks from the heap
(``M_MMAP_MAX = 0``) and keep freed heap memory (``M_TRIM_THRESHOLD`` at its
maximum). The process's resident memory then stays at its peak after a run,
instead of falling back; measured for two 15-step ``full`` runs at 700 px:
peak 3.0 GiB (2.8 GiB without), and 3.0 GiB still held afterwards (1.3 GiB
without), reused by the next run.

Set ``PHOTOSTYLE_KEEP_FREED_MEMORY=0`` to leave malloc as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

ENV_VAR = "PHOTOSTYLE_KEEP_FREED_MEMORY"
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_state: dict[str, bool] = {}


def keep_freed_memory() -> bool:
    """Configure glibc malloc as described above, once per process.

    Returns
    -------
    bool
        True when the setting is in effect (glibc, not switched off by
        ``$PHOTOSTYLE_KEEP_FREED_MEMORY=0``), False otherwise; nothing else changes.
    """
    if "applied" in _state:
        return _state["applied"]
    applied = False
    if os.environ.get(ENV_VAR, "1") != "0" and platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            applied = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
        except (OSError, AttributeError):
            applied = False
    _state["applied"] = applied
    return applied
