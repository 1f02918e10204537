"""A run's attention handed on a layer at a time, as the forward pass makes it.

The pass runs on a thread of its own and hands each kept layer's weights (or their ‖α v W_O‖) over; a
writer reads them in order. Where a layer is large, the pass waits for the writer to finish with it
before it goes on to the next: a text's attention then takes one layer's memory, however many layers
it has, and a file of every head of 4,096 tokens can be written where their [L, h, T, T] stack would
not fit. Where two layers are small beside the memory budget, the pass makes the next while the
writer deflates the last: on two cores that hides much of the writing.
"""

import queue
import threading
from collections.abc import Callable, Iterator

import numpy as np

from attncli.attention import weighted_value_norms

__all__ = ["LayerStream"]


class _Stopped(Exception):
    """The reader went away: the pass stops at its next layer."""


class LayerStream:
    """The [L', h', T, T] attention of a forward pass yet to run, read once, front to back, a layer at a time:
    each layer's weights, or with `norms` their ‖α_ij v_j W_O^h‖ (see attention.weighted_value_norms).

    `run(on_attention)` runs the pass, calling on_attention(layer, weights, value norms) for each kept layer
    (Model.run's keyword); it starts when the stream is first read, and whatever it raises is raised to the
    reader, after the layers it made (the pass's last check comes after its last layer). With `ahead`, the pass
    makes a layer while the reader has the one before: two layers in memory instead of one."""

    def __init__(
        self,
        shape: tuple[int, ...],
        run: Callable[[Callable[..., None]], object],
        norms: bool = False,
        ahead: bool = False,
    ):
        self.shape = shape  # [L', h', T, T]
        self._run = run
        self._norms = norms
        self._ahead = ahead
        self._read = False

    def __len__(self) -> int:
        return self.shape[0]

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._read:
            raise RuntimeError("a layer stream is read once")
        self._read = True
        handed: queue.SimpleQueue = queue.SimpleQueue()  # at most two layers: see `done`
        done = threading.Semaphore(1 if self._ahead else 0)  # released as the reader finishes each layer
        stopped = threading.Event()

        def hand_on(layer: int, weights: np.ndarray, norms: np.ndarray | None) -> None:
            if stopped.is_set():
                raise _Stopped
            handed.put(("layer", weights, norms))
            del weights, norms  # the reader's now
            done.acquire()  # until the reader is done with this layer (or, ahead, with the one before)

        def work() -> None:
            try:
                self._run(hand_on)
            except _Stopped:
                return
            except BaseException as error:  # the reader raises it, in its own thread
                handed.put(("error", error, None))
                return
            handed.put(("end", None, None))

        threading.Thread(target=work, name="attncli-forward", daemon=True).start()
        try:
            while True:
                kind, value, norms = handed.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield value if not self._norms else weighted_value_norms(value, norms, out=value)
                del value, norms
                done.release()
        finally:
            stopped.set()  # a reader that stops early lets the pass end at its next layer
            done.release(2)
