"""A long text's attention weights kept for the explorer as the forward pass makes them, in float16 on disk.

Where a run's [L, h, T, T] weights (and their norms) would pass the memory budget, the explorer reads the pass's
layers as they come (a streamed run, see streamed.LayerStream) and writes each, in float16, to an unnamed temporary
file; what it draws it reads back a head at a time, on a thread of the explorer's (the file is read and written a
head at a time under one lock, so that a read never meets a closed file). Memory is then one layer in the making
and the heads drawn, however many layers the model has. float16 keeps a weight in [0, 1] to within 2⁻¹² (< 1e-3);
a layer's mean of its heads is taken in float32 over the stored heads, a strip of rows at a time, and kept in
float16 too.
"""

import os
import tempfile
import threading

import numpy as np

from attncli import commands
from attncli.errors import AttncliError, BadInput
from attncli.models import ModelInfo
from attncli.results import AttentionRun

__all__ = ["STORED_TYPE", "Closed", "StoredAttention", "keeps_whole"]

STORED_TYPE = np.float16
# Cells of a strip of a layer's mean summed at once: 2²⁰, a float32 sum of 4 MB, and each head's 2 MB.
MEAN_STRIP_CELLS = 2**20


class Closed(Exception):
    """The store was closed (the explorer quit): the pass stops at its next layer."""


def keeps_whole(info: ModelInfo, tokens: int) -> bool:
    """Whether the explorer can keep every layer of a text of `tokens` tokens in memory, as it does a short
    text's: their weights and norms within the memory budget (by commands' one rule for it)."""
    try:
        commands._check_memory(info, tokens, steps=False, norms=True)
    except BadInput:
        return False
    return True


class StoredAttention:
    """The [L, h, T, T] attention weights of a streamed run (see commands.run's `streamed`), in float16 in an
    unnamed temporary file (gone when it is closed, or the process ends), filled in a layer at a time by `fill`
    on a thread of its own; `layers_in` say how many are there. A head or a layer's mean is read on demand."""

    def __init__(self, run: AttentionRun):
        self.shape = run.stream.shape  # [L, h, T, T]
        self._stream = run.stream
        # Unlinked at once (nothing to clean up after a kill), closed by `close`: no `with` spans its life.
        self._file = tempfile.TemporaryFile()  # noqa: SIM115
        self._lock = threading.Lock()  # a head is written or read whole, or the file closed, never both at once
        self.layers_in = 0  # the first layers are there, in order
        self.error: str | None = None  # why the pass stopped before its last layer

    @property
    def complete(self) -> bool:
        return self.layers_in == self.shape[0]

    def has(self, layer: int) -> bool:
        return layer < self.layers_in

    def fill(self, on_layer) -> None:
        """Run the pass, writing each layer as it comes and calling on_layer(layers in) after it; on a thread of
        its own. A domain error of the pass is kept in `error` (and on_layer called once more); closing the
        store stops the pass at its next layer."""
        try:
            # Not enumerate(self._stream): its tuple, kept for the next item, would hold this layer while the pass
            # makes the next (two layers' memory, not one).
            for weights in self._stream:  # [h, T, T] each
                self._write(self.layers_in, weights)
                del weights  # before the next is made
                on_layer(self.layers_in)
        except Closed:
            return
        except (AttncliError, OSError) as error:  # a check of the pass, a full disk: said in one line
            self.error = str(error)
            on_layer(self.layers_in)

    def _write(self, layer: int, weights: np.ndarray) -> None:
        for head, values in enumerate(weights):  # [T, T]: one head's float16 copy at a time
            copy = values.astype(STORED_TYPE)
            with self._lock:
                if self._file.closed:
                    raise Closed
                _write_at(self._file.fileno(), copy, self._offset(layer, head))
        self.layers_in = layer + 1  # after its last head: a reader of `has` finds the layer whole

    def head(self, layer: int, head: int) -> np.ndarray:
        """[T, T] float16, the weights of `head` of `layer` (one that is in); Closed once the store is."""
        return self._rows(layer, head, 0, self.shape[2])

    def mean(self, layer: int) -> np.ndarray:
        """[T, T] float16, the mean of `layer`'s heads (one that is in), summed in float32 a head at a time, a strip
        of rows at a time (each cell's sum the same, in the same order, as over whole heads); Closed once the store
        is."""
        heads, tokens = self.shape[1], self.shape[2]
        mean = np.empty((tokens, tokens), STORED_TYPE)  # [T, T]
        strip = max(MEAN_STRIP_CELLS // tokens, 1)  # rows a strip
        for first in range(0, tokens, strip):
            last = min(first + strip, tokens)
            total = np.zeros((last - first, tokens), np.float32)  # [strip, T]
            for head in range(heads):
                total += self._rows(layer, head, first, last)
            mean[first:last] = total / heads
        return mean

    def _rows(self, layer: int, head: int, first: int, last: int) -> np.ndarray:
        """[last - first, T] float16, rows first to last of the weights of `head` of `layer` (one that is in)."""
        assert self.has(layer), layer
        values = np.empty((last - first, self.shape[3]), STORED_TYPE)
        row_bytes = self.shape[3] * np.dtype(STORED_TYPE).itemsize
        with self._lock:
            if self._file.closed:
                raise Closed
            _read_into(self._file.fileno(), values, self._offset(layer, head) + first * row_bytes)
        return values

    def _offset(self, layer: int, head: int) -> int:
        return (layer * self.shape[1] + head) * self.shape[2] * self.shape[3] * np.dtype(STORED_TYPE).itemsize

    def close(self) -> None:
        """Remove the file; the pass stops at its next layer."""
        with self._lock:
            self._file.close()


def _write_at(descriptor: int, values: np.ndarray, offset: int) -> None:
    view = memoryview(np.ascontiguousarray(values)).cast("B")
    while view:
        written = os.pwrite(descriptor, view, offset)
        view, offset = view[written:], offset + written


def _read_into(descriptor: int, values: np.ndarray, offset: int) -> None:
    view = memoryview(values).cast("B")
    while view:
        read = os.preadv(descriptor, [view], offset)
        if read == 0:
            raise OSError(f"the explorer's attention file ended at byte {offset}")
        view, offset = view[read:], offset + read
