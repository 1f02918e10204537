"""numpy work split into parts that run at once, one a core.

numpy runs each ufunc on one core and releases the GIL while it runs. The softmax of a layer's
[h, T, T] scores and a feed-forward layer's activation, a third of a MiniLM forward pass, thus ran
on one of this machine's two cores while OpenBLAS used both for the products around them (torch
runs them on every core). A caller cuts such work into parts along rows, or blocks, that do not
depend on each other, each part computed exactly as it was within the whole (the same operations
on the same numbers, row by row, so that results are the same to the bit), and `in_parts` runs
them on this thread and on a few helper threads at once.
"""

import functools
import itertools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

__all__ = ["in_parts"]

# Environment variables by which a process is told to keep its numerical work to this many threads: a
# corpus's worker processes get 1 (corpus._one_blas_thread), since they share the cores among them.
_THREAD_SETTINGS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_MOST_PARTS = 4  # past this, a part's hand-over costs more than the cores it would add, at these sizes


def _cores() -> int:
    """The cores this process may run on, or fewer where its environment asks for fewer threads."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    for name in _THREAD_SETTINGS:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            cores = min(cores, int(value))
    return max(1, min(cores, _MOST_PARTS))


@functools.cache
def _helpers() -> ThreadPoolExecutor | None:
    """The threads that run every part but the first (None with one core): made once, on first use."""
    count = _cores() - 1
    return ThreadPoolExecutor(count, thread_name_prefix="attncli-part") if count else None


def in_parts(work: Callable[[slice], None], count: int, least: int) -> None:
    """work(part) for consecutive parts (slices) that cover range(count), at once: the first on this
    thread, the rest on helper threads, or on this one where it is done first and a helper has not
    yet begun one (a helper waiting for a core that another process holds would otherwise hold this
    thread up). Each part holds at least `least` items (fewer parts where there are not that many,
    and one, on this thread alone, for fewer than 2 · least), so that small work is not handed over
    for less than the hand-over costs. `work` must not call in_parts itself: its helpers would wait
    on each other."""
    helpers = _helpers()
    parts = 1 if helpers is None else max(1, min(_cores(), count // max(least, 1)))
    if parts == 1:
        work(slice(0, count))
        return
    bounds = [count * i // parts for i in range(parts + 1)]
    pieces = [slice(start, stop) for start, stop in itertools.pairwise(bounds)]
    handed = [(helpers.submit(work, piece), piece) for piece in pieces[1:]]
    try:
        work(pieces[0])
        for future, piece in reversed(handed):  # the last handed over are the likeliest not to have begun
            if future.cancel():
                work(piece)
    finally:  # on an error too: none may go on writing into the caller's arrays
        for future, _ in handed:
            future.cancel()
        wait([future for future, _ in handed])
    for future, _ in handed:
        if not future.cancelled():
            future.result()
