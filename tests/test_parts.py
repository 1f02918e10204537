"""Work cut into parts that run at once: every part run, once, and the numbers the same to the bit as
computed whole on one thread."""

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from attncli import parts
from attncli.attention import causal_mask, layer_norm, masked_softmax, rms_norm, scaled, softmax
from attncli.parts import in_parts
from attncli.transformer import gelu, gelu_tanh, silu


@pytest.fixture
def four_cores(monkeypatch):
    """in_parts as on a machine of four cores, whatever this one has."""
    monkeypatch.setattr(parts, "_cores", lambda: 4)
    parts._helpers.cache_clear()
    yield
    parts._helpers.cache_clear()


@given(count=st.integers(0, 200), least=st.integers(0, 50))
@settings(max_examples=50, deadline=None)
def test_the_parts_cover_every_item_once_in_order(count, least):
    seen = []
    lock = threading.Lock()

    def work(part: slice) -> None:
        with lock:
            seen.append(part)

    in_parts(work, count, least)
    items = [i for part in sorted(seen, key=lambda part: part.start) for i in range(part.start, part.stop)]
    assert items == list(range(count))
    assert all(part.stop - part.start >= least for part in seen) or len(seen) == 1


def test_parts_run_at_once_on_helper_threads_and_small_work_on_this_one(four_cores):
    threads, another_ran = {}, threading.Event()

    def work(part: slice) -> None:
        threads[part.start] = threading.get_ident()
        if part.start:
            another_ran.set()
        else:  # the first part, on this thread, lasts until a helper has run another meanwhile
            assert another_ran.wait(10)

    in_parts(work, 400, 100)
    assert sorted(threads) == [0, 100, 200, 300]
    assert threads[0] == threading.get_ident()
    assert set(threads.values()) - {threading.get_ident()}
    threads.clear()
    in_parts(lambda part: threads.update({part.start: threading.get_ident()}), 199, 100)
    assert threads == {0: threading.get_ident()}


def test_parts_no_helper_has_begun_are_run_on_this_thread(four_cores):
    """With every helper busy elsewhere, the caller does the work itself rather than wait for them."""
    busy, release = threading.Barrier(4), threading.Event()

    def hold() -> None:
        busy.wait(10)
        release.wait(10)

    held = [parts._helpers().submit(hold) for _ in range(3)]
    busy.wait(10)  # the three helpers are each held
    threads = {}
    in_parts(lambda part: threads.update({part.start: threading.get_ident()}), 400, 100)
    release.set()
    for future in held:
        future.result()
    assert threads == dict.fromkeys([0, 100, 200, 300], threading.get_ident())


def test_a_process_told_to_use_one_thread_runs_its_parts_on_it(monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert parts._cores() == 1


def test_a_failing_part_fails_the_whole_once_every_part_is_done(four_cores):
    done = []

    def work(part: slice) -> None:
        if part.start:
            raise ValueError("part")
        done.append(part)

    with pytest.raises(ValueError, match="part"):
        in_parts(work, 400, 100)
    assert done == [slice(0, 100)]


SHAPES = [(12, 128, 128), (3, 700, 300), (1, 5, 70_000), (200_000, 1), (4, 2, 128, 128)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_in_parts_is_every_row_alone(four_cores, shape, dtype):
    """Each row of a large input, computed in a part on some thread, is what the row is alone (which
    softmax computes on this thread), to the bit; and so into a given `out`."""
    x = (np.random.default_rng(len(shape)).normal(size=shape) * 8).astype(dtype)
    rows = x.reshape(-1, shape[-1])
    alone = np.concatenate([softmax(rows[i : i + 1]) for i in range(len(rows))]).reshape(shape)
    assert_array_equal(softmax(x), alone)
    out = np.empty(shape, np.float32)
    assert softmax(x, out=out) is out
    assert_array_equal(out, alone.astype(np.float32) if dtype == np.float32 else _softmax_into_float32(x))


def _softmax_into_float32(x: np.ndarray) -> np.ndarray:
    rows = x.reshape(-1, x.shape[-1])
    out = np.empty(rows.shape, np.float32)
    for i in range(len(rows)):
        softmax(rows[i : i + 1], out=out[i : i + 1])
    return out.reshape(x.shape)


@pytest.mark.parametrize("sinks", [False, True])
@pytest.mark.parametrize("window", [None, 40])
def test_masked_softmax_in_parts_is_every_head_alone(four_cores, sinks, window):
    rng = np.random.default_rng(7)
    x = (rng.normal(size=(14, 200, 200)) * 8).astype(np.float32)
    head_sinks = rng.normal(size=(14, 1, 1)).astype(np.float32) if sinks else None
    mask = causal_mask(200, window)
    alone = [
        masked_softmax(x[h : h + 1], mask, sinks=None if head_sinks is None else head_sinks[h : h + 1])
        for h in range(14)
    ]
    out = np.empty_like(x)
    assert masked_softmax(x, mask, out=out, sinks=head_sinks) is out
    assert_array_equal(out, np.concatenate(alone))


@pytest.mark.parametrize("activation", [gelu, gelu_tanh, silu])
def test_activations_in_parts_are_every_block_alone(four_cores, activation):
    x = np.random.default_rng(3).normal(0.0, 3.0, size=(512, 1536)).astype(np.float32)
    flat = x.reshape(-1)
    block = 1 << 15  # transformer._BLOCK: each block alone is one part
    alone = np.concatenate([activation(flat[i : i + block]) for i in range(0, flat.size, block)])
    assert_array_equal(activation(x), alone.reshape(x.shape))


@pytest.mark.parametrize("shape", [(1000, 384), (3, 300, 896), (70_000, 1)], ids=str)
def test_norms_in_parts_are_every_row_alone(four_cores, shape):
    rng = np.random.default_rng(5)
    x = (rng.normal(size=shape) * rng.uniform(0.1, 100, size=(*shape[:-1], 1)) + 3).astype(np.float32)
    gain, bias = (rng.normal(size=shape[-1]).astype(np.float32) for _ in range(2))
    rows = x.reshape(-1, shape[-1])
    for norm in (lambda x: layer_norm(x, gain, bias, 1e-12), lambda x: layer_norm(x, None, None, 1e-5)):
        alone = np.concatenate([norm(rows[i : i + 1]) for i in range(len(rows))]).reshape(shape)
        assert_array_equal(norm(x), alone)
    alone = np.concatenate([rms_norm(rows[i : i + 1], gain, 1e-6) for i in range(len(rows))]).reshape(shape)
    assert_array_equal(rms_norm(x, gain, 1e-6), alone)


def test_scores_scaled_in_parts_in_place_or_not_are_every_row_alone(four_cores):
    s = np.random.default_rng(9).normal(size=(12, 300, 300)).astype(np.float32) * 20
    rows = s.reshape(-1, 300)
    for d_k, scale in ((64, None), (64, np.float32(0.3)), (80, 0.125)):
        alone = np.concatenate([scaled(rows[i : i + 1], d_k, scale) for i in range(len(rows))]).reshape(s.shape)
        assert_array_equal(scaled(s, d_k, scale), alone)
        in_place = s.copy()
        assert scaled(in_place, d_k, scale, out=in_place) is in_place
        assert_array_equal(in_place, alone)
    in_place = s.copy()
    assert_array_equal(softmax(in_place, out=in_place), softmax(s))
