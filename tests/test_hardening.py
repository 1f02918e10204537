"""Hostile input: odd text, odd options, damaged checkpoints (fuzzed byte by byte), extreme numbers, big requests.

Every case must end in success or in one clean line on stderr with exit 2: never a traceback,
never a hang, never NaN in the output.
"""

import json
import os
import random
import shutil
import subprocess
import warnings

import numpy as np
import pytest
from helpers import ATTNCLI, FIXTURES, SENTENCE, attncli
from safetensors import safe_open

from attncli import commands
from attncli.errors import AttncliError, DataError
from attncli.models import load_model
from attncli.saved import SavedRun


def clean_error(done, message: str) -> None:
    """Exit 2, one line naming the problem, nothing on stdout, no traceback."""
    assert done.returncode == 2, done.stderr
    assert done.stdout == b""
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0]
    assert message in lines[0]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("[bold red]alarm[/]", "[bold red]alarm[/]"),
        ("[link=https://example.com]click[/link]", "[link=https://example.com]click[/link]"),
        ("a\x1b[2Jb", "\\x1b[2Jb"),
        ("\x1b]8;;https://evil.example\x07link\x1b]8;;\x07", "\\x1b]8;;https://evil.example\\x07link"),
        ("bell\x07 back\x08space", "bell\\x07 back\\x08space"),
        ("abc \u202edlrow", "\\u202edlrow"),
    ],
)
def test_hostile_text_is_shown_escaped_and_kept_exact_in_json(text, shown):
    view = attncli("tokenize", text)
    assert view.returncode == 0
    out = view.stdout.decode()
    assert shown in out
    assert not any(char in out for char in "\x1b\x07\x08\u202e")
    document = json.loads(attncli("tokenize", text, "--json").stdout)
    assert document["text"] == text
    assert "\x1b" not in attncli("tokenize", text, "--json").stdout.decode()


def test_a_text_of_unknown_characters_only_is_a_valid_run():
    document = json.loads(attncli("explain", "😀 🍕", "--json").stdout)
    assert [t["text"] for t in document["tokens"]] == ["[UNK]", "[UNK]"]
    assert np.allclose(np.sum(document["attention"], axis=-1), 1.0)


def test_nul_bytes_on_stdin_are_text_like_any_other():
    done = attncli("tokenize", "-", "--json", stdin=b"The\x00cat\n")
    assert done.returncode == 0
    assert json.loads(done.stdout)["text"] == "The\x00cat"


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (b"caf\xe9", "not UTF-8"),
        (b"a" * 100_000, "100,000 characters, more than 512 tokens can hold"),
        (b"word " * 200_000, "1,000,000 characters"),
        (b"   \n", "the text has no tokens (only spaces"),
    ],
    ids=["latin-1", "one long word", "a million characters", "blank"],  # an id of the text itself would be 1 MB
)
def test_hostile_stdin_is_refused_quickly(stdin, message):
    clean_error(attncli("explain", "-", stdin=stdin), message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--num-heads", "1000000000"], "does not divide"),
        (["--num-heads", "0"], "is not positive"),
        (["--layer", "-1"], "--layer -1 is out of range"),
        (["--head", "99"], "--head 99 is out of range"),
        (["--max-tokens", "0"], "--max-tokens 0"),
        (["--format", "yaml"], "Invalid value for '--format'"),
        (["--focus", "x y z"], "is not a token"),
        (["-o", "/proc/attncli-cannot-write-here.json", "--json"], "cannot write"),
    ],
)
def test_hostile_options(args, message):
    clean_error(attncli("explain", SENTENCE, *args), message)


def test_extreme_scores_give_finite_probabilities():
    document = json.loads(attncli("softmax", "1e30", "-1e30", "0", "--json").stdout)
    assert document["probabilities"] == [1.0, 0.0, 0.0]


def test_a_request_over_the_memory_budget_is_refused_with_the_number():
    env = {"ATTNCLI_MEMORY_BUDGET": "1", "PATH": "/usr/bin:/bin"}
    clean_error(attncli("explain", "word " * 300, env=env), "300 tokens would need 22 MB of attention tensors")


def test_a_tokenizer_larger_than_the_embedding_table_is_refused(tmp_path):
    directory = tmp_path / "bert"
    shutil.copytree(FIXTURES / "bert", directory)
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps(config | {"vocab_size": 100}))
    with pytest.raises(DataError, match="tokenizer has 120 tokens but the model embeds only 100"):
        load_model(str(directory))


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


