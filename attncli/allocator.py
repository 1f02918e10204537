"""The C allocator's handling of freed memory, tuned for forward passes.

Every layer of a forward pass allocates and frees arrays of a few megabytes. By
default glibc serves such blocks with fresh mappings and hands them back to the
kernel when they are freed, so the next array of that size pays a page fault for
each 4 KB: about a quarter of a 512-token MiniLM pass. Serving them from the heap
and keeping freed memory there for reuse removes that cost; the peak memory stays
what it was, since freed blocks are reused rather than added to.
"""

import ctypes
import sys

__all__ = ["keep_freed_memory"]

# mallopt parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_GIB = 1 << 30


def keep_freed_memory() -> None:
    """Have glibc serve blocks of up to 1 GiB from the heap and keep up to 1 GiB of freed
    memory there, instead of mapping and unmapping them. Does nothing without glibc."""
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, _GIB)
    mallopt(_M_TRIM_THRESHOLD, _GIB)
