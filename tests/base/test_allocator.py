from __future__ import annotations

import ctypes
import platform
import subprocess
import sys

import numpy as np
import pytest

from reloblur.batch import run_batch

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# A fresh process: what the allocator keeps after a 20 MB array is freed, per mallinfo2.
PROBE = """
import ctypes, sys
import numpy as np
from reloblur.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
size = int(sys.argv[2]) << 20
array = np.ones(size, np.uint8)
mapped_while_used = libc.mallinfo2().hblkhd
del array
print(applied, mapped_while_used >= size, libc.mallinfo2().fordblks >= size)
"""


@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's; elsewhere keep_freed_memory does nothing")
@pytest.mark.parametrize("size_mb", [20, 40])
def test_freed_image_sized_blocks_stay_in_the_process(size_mb):
    """20 MB: under glibc's largest mmap threshold; 40 MB: over it (an RGB float32 image at
    2152x1436 is 37 MB), which only switching mmap off keeps in the heap."""
    def probe(mode: str) -> str:
        return subprocess.run([sys.executable, "-c", PROBE, mode, str(size_mb)], capture_output=True, text=True,
                              check=True).stdout.split()

    # glibc's default: the block is mapped for itself and handed back to the kernel.
    assert probe("default") == ["False", "True", "False"]
    # Kept: it comes from the heap and stays there, free, for the next array.
    assert probe("keep") == ["True", "False", "True"]


def test_a_user_tuned_allocator_is_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    from reloblur import allocator

    allocator.keep_freed_memory.cache_clear()
    try:
        assert allocator.keep_freed_memory() is False
    finally:
        allocator.keep_freed_memory.cache_clear()


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]


def freed_block_is_kept(size_mb: int) -> bool:
    """In whichever process runs it: is a freed block of ``size_mb`` still the allocator's?"""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    array = np.ones(size_mb << 20, np.uint8)
    del array
    return bool(libc.mallinfo2().fordblks >= size_mb << 20)


@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's; elsewhere keep_freed_memory does nothing")
@pytest.mark.parametrize("workers", [1, 2])
def test_every_batch_process_keeps_freed_memory(workers):
    result = run_batch(freed_block_is_kept, [20, 40], workers=workers, progress=False)
    assert list(result.results.values()) == [True, True]
