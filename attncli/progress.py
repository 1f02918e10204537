"""How fast a run goes and how long the rest will take, from the work it has completed: the numbers the
command line's progress on stderr shows (layers of a long text, lines of a corpus)."""

from collections import deque

__all__ = ["WINDOW", "Rate"]

WINDOW = 30.0  # seconds of recent work a rate reads: long enough to steady it, short enough to follow a change


class Rate:
    """The rate of a run's work: the units completed since the start of a moving window over the time since
    then. The window starts at the latest update at least WINDOW seconds old, or where none is, at the run's
    start: from the first update on, the rate counts all the work done and all the time it took (work that
    comes back at once, as a pool's partitions do, never looks like work done in no time). There is no rate
    before any work is done, nor over no time."""

    def __init__(self, start: float, done: int = 0):
        """A run that began at `start` (seconds, time.monotonic's) with `done` units already done (a run resumed:
        they took no time of this run's)."""
        self.updates = deque([(start, done)])  # (time, units done by then): the window's start first

    def update(self, now: float, done: int) -> None:
        """`done` units are done by `now`."""
        self.updates.append((now, done))
        while len(self.updates) > 2 and self.updates[1][0] <= now - WINDOW:
            self.updates.popleft()

    @property
    def done(self) -> int:
        return self.updates[-1][1]

    @property
    def per_second(self) -> float | None:
        """Units a second over the window; None before any work is done in it."""
        (began, before), (now, done) = self.updates[0], self.updates[-1]
        if now <= began or done <= before:
            return None
        return (done - before) / (now - began)

    def left(self, total: int) -> float | None:
        """Seconds until `total` units are done at the rate, from the latest update; None with no rate."""
        rate = self.per_second
        return None if rate is None else (total - self.done) / rate
