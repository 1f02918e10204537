"""checkpoint.py: finding a checkpoint and reading its files safely, however damaged, fuzzed or hostile."""

import json
import os
import random
import re
import shutil
import warnings

import numpy as np
import pytest
from helpers import (
    BERT,
    FIXTURES,
    SENTENCE,
    attention_of,
    attncli,
    copy_fixture,
    edit_tensors,
)
from numpy.testing import assert_allclose, assert_array_equal
from safetensors import deserialize, safe_open
from safetensors.numpy import load_file, save_file

from attncli import commands
from attncli.errors import AttncliError, DataError
from attncli.models import load_model


def test_a_sharded_checkpoint_loads(tmp_path):
    directory = copy_fixture(tmp_path)
    tensors = load_file(directory / "model.safetensors")
    names = sorted(tensors)
    halves = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, members in halves.items():
        save_file({name: tensors[name] for name in members}, directory / shard)
    index = {"weight_map": {name: shard for shard, members in halves.items() for name in members}}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    (directory / "model.safetensors").unlink()
    assert_allclose(attention_of(directory), attention_of(FIXTURES / "bert"))


def test_a_bf16_word_table_with_nan_is_refused(tmp_path):
    directory = copy_fixture(tmp_path, "roberta")
    path = directory / "model.safetensors"
    blob = path.read_bytes()
    word = bytes(dict(deserialize(blob))["embeddings.word_embeddings.weight"]["data"])
    path.write_bytes(blob.replace(word, b"\xc0\x7f" * (len(word) // 2)))  # bf16 NaN in every cell
    with pytest.raises(DataError, match="holds NaN"):
        commands.run("The cat", load_model(str(directory)))


def test_tensors_are_read_whole_however_few_bytes_each_read_returns(monkeypatch):
    import os

    def short_preadv(descriptor, buffers, offset, real=os.preadv):
        return real(descriptor, [buffers[0][:7]], offset)  # as Linux does past 2 GiB, only sooner

    expected = load_file(f"{BERT}/model.safetensors")["embeddings.word_embeddings.weight"]
    monkeypatch.setattr(os, "preadv", short_preadv)
    model = load_model(BERT)
    assert_allclose(model.vocabulary.embeddings, expected, rtol=0, atol=0)
    assert commands.run("The cat sat", model).weights.shape[-1] == 5


def test_a_model_id_resolves_from_the_hugging_face_cache(tmp_path, monkeypatch):
    snapshot = tmp_path / "hub" / "models--tiny--bert" / "snapshots" / "abc123"
    shutil.copytree(FIXTURES / "bert", snapshot)
    (tmp_path / "hub" / "models--tiny--bert" / "refs").mkdir()
    (tmp_path / "hub" / "models--tiny--bert" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert load_model("tiny/bert").info.path == str(snapshot)
    with pytest.raises(DataError, match="not in the local Hugging Face cache"):
        load_model("tiny/absent")


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("def456", "names snapshot def456, which is not in"),  # as transformers offline: never another snapshot
        ("../../../../etc", "not a revision"),
        ("..", "not a revision"),
    ],
)
def test_a_cache_ref_naming_no_snapshot_of_its_own_is_refused(tmp_path, monkeypatch, cli, ref, message):
    repo = tmp_path / "hub" / "models--tiny--bert"
    shutil.copytree(FIXTURES / "bert", repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(ref)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    run = cli("tokenize", "The cat", "--model", "tiny/bert", env={"HF_HUB_CACHE": str(tmp_path / "hub")})
    assert run.code == 2 and message in run.stderr and len(run.stderr.splitlines()) == 1


FILES = ("model.safetensors", "config.json", "tokenizer.json")


@pytest.mark.parametrize("architecture", ["bert", "gpt2", "roberta"])
@pytest.mark.parametrize("name", FILES)
def test_fuzzed_checkpoints_end_in_success_or_a_clean_error(tmp_path, architecture, name):
    """Flip, zero or max out bytes of one file at a time, 40 times, and run each mutant."""
    rng = random.Random(f"{architecture}/{name}")
    original = (FIXTURES / architecture / name).read_bytes()
    outcomes = {"ran": 0, "refused": 0}
    for trial in range(40):
        directory = tmp_path / f"{trial}"
        shutil.copytree(FIXTURES / architecture, directory)
        mutant = bytearray(original)
        # The safetensors header (its first few hundred bytes) is where damage is most varied.
        span = min(len(mutant), 600) if name == "model.safetensors" and trial % 2 else len(mutant)
        for _ in range(rng.randint(1, 4)):
            mutant[rng.randrange(span)] = rng.choice([0, 0xFF, rng.randrange(256)])
        (directory / name).write_bytes(bytes(mutant))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a numpy overflow warning would reach the user's stderr
                result = commands.run("The cat sat on the mat.", load_model(str(directory)))
        except AttncliError:
            outcomes["refused"] += 1
            continue
        assert np.all(np.isfinite(result.weights))
        assert np.allclose(result.weights.sum(axis=-1), 1.0, atol=1e-5)
        outcomes["ran"] += 1
    # Some damage must be caught: if every mutant ran, the checks that refuse a damaged file went untested.
    assert outcomes["refused"] > 0, outcomes


@pytest.mark.slow
@pytest.mark.parametrize(
    ("junk", "message"),
    [("[" * 100_000 + "]" * 100_000, "not valid JSON"), ("9" * 5000, "not valid JSON"), ('"\\ud800"', None)],
)
def test_a_config_with_deep_nesting_or_huge_numbers_in_an_unused_field_is_refused_cleanly(tmp_path, junk, message):
    directory = copy_fixture(tmp_path)
    config = (directory / "config.json").read_text().rstrip().removesuffix("}")
    (directory / "config.json").write_text(f'{config}, "unused": {junk}}}')
    run = attncli("explain", SENTENCE, "--model", str(directory), text=True)
    assert run.returncode == (0 if message is None else 2), run.stderr
    if message:
        assert message in run.stderr and len(run.stderr.splitlines()) == 1


@pytest.mark.slow
def test_a_shard_that_is_not_a_regular_file_is_refused_before_it_is_opened(tmp_path):
    directory = copy_fixture(tmp_path)
    with safe_open(directory / "model.safetensors", framework="numpy") as weights:
        names = list(weights.keys())
    shard = directory / "model-00001-of-00001.safetensors"
    os.mkfifo(shard)  # opening it for reading would wait for a writer for ever
    (directory / "model.safetensors").unlink()
    index = {"weight_map": {name: shard.name for name in names}}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    run = attncli("explain", SENTENCE, "--model", str(directory), text=True, timeout=30)
    assert run.returncode == 2
    assert "which is not a regular file" in run.stderr


@pytest.mark.slow
def test_a_header_of_a_million_empty_entries_is_refused_before_it_is_parsed(tmp_path):
    import struct

    directory = copy_fixture(tmp_path)
    path = directory / "model.safetensors"
    blob = path.read_bytes()
    size = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8 : 8 + size])
    header |= {f"junk.{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(200_000)}
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + blob[8 + size :])
    run = attncli("heatmap", SENTENCE, "--model", str(directory), "--json", text=True, timeout=10)
    assert run.returncode == 2
    assert "attncli reads headers of up to 8 MB" in run.stderr


def test_an_unreadable_checkpoint_is_reported_as_unreadable_not_missing(tmp_path, monkeypatch):
    """As root every file is readable, so the refusal a user without permission meets is simulated."""
    import attncli.checkpoint

    def refuse(path, flags, *args):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(attncli.checkpoint.os, "open", refuse)
    with pytest.raises(DataError, match=r"model\.safetensors: cannot read .*\(Permission denied\)"):
        commands.run(SENTENCE, load_model(str(copy_fixture(tmp_path))))


def test_a_float64_tensor_beyond_float32_s_range_is_refused_in_one_line(tmp_path):
    directory = copy_fixture(tmp_path)
    table = "embeddings.word_embeddings.weight"
    edit_tensors(directory, lambda tensors: tensors | {table: tensors[table].astype(np.float64) * 1e300})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warning would reach the user's stderr
        with pytest.raises(DataError, match="holds NaN or infinite values \\(or values beyond float32's range\\)"):
            commands.run("The cat sat", load_model(str(directory)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_a_layer_weight_with_one_nan_or_infinity_anywhere_is_refused(tmp_path, bad, dtype):
    directory = copy_fixture(tmp_path)
    name = "encoder.layer.1.intermediate.dense.weight"

    def spoil(tensors):
        tensor = tensors[name].astype(dtype)
        tensor[3, 5] = bad
        return tensors | {name: tensor}

    edit_tensors(directory, spoil)
    with pytest.raises(DataError, match=f"tensor {re.escape(name)} holds NaN or infinite values"):
        commands.run("The cat sat", load_model(str(directory)))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_a_part_of_a_tensor_is_read_alone_as_its_whole_reads_it(tmp_path, dtype):
    from attncli.checkpoint import TensorFile

    stacked = np.random.default_rng(0).normal(size=(5, 3, 4)).astype(dtype)  # five experts' [3, 4]
    save_file({"experts": stacked}, tmp_path / "model.safetensors")
    tensors = TensorFile.open(tmp_path)
    for e in range(5):
        assert np.array_equal(tensors.part("experts", e), tensors.get("experts")[e])
    assert tensors.headers().part("experts", 2).shape == (3, 4)
    with pytest.raises(IndexError):
        tensors.part("experts", 5)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_rows_looked_up_are_the_table_s_rows_in_the_order_asked(tmp_path, dtype):
    """A text's rows of an embedding table, read from the file opened once, in any order, repeated or none;
    a row past the table is refused by its number, and a NaN in a row asked for by the tensor's name."""
    from attncli.checkpoint import TensorFile

    table = np.random.default_rng(1).normal(size=(300, 7)).astype(dtype)
    save_file({"table": table}, tmp_path / "model.safetensors")
    rows = TensorFile.open(tmp_path).rows("table")
    ids = np.array([5, 0, 299, 5, 17])
    looked_up = rows[ids]
    assert looked_up.dtype == np.float32
    assert_array_equal(looked_up, table[ids].astype(np.float32))
    assert_array_equal(rows[np.array(3)], table[[3]].astype(np.float32))
    assert rows[np.array([], dtype=np.intp)].shape == (0, 7)
    with pytest.raises(IndexError, match="row 300 of table"):
        rows[np.array([1, 300])]
    table[17, 2] = np.nan
    save_file({"table": table}, tmp_path / "model.safetensors")
    with pytest.raises(DataError, match="tensor table holds NaN"):
        TensorFile.open(tmp_path).rows("table")[ids]


def test_mxfp4_is_two_fp4_codes_a_byte_low_nibble_first_times_two_to_the_scale_less_127():
    from attncli.checkpoint import dequantize_mxfp4

    blocks = np.zeros((2, 1, 16), np.uint8)  # two rows of one block of 32 numbers
    blocks[0, 0, :3] = [0x21, 0xF8, 0x7C]  # codes 1, 2 | 8, 15 | 12, 7: 0.5, 1 | -0, -6 | -2, 6
    blocks[1, 0, 0] = 0x9F  # codes 15, 9: -6, -0.5
    scales = np.uint8([[128], [0]])  # times 2, and times 2^-127 (a float32 subnormal)
    values = dequantize_mxfp4(blocks, scales)
    assert values.shape == (2, 32) and values.dtype == np.float32
    assert values[0, :6].tolist() == [1.0, 2.0, -0.0, -12.0, -4.0, 12.0] and np.signbit(values[0, 2])
    assert not values[0, 6:].any()
    assert values[1, :2].tolist() == [-6 * 2.0**-127, -0.5 * 2.0**-127]


def test_mxfp4_dequantizes_bit_for_bit_as_transformers_does():
    """Every byte, and scales from 2^-127 to 2^127 (beyond float32's range times 2 or more), against
    transformers' _convert_moe_packed_tensors, which stores them transposed: [E, in, out]."""
    from attncli.checkpoint import dequantize_mxfp4

    reference = np.load(FIXTURES / "gpt-oss-mxfp4" / "mxfp4_reference.npz")
    with np.errstate(over="ignore"):
        values = dequantize_mxfp4(reference["blocks"], reference["scales"])  # [E, out, in]
    expected = reference["values"].transpose(0, 2, 1)
    assert np.isinf(expected).any() and (expected == 0).any()
    assert np.array_equal(values.view(np.uint32), expected.view(np.uint32))  # zeros' signs and infinities too


# safetensors dtypes and the numpy types their bytes are read as (bf16 as its 16 bits: numpy has no bf16)
STORED = {"BF16": np.uint16, "F32": np.float32, "U8": np.uint8}


def edit_stored(directory, edit) -> None:
    """Rewrite model.safetensors as edit({name: (safetensors dtype, array of its bytes)}) returns it."""
    path = directory / "model.safetensors"
    entries = {
        name: (entry["dtype"], np.frombuffer(entry["data"], STORED[entry["dtype"]]).reshape(entry["shape"]))
        for name, entry in deserialize(path.read_bytes())
    }
    header, data, offset = {}, [], 0
    for name, (dtype, array) in edit(entries).items():
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        data.append(raw)
        offset += len(raw)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + b"".join(data))


def test_mxfp4_experts_are_read_as_transformers_loads_them(tmp_path):
    """gpt-oss-mxfp4 with its experts dequantized into float32 tensors in transformers' layout ([E, in, out],
    as bf16 checkpoints store them): the same attention, to float32 rounding (the matrices' memory layouts
    differ, and with them the order of BLAS's sums)."""
    from attncli.checkpoint import dequantize_mxfp4

    def unpacked(entries):
        for name in [name for name in entries if name.endswith("_blocks")]:
            matrix = name.removesuffix("_blocks")
            values = dequantize_mxfp4(entries.pop(name)[1], entries.pop(f"{matrix}_scales")[1])  # [E, out, in]
            entries[matrix] = ("F32", values.transpose(0, 2, 1))
        return entries

    directory = copy_fixture(tmp_path, "gpt-oss-mxfp4")
    edit_stored(directory, unpacked)
    assert_allclose(attention_of(directory), attention_of(FIXTURES / "gpt-oss-mxfp4"), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("scales of 255", "gate_up_proj holds NaN or infinite values"),  # E8M0's NaN: 2^128, ∞ in float32
        ("short blocks", r"gate_up_proj_blocks has shape \(4, 64, 1, 8\) and .*_scales \(4, 64, 1\)"),
        ("float scales", "gate_up_proj_scales is F32, not unsigned bytes"),
        ("a router of bytes", "mlp.router.weight is U8, not a floating-point type"),
    ],
)
def test_damaged_mxfp4_experts_are_refused_by_name(tmp_path, edit, message):
    layer = "model.layers.0.mlp"
    blocks, scales, router = (
        f"{layer}.experts.gate_up_proj_blocks",
        f"{layer}.experts.gate_up_proj_scales",
        f"{layer}.router.weight",
    )

    def damaged(entries):
        stored = entries[scales][1]
        changed = {
            "scales of 255": {scales: ("U8", np.full_like(stored, 255))},
            "short blocks": {blocks: ("U8", entries[blocks][1][..., :8])},
            "float scales": {scales: ("F32", stored.astype(np.float32))},
            "a router of bytes": {router: ("U8", np.zeros(entries[router][1].shape, np.uint8))},
        }
        return entries | changed[edit]

    directory = copy_fixture(tmp_path, "gpt-oss-mxfp4")
    edit_stored(directory, damaged)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warning would reach the user's stderr
        with pytest.raises(DataError, match=message):
            commands.run("The cat sat on the mat", load_model(str(directory)))


def write_16_bit(path, tensors: dict, dtype: str) -> None:
    """A safetensors file of uint16 arrays labelled `dtype` (F16 or BF16: safetensors.numpy has no bf16)."""
    header, offset = {}, 0
    for name, array in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"".join(a.tobytes() for a in tensors.values()))


