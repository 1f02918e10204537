"""allocator.py: how freed memory and numpy's large arrays are handled, tuned for forward passes."""

import numpy as np

from attncli.allocator import no_huge_pages


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