@pytest.mark.parametrize("args", [["explain", "--help"], ["--help"], ["--version"], []])
def test_help_to_a_reader_that_has_gone_ends_as_a_closed_pipe_does(args):
    reading, writing = os.pipe()
    os.close(reading)  # gone before the first byte, so the outcome does not race the reader
    try:
        run = attncli(*args, capture_output=False, stdout=writing, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(writing)
    assert (run.returncode, run.stderr) == (141, "")


def test_a_closed_stdout_or_stderr_is_a_clean_exit():
    closed_stdout = subprocess.run(["sh", "-c", f'"{ATTNCLI}" --version >&-'], capture_output=True, text=True)
    assert closed_stdout.returncode == 2
    assert closed_stdout.stderr == "attncli: error: standard output is closed; give it a file or a pipe\n"
    closed_stderr = subprocess.run(["sh", "-c", f'"{ATTNCLI}" explain "" 2>&-'], capture_output=True)
    assert closed_stderr.returncode == 2


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["--help"], ["explain", SENTENCE], ["--version"]])
def test_a_full_disk_on_stdout_is_one_line_and_exit_2(args):
    with open("/dev/full", "w") as full:
        run = attncli(*args, capture_output=False, stdout=full, stderr=subprocess.PIPE, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().endswith("No space left on device")
    assert len(run.stderr.splitlines()) == 1


@pytest.mark.parametrize("option", ["-o", "--export", "--model"])
def test_a_path_component_over_the_systems_limit_is_a_clean_error(tmp_path, option):
    name = tmp_path / ("a" * 300 + (".svg" if option == "--export" else ".json"))
    run = attncli("heatmap", SENTENCE, option, str(name), capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.startswith("attncli: error: ") and "File name too long" in run.stderr
    assert len(run.stderr.splitlines()) == 1


def _copy(tmp_path, architecture="bert"):
    target = tmp_path / architecture
    shutil.copytree(FIXTURES / architecture, target)
    return target


@pytest.mark.parametrize(
    ("junk", "message"),
    [("[" * 100_000 + "]" * 100_000, "not valid JSON"), ("9" * 5000, "not valid JSON"), ('"\\ud800"', None)],
)
def test_a_config_with_deep_nesting_or_huge_numbers_in_an_unused_field_is_refused_cleanly(tmp_path, junk, message):
    directory = _copy(tmp_path)
    config = (directory / "config.json").read_text().rstrip().removesuffix("}")
    (directory / "config.json").write_text(f'{config}, "unused": {junk}}}')
    run = attncli("explain", SENTENCE, "--model", str(directory), text=True)
    assert run.returncode == (0 if message is None else 2), run.stderr
    if message:
        assert message in run.stderr and len(run.stderr.splitlines()) == 1


def test_a_shard_that_is_not_a_regular_file_is_refused_before_it_is_opened(tmp_path):
    directory = _copy(tmp_path)
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


@pytest.mark.parametrize(
    "args", [["explain", "-"], ["batch", "-"], ["batch", "/dev/zero"], ["heads", "--file", "/dev/zero"]]
)
def test_an_endless_input_is_refused_at_the_stated_limit(args):
    with subprocess.Popen(["yes"], stdout=subprocess.PIPE) as endless:  # what `yes |` gives
        run = subprocess.run([ATTNCLI, *args], stdin=endless.stdout, capture_output=True, text=True, timeout=60)
        endless.kill()
    assert run.returncode == 2
    assert run.stderr.endswith("is over 256 MB, the most attncli reads of one input\n")


def test_an_export_that_cannot_be_written_leaves_every_other_output_untouched(tmp_path):
    (tmp_path / "picture.svg").mkdir()
    saved = tmp_path / "saved.json"
    saved.write_text("the old result")
    run = attncli("heatmap", SENTENCE, "-o", str(saved), "--export", str(tmp_path / "picture.svg"), text=True)
    assert (run.returncode, saved.read_text()) == (2, "the old result")
    assert "it is a directory" in run.stderr
    unwritable = attncli("heatmap", SENTENCE, "--export", "/proc/picture.svg", text=True)  # no file can be made there
    assert (unwritable.returncode, unwritable.stdout) == (2, "")


def test_a_tokenizer_whose_normalizer_multiplies_the_text_is_refused_before_encoding(tmp_path):
    from tokenizers import Regex, Tokenizer, normalizers

    directory = _copy(tmp_path)
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.normalizer = normalizers.Replace(Regex("."), "a " * 10_000)  # each character: 10,000 tokens
    tokenizer.save(str(directory / "tokenizer.json"))
    run = attncli("explain", "x" * 5000, "--model", str(directory), text=True, timeout=30)
    assert run.returncode == 2
    assert "characters once" in run.stderr and "normalizes it" in run.stderr


@pytest.mark.parametrize(("signal_name", "code"), [("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_run_ended_by_a_signal_leaves_no_partial_file(tmp_path, signal_name, code):
    import signal
    import time

    target = tmp_path / "attention.csv"
    text = "the cat sat on the mat " * 250  # 1,500 tokens: millions of CSV rows, seconds of writing
    with subprocess.Popen(
        [ATTNCLI, "heatmap", text, "--max-tokens", "2000", "--format", "csv", "-o", str(target)],
        stderr=subprocess.PIPE,
        text=True,
    ) as run:
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob(".attention.csv.*.part")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert list(tmp_path.glob(".attention.csv.*.part")), "the write never started"
        run.send_signal(getattr(signal, signal_name))
        stderr = run.communicate(timeout=30)[1]
    assert (run.returncode, stderr) == (code, "attncli: interrupted\n")
    assert list(tmp_path.iterdir()) == []


def test_a_header_of_a_million_empty_entries_is_refused_before_it_is_parsed(tmp_path):
    import struct

    directory = _copy(tmp_path)
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


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
@pytest.mark.parametrize(
    "command", [["explain", SENTENCE], ["heatmap", SENTENCE], ["query", SENTENCE, "--token", "cat"]]
)
def test_a_narrow_output_encoding_still_gives_a_view(encoding, command):
    run = attncli(*command, env={**os.environ, "PYTHONIOENCODING": encoding})
    assert (run.returncode, run.stderr) == (0, b"")
    assert b"cat" in run.stdout


def _saved_document(text: str = SENTENCE) -> dict:
    return json.loads(attncli("heatmap", text, "--json", text=True).stdout)


def test_a_saved_attention_array_is_read_exactly_as_a_json_parser_reads_it():
    """check parses the attention a row at a time; what it reads must be the JSON's numbers to the bit,
    wherever the array sits and however the document is spaced, and a look-alike key inside a
    string or a nested object must not be taken for it."""
    document = _saved_document('He said "attention": [[1]] twice')
    expected = np.array(document["attention"], dtype=np.float64)
    decoy = {"note": {"attention": [[[[0.5]]]]}, **document}
    for layout in (json.dumps(document), json.dumps(decoy, indent=2), json.dumps(dict(reversed(decoy.items())))):
        saved = SavedRun.from_bytes(layout.encode(), "saved.json")
        assert saved.attention.dtype == np.float64 and np.array_equal(saved.attention, expected)
        assert saved.text == document["text"]


@pytest.mark.parametrize(
    ("attention", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "not an attncli"),
        ("[[[[0.5, 0.5]]], [[[0.5]]]]", "not an attncli"),  # rows of different lengths
        ("[[[[0.5, 0.5]]]], [[[0.5, 0.5]]]]", "not a readable JSON file"),  # one bracket too many
        ('[[[["0.5"]]]]', "not an attncli"),
        ("[[[[true]]]]", "not an attncli"),
        ("[[[[NaN]]]]", "not an attncli"),
        ("[[[[0.5,,0.5]]]]", "not a readable JSON file"),
        ("[[[[0.5, [0.5]]]]]", "not an attncli"),
        ("[[[0.5]]]", "not an attncli"),  # three dimensions, not four
        ("[[[[[0.5]]]]]", "not an attncli"),
        ("[[[[0.5]]]", "not an attncli"),  # never closes
        ("[[[[1e999]]]]", "not a readable JSON file"),
    ],
)
def test_a_damaged_saved_attention_is_refused_in_one_line(tmp_path, attention, message):
    document = json.dumps({**_saved_document(), "attention": None}).replace(
        '"attention": null', f'"attention": {attention}'
    )
    saved = tmp_path / "saved.json"
    saved.write_text(document)
    run = attncli("check", "--against", str(saved), text=True)
    assert run.returncode == 2 and message in run.stderr, run.stderr
    assert len(run.stderr.splitlines()) == 1 and run.stdout == ""


@pytest.mark.parametrize(
    ("architecture", "key"), [("bert", "num_hidden_layers"), ("gpt2", "n_layer"), ("llama", "num_hidden_layers")]
)
def test_a_config_naming_more_layers_than_the_tensors_hold_is_refused_as_damage(tmp_path, architecture, key):
    directory = _copy(tmp_path, architecture)
    config = json.loads((directory / "config.json").read_text())
    held, config[key] = config[key], 10**9
    (directory / "config.json").write_text(json.dumps(config))
    run = attncli("explain", SENTENCE, "--model", str(directory), text=True)
    assert run.returncode == 2
    assert run.stderr == f"attncli: error: config.json gives 1,000,000,000 layers, but model.safetensors holds {held}\n"


def test_an_unreadable_checkpoint_is_reported_as_unreadable_not_missing(tmp_path, monkeypatch):
    """As root every file is readable, so the refusal a user without permission meets is simulated."""
    import attncli.checkpoint

    def refuse(path, flags, *args):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(attncli.checkpoint.os, "open", refuse)
    with pytest.raises(DataError, match=r"model\.safetensors: cannot read .*\(Permission denied\)"):
        commands.run(SENTENCE, load_model(str(_copy(tmp_path))))


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
@pytest.mark.parametrize("model", ["sample", "bert"])
def test_check_finds_no_change_at_all_in_its_own_output_whatever_its_encoding(tmp_path, model, encoding):
    """The sample model computes in float64 and a checkpoint in float32: both round-trip through JSON
    exactly, so a zero tolerance passes; a byte-order mark or UTF-16 (PowerShell's >) changes nothing."""
    spec = "sample" if model == "sample" else str(FIXTURES / "bert")
    saved = tmp_path / "saved.json"
    saved.write_text(attncli("heatmap", SENTENCE, "--model", spec, "--json", text=True).stdout, encoding=encoding)
    run = attncli("check", "--against", str(saved), "--tolerance", "0", text=True)
    assert run.returncode == 0, run.stdout + run.stderr
