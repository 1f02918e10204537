"""allocator.py: how freed memory and numpy's large arrays are handled, tuned for forward passes."""

import numpy as np

from attncli.allocator import Reused, no_huge_pages


def test_numpy_stops_asking_for_huge_pages_unless_the_environment_says(monkeypatch):
    switch = np._core.multiarray._set_madvise_hugepage  # sets the advice, returns what it was
    before = switch(True)
    try:
        monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
        no_huge_pages()
        assert switch(True) is False
        monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
        no_huge_pages()
        assert switch(True) is True
    finally:
        switch(before)


LARGE = (64 << 20) // 4  # float32 values past glibc's heap blocks, which Reused keeps buffers for


def test_a_large_array_is_made_again_over_the_buffer_of_one_no_view_is_left_of():
    reused = Reused()
    first = reused.empty(LARGE)
    buffer = first.base.buffer  # held here, its memory cannot be mapped again for another array
    view = first.reshape(2, -1).T[1:]  # a derived view keeps the buffer taken
    del first
    second = reused.empty(LARGE)
    assert not np.shares_memory(second, buffer)
    del view
    third = reused.empty(LARGE)
    assert np.shares_memory(third, buffer)
    assert third.shape == (LARGE,) and third.dtype == np.float32 and third.flags.writeable


def test_every_buffer_of_a_size_is_made_over_again_and_release_lets_go_of_the_free_ones_alone():
    reused = Reused()
    layer = [reused.empty(LARGE) for _ in range(4)]  # four tensors of one size in a layer, as W_Q, W_K, W_V, W_O
    buffers = [array.base.buffer for array in layer]
    assert not any(np.shares_memory(a, b) for a in layer for b in layer if a is not b)
    del layer
    again = [reused.empty(LARGE) for _ in range(4)]  # the next layer's, over the same four buffers
    assert all(any(np.shares_memory(array, buffer) for buffer in buffers) for array in again)
    kept = again[0]
    del again
    reused.release()  # at the end of a pass: the buffer under `kept` is still taken, the others go
    fresh = reused.empty(LARGE)
    assert not np.shares_memory(fresh, kept)
    assert sum(np.shares_memory(fresh, buffer) for buffer in buffers) == 0
    small = reused.empty(1000)
    assert small.dtype == np.float32 and small.shape == (1000,) and small.base is None
