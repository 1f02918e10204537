"""saved.py: a saved result read back for check as a JSON parser reads it; damage refused in one line."""

import json

import numpy as np
import pytest
from helpers import (
    FIXTURES,
    SENTENCE,
    attncli,
    check_with_damaged_model,
)

from attncli.saved import SavedRun


def _saved_document(text: str = SENTENCE) -> dict:
    return json.loads(attncli("heatmap", text, "--json", text=True).stdout)


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.parametrize(
    ("text", "content", "message"),
    [
        ("A dog", None, "is for the text 'The cat sat on the mat'"),
        (SENTENCE, "{broken", "not a readable JSON file"),
        (SENTENCE, '{"text": "x"}', "not an attncli --json result"),
    ],
)
def test_check_refuses_what_it_cannot_compare(cli, tmp_path, text, content, message):
    saved = tmp_path / "saved.json"
    saved.write_text(content if content is not None else cli("explain", SENTENCE, "--json").stdout)
    run = cli("check", text, "--against", str(saved))
    assert run.code == 2 and message in run.stderr


@pytest.mark.parametrize("name", [5, None])
def test_check_refuses_a_model_name_that_is_not_a_string(cli, tmp_path, name):
    """No model name, no model to recompute with: the file is not an attncli result at all."""
    saved, stderr = check_with_damaged_model(cli, tmp_path, {"name": name})
    assert stderr == f"attncli: error: {saved} is not an attncli --json result with text, model and attention\n"


@pytest.mark.parametrize("key", ["attention", "text", "model"])
def test_a_key_check_reads_given_twice_is_refused(cli, tmp_path, key):
    """JSON readers differ on which of two equal keys counts (check's scan took the first attention,
    its parser the last text): a second one, here what another run would have saved, is refused."""
    document = cli("heatmap", SENTENCE, "--json").json()
    other = cli("heatmap", "A dog barked", "--json").json()
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(document)[:-1] + f", {json.dumps(key)}: {json.dumps(other[key])}}}")
    run = cli("check", "--against", str(saved))
    assert run.code == 2 and run.stdout == ""
    assert run.stderr == f'attncli: error: {saved} holds the key "{key}" more than once; keep one\n'


def test_a_saved_attention_is_read_into_one_array_made_once():
    """Rows parsed into their place in one array, not gathered and then stacked (a 249 MB document
    peaked at 623 MB that way): what reading takes beyond the document is about the array."""
    import tracemalloc

    attention = np.random.default_rng(0).random((2, 4, 128, 128))  # [L, h, T, T], 1 MB of float64
    document = json.dumps({"text": "x", "model": {"name": "sample"}, "attention": attention.tolist()}).encode()
    tracemalloc.start()
    try:
        saved = SavedRun.from_bytes(document, "saved.json")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.array_equal(saved.attention, attention)
    assert peak < 1.3 * attention.nbytes, f"reading took {peak / attention.nbytes:.2f} times the array"
