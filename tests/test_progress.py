from hypothesis import given
from hypothesis import strategies as st
from pytest import approx

from attncli.progress import WINDOW, Rate

# Gaps between updates (seconds) and the units each brings: pieces of work as a run completes them.
gaps = st.lists(st.floats(0.001, 100), min_size=1, max_size=30)


@given(st.floats(0.01, 10_000), st.floats(0, 1e6), st.integers(0, 1000), gaps)
def test_work_at_a_constant_rate_reads_as_that_rate_from_the_first_update_on(rate, start, resumed, gaps):
    estimate, now = Rate(start, resumed), start
    for gap in gaps:
        now += gap
        estimate.update(now, resumed + rate * (now - start))
        assert estimate.per_second == approx(rate, rel=1e-6)
        assert estimate.left(resumed + rate * (now - start + 10)) == approx(10, rel=1e-5, abs=1e-6)


@given(st.floats(0, 1e6), st.lists(st.integers(0, 100), min_size=1, max_size=10))
def test_work_that_took_no_time_has_no_rate(start, counts):
    """Partitions that come back together at the run's start (a pool's) are no rate, nor a time left."""
    estimate, done = Rate(start), 0
    for count in counts:
        done += count
        estimate.update(start, done)
        assert estimate.per_second is None and estimate.left(done + 1) is None


def test_no_work_done_is_no_rate():
    estimate = Rate(0.0, 5)
    assert estimate.per_second is None
    estimate.update(3.0, 5)
    assert estimate.per_second is None and estimate.left(10) is None


def test_a_burst_after_a_slow_start_is_counted_over_the_whole_time_it_took():
    """Two partitions done at once after a minute: 128 lines in 60 s, not 64 lines in the millisecond between."""
    estimate = Rate(0.0)
    estimate.update(60.0, 64)
    estimate.update(60.001, 128)
    assert estimate.per_second == approx(128 / 60.001)


def test_the_rate_follows_the_recent_work_once_the_window_has_passed():
    estimate = Rate(0.0)
    for second in range(1, 61):
        estimate.update(float(second), second * 10)  # 10 a second for a minute
    for second in range(61, 61 + int(WINDOW) + 1):
        estimate.update(float(second), 600 + (second - 60) * 2)  # then 2 a second
    assert estimate.per_second == approx(2)
