"""Freed memory kept in the process, so that image-sized temporaries cost no page faults.

A pair at ReLoBlur's size allocates and frees arrays of 3-37 MB dozens of times. With
glibc's defaults each of them comes from the kernel (``mmap`` above 128 KiB, and the heap
top trimmed on free), so every new array faults its pages in again and the kernel zeroes
them. On ``reloblur align`` at 2152x1436 that kernel time was a fifth of the wall time
(``docs/benchmarks.md``): 1.7 of 7.2 s on 4 pairs, 0.3 s with the settings below.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

# mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# glibc's ceiling for the mmap threshold on 64-bit systems (larger values are refused):
# blocks up to it come from the heap and are reused there.
MMAP_THRESHOLD = 32 << 20
# Freed memory at the heap top is kept up to this much (the process's peak stays mapped).
TRIM_THRESHOLD = 1 << 30


@functools.cache
def keep_freed_memory() -> bool:
    """Ask glibc's allocator to serve blocks up to 32 MiB from its heap and keep what is freed.

    Call it once at the start of a process that runs an image pipeline (the batch runner
    does, in itself and in each worker). A no-op, returning False, where the C library is
    not glibc or where the user set ``MALLOC_*`` variables to tune it themselves.

    Returns
    -------
    bool
        True when both settings were applied.
    """
    if not sys.platform.startswith("linux") or any(name.startswith("MALLOC_") for name in os.environ):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  (musl has a mallopt that does nothing)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