@pytest.mark.parametrize("dtype", ["F16", "BF16"])
def test_a_large_16_bit_tensor_read_in_two_halves_at_once_is_read_whole(tmp_path, dtype):
    """A 16-bit tensor over a megabyte is upcast half on the reader's thread: every value lands in
    its place, into an `out` as into a new array, and a NaN in either half is refused."""
    from attncli.checkpoint import TensorFile

    values = np.random.default_rng(0).normal(size=(1025, 1023)).astype(np.float32)  # an odd count: halves differ
    raw = (
        values.astype(np.float16).view(np.uint16)
        if dtype == "F16"
        else (values.view(np.uint32) >> 16).astype(np.uint16)
    )
    expected = (
        raw.view(np.float16).astype(np.float32) if dtype == "F16" else (raw.astype(np.uint32) << 16).view(np.float32)
    )
    write_16_bit(tmp_path / "model.safetensors", {"w": raw, "small": raw[:3]}, dtype)
    tensors = TensorFile.open(tmp_path)
    assert_allclose(tensors.get("w"), expected, rtol=0, atol=0)
    assert_allclose(tensors.get("small"), expected[:3], rtol=0, atol=0)
    out = np.empty((2, 1025, 1023), np.float32)
    tensors.get("w", out=out[1])
    assert_allclose(out[1], expected, rtol=0, atol=0)
    nan = np.float16(np.nan).view(np.uint16) if dtype == "F16" else np.uint16(0x7FC0)
    for row in (3, 1000):  # one in each half
        broken = raw.copy()
        broken[row, 5] = nan
        write_16_bit(tmp_path / "model.safetensors", {"w": broken}, dtype)
        with pytest.raises(DataError, match="tensor w holds NaN"):
            TensorFile.open(tmp_path).get("w")
