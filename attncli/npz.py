"""NPZ files (what numpy.savez_compressed writes and numpy.load reads), made as their arrays are read.

An NPZ file is a ZIP archive of .npy files. The standard library's zipfile deflates with zlib's
default strategy, on one thread. Attention weights are float bytes and long runs of zeros (above a
decoder's diagonal): zlib's run-length strategy deflates them 2.8 times as fast as level 1, the
fastest zipfile offers, into a file 2% smaller; and pieces that end on a sync flush deflate on
threads of their own into one valid stream, as pigz does. The attention of a 512-token pass of a
24-layer, 14-head decoder (352 MB) took 4.6 s to deflate with zipfile; here 1.7 s on one core,
0.9 s on two.

The archive is written to be read once, front to back, never rewound: each member's local header
is followed by its data, then by a data descriptor with its CRC-32 and sizes (ZIP64 throughout,
which every reader of ZIP64 archives, zipfile and numpy among them, reads).
"""

import io
import os
import struct
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

__all__ = ["Layers", "npz_pieces"]

# Bytes deflated at a time: pieces this size keep two cores busy on short texts' arrays too, and a
# sync flush (5 bytes) after each costs nothing.
_PIECE_BYTES = 1 << 20
_VERSION = 45  # ZIP 4.5: ZIP64 extensions
_DEFLATED = 8
_HAS_DESCRIPTOR = 0x08  # general purpose flag bit 3: CRC-32 and sizes follow the data
_DOS_DATE = (1 << 5) | 1  # 1980-01-01, as zipfile dates a member written as a stream
_UNIX = 3
_MODE = 0o644 << 16  # external attributes: the permissions of a regular file
_UNKNOWN = 0xFFFFFFFF  # a 32-bit field whose value is in the ZIP64 extra field
_FINAL_BLOCK = b"\x03\x00"  # an empty final deflate block (fixed Huffman codes): where a stream ends
# Threads deflating: more would hold more pieces in memory for little gain once the cores are busy.
_THREADS = min(4, len(os.sched_getaffinity(0)))


@dataclass(frozen=True)
class Layers:
    """An array of `shape` and `dtype` given as its parts along the first axis, each made as it is read (a long
    text's attention, a layer at a time): written to an .npz file as the array would be."""

    shape: tuple[int, ...]
    dtype: np.dtype
    parts: Iterable[np.ndarray]

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.parts)


def npz_pieces(arrays: Iterable[tuple[str, np.ndarray | Layers]]) -> Iterator[bytes]:
    """The bytes of an .npz file holding `arrays` ((name, array) in order; numpy.load(file)[name] gives
    the array back), in pieces, an array's data taken along its first axis so that it is never copied
    whole (or never held whole: see Layers)."""
    members: list[tuple[bytes, int, int, int, int]] = []  # (file name, offset, CRC-32, compressed, size)
    offset = 0
    with ThreadPoolExecutor(_THREADS, thread_name_prefix="attncli-deflate") as pool:
        for name, array in arrays:
            filename = f"{name}.npy".encode()
            header = _local_header(filename)
            yield header
            crc = compressed = size = 0
            for chunk, data in _deflated(pool, _npy_chunks(array)):
                crc, size, compressed = zlib.crc32(chunk, crc), size + chunk.nbytes, compressed + len(data)
                yield data
            yield _FINAL_BLOCK
            compressed += len(_FINAL_BLOCK)
            descriptor = struct.pack("<IIQQ", 0x08074B50, crc, compressed, size)
            yield descriptor
            members.append((filename, offset, crc, compressed, size))
            offset += len(header) + compressed + len(descriptor)
    yield _central_directory(members, offset)


