"""npz.py: NPZ archives written as their arrays are read, deflated on threads."""

import io
import zipfile
from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from attncli import npz
from attncli.npz import npz_pieces


def archive(arrays: dict) -> bytes:
    return b"".join(npz_pieces(list(arrays.items())))


def test_numpy_and_zipfile_read_back_every_array_with_its_crc():
    rng = np.random.default_rng(0)
    arrays = {
        "attention": np.tril(rng.random((3, 4, 300, 300), dtype=np.float32)),  # parts of 1.4 MB: several pieces each
        "tokens": np.array(["[CLS]", "naïve", "猫", "🐈", ""]),
        "ids": np.arange(5),
        "empty": np.zeros((0, 3)),
    }
    data = archive(arrays)
    with zipfile.ZipFile(io.BytesIO(data)) as opened:
        assert opened.testzip() is None  # every member's CRC-32 and sizes agree with its data
        assert opened.namelist() == [f"{name}.npy" for name in arrays]
    loaded = np.load(io.BytesIO(data))
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype
        assert np.array_equal(loaded[name], array)


def test_the_bytes_depend_on_the_arrays_alone():
    arrays = {"attention": np.random.default_rng(1).random((2, 2, 700, 700), dtype=np.float32)}
    assert archive(arrays) == archive(arrays)


def test_runs_of_zeros_are_deflated():
    causal = np.tril(np.random.default_rng(2).random((4, 8, 256, 256), dtype=np.float32))  # zeros above the diagonal
    assert len(archive({"attention": causal})) < 0.5 * causal.nbytes


@settings(max_examples=60, deadline=None)
@given(
    arrays=st.lists(
        hnp.arrays(
            st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.dtype("<U3")]),
            hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6),
        ),
        min_size=1,
        max_size=3,
    ),
    piece=st.integers(1, 64),
)
def test_any_arrays_cut_into_any_pieces_read_back_equal(arrays, piece):
    with mock.patch.object(npz, "_PIECE_BYTES", piece):  # deflate-stream joins anywhere in the data
        data = archive({f"a{i}": array for i, array in enumerate(arrays)})
    with zipfile.ZipFile(io.BytesIO(data)) as opened:
        assert opened.testzip() is None
    loaded = np.load(io.BytesIO(data))
    for i, array in enumerate(arrays):
        np.testing.assert_array_equal(loaded[f"a{i}"], array, strict=True)
