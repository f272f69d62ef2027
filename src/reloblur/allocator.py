"""Freed memory kept in the process, so that image-sized temporaries cost no page faults.

A pair at ReLoBlur's size allocates and frees arrays of 3-37 MB dozens of times. With
glibc's defaults each of them comes from the kernel (``mmap`` above 128 KiB, and the heap
top trimmed on free), so every new array faults its pages in again and the kernel zeroes
them. On ``reloblur align --workers 1`` with 4 pairs at 2152x1436 that kernel time was
1.7 s of 7.2 s; with the settings below 0.3-0.8 s of 5.8-6.3 s (``docs/benchmarks.md``).
Blocks over 32 MiB, which glibc maps whatever its threshold, took ``mask generate`` on a
3840x2160 pair from 5.2 s to 12 s in one process (``docs/mask-benchmark-log.md``, "At full size")
until mmap was switched off too.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform

# mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4

# glibc's ceiling for the mmap threshold on 64-bit systems (larger values are refused):
# blocks up to it come from the heap and are reused there. Larger ones would still be
# mapped each for itself (a plane of float32 at 3840x2160 is 33 MB, an RGB float32 image at
# 2152x1436 37 MB), so mmap is switched off as well (M_MMAP_MAX 0): every block comes from
# the heap, and glibc falls back to mmap only where the heap cannot grow.
MMAP_THRESHOLD = 32 << 20
# Freed memory at the heap top is kept up to this much (the process's peak stays mapped).
TRIM_THRESHOLD = 1 << 30


@functools.cache
def keep_freed_memory() -> bool:
    """Ask glibc's allocator to serve every block from its heap and keep what is freed.

    Call it once at the start of a process that runs an image pipeline (the batch runner
    does, in itself and in each worker). A no-op, returning False, where the C library is
    not glibc or where the user set ``MALLOC_*`` variables to tune it themselves.

    Returns
    -------
    bool
        True when both settings were applied.
    """
    # musl has a mallopt too, which does nothing: only glibc's is asked.
    if platform.libc_ver()[0] != "glibc" or any(name.startswith("MALLOC_") for name in os.environ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return (bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
            and bool(mallopt(_M_MMAP_MAX, 0)))
