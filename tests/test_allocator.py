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


def test_past_two_buffers_of_a_size_and_for_small_arrays_numpy_makes_them():
    reused = Reused()
    held = [reused.empty(LARGE) for _ in range(3)]
    assert held[2].base is None  # the third, numpy's own array
    assert not any(np.shares_memory(a, b) for a in held for b in held if a is not b)
    del held[2]
    again = reused.empty(LARGE)  # the two kept buffers are both taken still
    assert not any(np.shares_memory(again, array) for array in held)
    small = reused.empty(1000)
    assert small.dtype == np.float32 and small.shape == (1000,) and small.base is None