def _npy_chunks(array: np.ndarray | Layers) -> Iterator[np.ndarray]:
    """The bytes (uint8) of `array`'s .npy file, format 1.0, in pieces of at most _PIECE_BYTES."""
    header = io.BytesIO()
    fields = {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False, "shape": array.shape}
    np.lib.format.write_array_header_1_0(header, fields)
    yield np.frombuffer(header.getvalue(), np.uint8)
    made = isinstance(array, Layers)
    parts = 0
    for part in array if len(array.shape) > 1 else [array]:
        parts += 1
        if made and (part.shape != array.shape[1:] or part.dtype != array.dtype):
            raise ValueError(f"a part {part.dtype}{part.shape} of an array {array.dtype}{array.shape}")
        data = np.ascontiguousarray(part).reshape(-1).view(np.uint8)
        del part
        for start in range(0, len(data), _PIECE_BYTES):
            # A made part's pieces are copies: a view would keep the whole part in memory while the next is made
            # (the pieces wait their turn to be deflated), and two layers of a long text are what does not fit.
            yield data[start : start + _PIECE_BYTES].copy() if made else data[start : start + _PIECE_BYTES]
        del data
    if made and parts != array.shape[0]:
        raise ValueError(f"{parts} parts of an array {array.dtype}{array.shape}")


def _deflated(pool: ThreadPoolExecutor, chunks: Iterator[np.ndarray]) -> Iterator[tuple[np.ndarray, bytes]]:
    """Each of `chunks` with its deflate blocks, in order: deflated on `pool`, a few at a time, so that
    memory holds a few chunks, not the array."""
    pending: deque = deque()
    for chunk in chunks:
        pending.append((chunk, pool.submit(_deflate, chunk)))
        if len(pending) > 2 * _THREADS:
            chunk, blocks = pending.popleft()
            yield chunk, blocks.result()
    for chunk, blocks in pending:
        yield chunk, blocks.result()


def _deflate(data: np.ndarray) -> bytes:
    """`data` as raw deflate blocks ending on a sync flush: a part of a stream that goes on."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15, 8, zlib.Z_RLE)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


def _zip64_sizes(*values: int) -> bytes:
    """The ZIP64 extended information extra field (header ID 1) holding `values`."""
    return struct.pack(f"<HH{len(values)}Q", 1, 8 * len(values), *values)


def _local_header(filename: bytes) -> bytes:
    """The header before member `filename`'s data."""
    extra = _zip64_sizes(0, 0)  # the sizes are in the data descriptor
    fields = (0x04034B50, _VERSION, _HAS_DESCRIPTOR, _DEFLATED, 0, _DOS_DATE, 0, _UNKNOWN, _UNKNOWN)
    return struct.pack("<IHHHHHIIIHH", *fields, len(filename), len(extra)) + filename + extra


def _central_directory(members: list[tuple[bytes, int, int, int, int]], start: int) -> bytes:
    """The central directory of `members`, which starts at byte `start`, and the records that end the archive."""
    entries = []
    for filename, offset, crc, compressed, size in members:
        extra = _zip64_sizes(size, compressed, offset)
        fields = (
            *(0x02014B50, (_UNIX << 8) | _VERSION, _VERSION, _HAS_DESCRIPTOR, _DEFLATED, 0, _DOS_DATE, crc),
            *(_UNKNOWN, _UNKNOWN, len(filename), len(extra)),  # the sizes: in the ZIP64 extra field
            *(0, 0, 0, _MODE, _UNKNOWN),  # no comment, disk 0, no internal attributes; the offset: in the extra
        )
        entries.append(struct.pack("<IHHHHHHIIIHHHHHII", *fields) + filename + extra)
    directory = b"".join(entries)
    end = start + len(directory)  # where the ZIP64 end record starts
    count, length = len(members), len(directory)
    zip64_end = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, _VERSION, _VERSION, 0, 0, count, count, length, start)
    locator = struct.pack("<IIQI", 0x07064B50, 0, end, 1)  # where the ZIP64 end record is, of 1 disk
    few = min(count, 0xFFFF)  # past that, the count is the ZIP64 record's alone
    classic_end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, few, few, _UNKNOWN, _UNKNOWN, 0)
    return directory + zip64_end + locator + classic_end
