"""The C allocator's handling of freed memory, tuned for forward passes.

Every layer of a forward pass allocates and frees arrays of a few megabytes. By
default glibc serves such blocks with fresh mappings and hands them back to the
kernel when they are freed, so the next array of that size pays a page fault for
each 4 KB: about a quarter of a 512-token MiniLM pass. Serving them from the heap
and keeping freed memory there for reuse removes that cost.

The price is in peak memory when arrays keep growing, as in a batch whose lines
get ever longer: a larger array cannot reuse the smaller blocks freed before it
(a batch of lines growing from 20 to 500 words peaked 15% higher, and ran 5% faster).
For one text the peak stays what it was.

numpy also asks the kernel for transparent huge pages for every array of 4 MB or
more, as a decoder's weights are. Where huge pages are short (memory fragmented, or
a virtual machine's freed pages handed back to its host) each first touch of such an
array waits while the kernel compacts memory: here, after a process of 2.4 GB had
exited, a 512-token pass of a 0.5B-parameter decoder took 17 s instead of 9, its
reading of the weights mostly time in the kernel. Ordinary pages cost the forward
pass nothing measurable.
"""

import ctypes
import os
import sys
import threading
import weakref

__all__ = ["Reused", "keep_freed_memory", "no_huge_pages"]

# mallopt parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_GIB = 1 << 30
# Blocks up to this size come from the heap: a layer's arrays on a text of a few hundred tokens. Larger ones (a long
# text's [h, T, T] scores: 940 MB a layer at 4,096 tokens on a 14-head model) are mapped and given back when freed:
# from the heap, a freed layer's block and the next layer's could not be one, and a pass of 4,096 tokens held two.
# (Also the most older glibc takes on 64-bit systems.)
_HEAP_BLOCKS = 32 << 20
# Settings of the user's own, which win.
_USER_SETTINGS = ("GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
_NUMPY_SETTING = "NUMPY_MADVISE_HUGEPAGE"


def keep_freed_memory() -> None:
    """Have glibc serve blocks of up to 32 MiB from the heap and keep up to 1 GiB of freed
    memory there, instead of mapping and unmapping them. Does nothing without glibc, or
    when the environment already tunes glibc's allocator."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _USER_SETTINGS):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # a C library without mallopt, such as musl
        return
    mallopt(_M_MMAP_THRESHOLD, _HEAP_BLOCKS)
    mallopt(_M_TRIM_THRESHOLD, _GIB)


def no_huge_pages() -> None:
    """Have numpy stop asking for transparent huge pages for its large arrays, unless the
    environment says what it should do (NUMPY_MADVISE_HUGEPAGE)."""
    import numpy as np

    advise = getattr(np._core.multiarray, "_set_madvise_hugepage", None)  # numpy's own switch for it
    if advise is not None and _NUMPY_SETTING not in os.environ:
        advise(False)


class Reused:
    """float32 arrays too large for glibc's heap (see _HEAP_BLOCKS), each made over a buffer kept here and made
    over it again once no array over it is left: a model too large to keep is read a layer at a time, the same
    shapes again and again, and a fresh mapping of a layer's largest tensors paid a page fault for every 4 KB of
    them each layer (a Qwen2.5-0.5B-shaped layer's fused gate and up projections, 35 MB: 0.3 s of a 128-token
    pass's 2 s; a Llama-3.1-8B-shaped pass, 6.6 million faults). Its owner releases the free buffers once a pass
    is done (`release`), so that what runs after the pass has the memory they held. Safe across threads.

    A buffer is free when the `_Lease` an array was made over is gone: the array's base is its lease (not an
    array, so numpy ends the chain of bases there), and every view of the array, however derived (a transpose, a
    slice), keeps the array and so the lease alive.
    """

    def __init__(self):
        self._buffers: dict[int, list[tuple]] = {}  # values -> [(buffer, weak reference to its lease)]
        self._lock = threading.Lock()

    def empty(self, count: int):
        """A new [count] float32 array, its values unset: over a kept buffer that no array is over any more
        where there is one, else over a new one, kept; a small one (glibc reuses those itself) as numpy makes it."""
        import numpy as np

        if 4 * count <= _HEAP_BLOCKS:
            return np.empty(count, np.float32)
        with self._lock:
            kept = self._buffers.setdefault(count, [])
            free = next((i for i, (_, leased) in enumerate(kept) if leased() is None), None)
            buffer = np.empty(count, np.float32) if free is None else kept[free][0]
            lease = _Lease(buffer)
            if free is None:
                kept.append((buffer, weakref.ref(lease)))
            else:
                kept[free] = (buffer, weakref.ref(lease))
            return np.asarray(lease)

    def release(self) -> None:
        """Let go of the buffers no array is over."""
        with self._lock:
            for count, kept in list(self._buffers.items()):
                kept[:] = [(buffer, leased) for buffer, leased in kept if leased() is not None]
                if not kept:
                    del self._buffers[count]


class _Lease:
    """The base of an array over a buffer of Reused: alive while any view of the array is."""

    def __init__(self, buffer):
        self.__array_interface__ = buffer.__array_interface__
        self.buffer = buffer  # kept alive while the lease is, whatever becomes of Reused
