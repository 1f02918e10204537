"""attncli in scripts: JSON Schemas, JSON Lines batches, CSV and NPZ, files, pictures, colours and pipes."""

import csv
import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from helpers import ATTNCLI, BERT, FIXTURES, GPT2, SENTENCE, attncli
from numpy.testing import assert_allclose

from attncli.output import csv_text
from attncli.schema import schemas

EVERY_COMMAND = {
    "explain": ["explain", SENTENCE, "--json"],
    "explain-checkpoint": ["explain", "The cat sat.", "--model", BERT, "--json"],
    "heatmap": ["heatmap", SENTENCE, "--model", GPT2, "--json"],
    "tokenize": ["tokenize", SENTENCE, "--model", BERT, "--json"],
    "embed": ["embed", SENTENCE, "--json"],
    "similar": ["similar", "king", "--json"],
    "softmax": ["softmax", "2", "1", "0.5", "--json"],
    "dot": ["dot", "1,2,3", "4,5,6", "--json"],
    "dot-words": ["dot", "king", "queen", "--json"],
    "query": ["query", "The cat sat on the mat.", "--token", "cat", "--model", BERT, "--json"],
    "compare": ["compare", "The cat sat.", "The cat sat down.", "--token", "cat", "--json"],
    "heads": ["heads", "The cat sat on the mat.", "--model", BERT, "--json"],
    "model": ["model", SENTENCE, "--json"],
    "rollout": ["rollout", SENTENCE, "--token", "cat", "--json"],
    "explain-decoder": ["explain", SENTENCE, "--model", str(FIXTURES / "gemma2"), "--json"],
    "heatmap-decoder": ["heatmap", SENTENCE, "--model", str(FIXTURES / "llama"), "--json"],
    "heads-decoder": ["heads", SENTENCE, "--model", str(FIXTURES / "qwen2"), "--json"],
}


@pytest.mark.parametrize("case", list(EVERY_COMMAND))
def test_every_json_output_matches_its_schema(cli, case):
    run = cli(*EVERY_COMMAND[case])
    assert run.code == 0, run.stderr
    document = run.json()
    schema = schemas()[document["command"]]
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)


def test_the_schema_command_prints_them(cli):
    every = json.loads(cli("schema").stdout)
    assert set(every) == set(schemas())
    assert json.loads(cli("schema", "rollout").stdout)["title"] == "attncli rollout --json"
    assert cli("schema", "frobnicate").code == 2


def write_lines(tmp_path, *lines) -> str:
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_batch_writes_a_record_per_non_empty_line(cli, tmp_path):
    source = write_lines(tmp_path, "The cat sat.", "", "A dog barked.")
    run = cli("batch", source, "--model", BERT)
    assert run.code == 0, run.stderr
    assert run.stderr == ""
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert [record["line"] for record in records] == [1, 3]
    validator = jsonschema.Draft202012Validator(schemas()["batch"])
    for record in records:
        validator.validate(record)
        assert "steps" not in record
        assert np.array(record["attention"]).shape[:2] == (2, 4)


def test_a_failing_line_gives_an_error_record_and_exit_3(cli, tmp_path):
    source = write_lines(tmp_path, "The cat sat.", "word " * 130, "A dog barked.")
    run = cli("batch", source, "--model", BERT)
    assert run.code == 3
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert [sorted(record)[:2] for record in records][1] == ["command", "error"]
    assert records[1]["line"] == 2 and "reads at most 512" in records[1]["error"]
    assert records[2]["line"] == 3
    assert "1 of 3 lines failed (line 2)" in run.stderr
    fast = cli("batch", source, "--model", BERT, "--fail-fast")
    assert fast.code == 3
    assert len(fast.stdout.splitlines()) == 2


def test_batch_steps_precision_and_output_file(cli, tmp_path):
    source = write_lines(tmp_path, "The cat sat.")
    target = tmp_path / "out.jsonl"
    run = cli("batch", source, "--steps", "--precision", "2", "-o", str(target))
    assert run.code == 0 and run.stdout == ""
    record = json.loads(target.read_text())
    assert "steps" in record
    assert all(round(w, 2) == w for w in np.ravel(record["attention"]))


def test_batch_reads_standard_input(cli):
    run = cli("batch", "-", stdin="The cat sat.\nA dog barked.\n")
    assert [json.loads(line)["text"] for line in run.stdout.splitlines()] == ["The cat sat.", "A dog barked."]


def test_csv_is_long_form_with_quoted_tokens(cli):
    run = cli("heatmap", 'a, "quoted" cat', "--format", "csv")
    assert run.code == 0, run.stderr
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    tokens = ["a", ",", '"', "quoted", '"', "cat"]
    assert len(rows) == 8 * len(tokens) ** 2
    assert [rows[i]["key_token"] for i in range(len(tokens))] == tokens
    doc = cli("heatmap", 'a, "quoted" cat', "--json").json()
    assert float(rows[7]["weight"]) == doc["attention"][0][0][1][1]


def test_npz_holds_the_attention_and_tokens(cli, tmp_path):
    target = tmp_path / "attention.npz"
    assert cli("heatmap", SENTENCE, "--model", BERT, "--format", "npz", "-o", str(target)).code == 0
    saved = np.load(target)
    assert saved["attention"].dtype == np.float32
    assert saved["attention"].shape == (2, 4, 8, 8)
    assert saved["tokens"].tolist()[0] == "[CLS]"
    doc = cli("heatmap", SENTENCE, "--model", BERT, "--json").json()
    assert_allclose(saved["attention"], doc["attention"])


def test_precision_rounds_json_numbers(cli):
    doc = cli("explain", SENTENCE, "--json", "--precision", "3").json()
    assert all(round(v, 3) == v for v in np.ravel(doc["attention"]))
    assert all(round(v, 3) == v for v in np.ravel(doc["steps"]["q"]))


def test_output_files_are_replaced_whole_or_not_at_all(cli, tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    assert cli("heatmap", SENTENCE, "--json", "-o", str(target)).code == 0
    assert json.loads(target.read_text())["command"] == "heatmap"
    failed = cli("heatmap", "", "--json", "-o", str(target))
    assert failed.code == 2
    assert json.loads(target.read_text())["command"] == "heatmap"
    missing = cli("heatmap", SENTENCE, "--json", "-o", str(tmp_path / "no" / "such" / "dir.json"))
    assert missing.code == 2 and "cannot write" in missing.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_a_table_can_go_to_a_file(cli, tmp_path):
    target = tmp_path / "view.txt"
    assert cli("heatmap", SENTENCE, "--head", "0", "-o", str(target)).code == 0
    assert "head 0" in target.read_text() and "\x1b" not in target.read_text()


@pytest.mark.parametrize("command", ["tokenize", "softmax"])
def test_a_result_without_attention_exports_a_picture_of_its_view(cli, tmp_path, command):
    target = tmp_path / f"{command}.svg"
    run = cli(command, "1" if command == "softmax" else SENTENCE, "--export", str(target))
    assert run.code == 0 and "<svg" in target.read_text()
    assert ("sum" if command == "softmax" else "chars") in target.read_text().replace("&#160;", " ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "xml"], "Invalid value for '--format'"),
        (["--color", "sometimes"], "Invalid value for '--color'"),
        (["--export", "x.png"], "name an .svg or .html"),
        (["--precision", "-1"], "--precision -1"),
        (["--json", "--format", "csv"], "disagree"),
    ],
)
def test_bad_output_options(cli, args, message):
    run = cli("heatmap", SENTENCE, *args)
    assert run.code == 2 and message in run.stderr and run.stdout == ""


def test_every_command_s_csv_is_its_own_table_and_npz_is_offered_only_with_attention(cli):
    tables = {
        ("softmax", "1", "2"): "score,shifted,exp,probability",
        ("similar", "king", "-k", "2"): "rank,token,id,cosine",
        ("dot", "1,2", "3,4"): "i,a,b,product",
        ("tokenize", SENTENCE): "index,id,token,start,end,special",
        ("embed", "cat"): "index,token,d0,d1",
        ("heads", SENTENCE): "layer,head,entropy,",
        ("query", SENTENCE, "--token", "cat"): "rank,layer,head,top_index,top_token,top_weight",
        ("rollout", SENTENCE): "layer,query_index,query_token,key_index,key_token,share",
        ("compare", SENTENCE, SENTENCE, "--token", "cat"): "rank,layer,head,tv,top_a_index",
        ("heatmap", SENTENCE): "layer,head,query_index,query_token,key_index,key_token,weight",
    }
    for args, header in tables.items():
        run = cli(*args, "--format", "csv")
        assert run.code == 0 and run.stdout.startswith(header), (args, run.stdout[:80], run.stderr)
    softmax = list(csv.reader(io.StringIO(cli("softmax", "1", "2", "--format", "csv").stdout)))
    assert [float(p) for p in (softmax[1][3], softmax[2][3])] == cli("softmax", "1", "2", "--json").json()[
        "probabilities"
    ]
    for command in (["softmax", "1"], ["similar", "king"], ["dot", "1", "2"], ["tokenize", SENTENCE]):
        run = cli(*command, "--format", "npz")
        assert run.code == 2 and "'npz' is not one of" in run.stderr
        assert "npz" not in cli(command[0], "--help").stdout


def test_color_always_and_never(cli):
    assert "\x1b[" in cli("heatmap", SENTENCE, "--head", "0", "--color", "always").stdout
    assert "\x1b" not in cli("heatmap", SENTENCE, "--head", "0", "--color", "never").stdout


def test_check_passes_on_its_own_output_and_fails_on_a_moved_weight(cli, tmp_path):
    saved = tmp_path / "saved.json"
    saved.write_text(cli("explain", SENTENCE, "--json").stdout)
    assert cli("check", SENTENCE, "--against", str(saved)).code == 0
    document = json.loads(saved.read_text())
    document["attention"][0][2][1][3] += 0.01
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(document))
    run = cli("check", SENTENCE, "--against", str(moved), "--json")
    assert run.code == 4
    report = run.json()
    assert report["passed"] is False
    assert report["heads"][0]["layer"] == 0 and report["heads"][0]["head"] == 2
    assert report["cells"][0] | {"saved": 0, "now": 0} == {
        "layer": 0,
        "head": 2,
        "query": 1,
        "key": 3,
        "saved": 0,
        "now": 0,
    }


def test_check_with_a_checkpoint(cli, tmp_path):
    saved = tmp_path / "saved.json"
    saved.write_text(cli("heatmap", "The cat sat.", "--model", BERT, "--json").stdout)
    assert cli("check", "The cat sat.", "--against", str(saved), "--tolerance", "0").code == 0
    refused = cli("check", "--against", str(saved), "--tolerance", "nan")
    assert refused.code == 2
    assert "--tolerance nan is not a number of 0 or more" in refused.stderr


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


@pytest.mark.parametrize("unbuffered", ["", "1"], ids=["buffered", "PYTHONUNBUFFERED"])
@pytest.mark.parametrize(
    "args",
    [["explain", "word " * 200], ["heatmap", "word " * 200, "--format", "csv"], ["model", "word " * 200, "--json"]],
)
def test_a_reader_that_stops_early_gets_141_and_no_traceback(args, unbuffered):
    """Each output is far larger than a pipe holds, so it cannot all be written before the reader
    stops: the write that finds the pipe closed must end the run with 141, buffered or not."""
    environment = {k: v for k, v in os.environ.items() if k not in ("ATTNCLI_DEBUG", "PYTHONUNBUFFERED")}
    environment |= {"PYTHONUNBUFFERED": unbuffered} if unbuffered else {}
    process = subprocess.Popen([ATTNCLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment)
    process.stdout.read(100)
    process.stdout.close()
    assert process.wait() == 141
    assert process.stderr.read() == b""


def test_ctrl_c_exits_130_with_one_line():
    process = subprocess.Popen(
        [ATTNCLI, "batch", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        time.sleep(0.5)  # batch waits on standard input, which stays open; the signal may come at any point
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130
    assert err.decode().strip() == "attncli: interrupted"


def test_output_through_a_symlink_replaces_its_target(cli, tmp_path):
    target = tmp_path / "target.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert cli("heatmap", SENTENCE, "--json", "-o", str(link)).code == 0
    assert link.is_symlink()
    assert json.loads(target.read_text())["command"] == "heatmap"


def test_output_to_a_device_is_written_through(cli):
    assert cli("heatmap", SENTENCE, "--json", "-o", os.devnull).code == 0
    assert Path(os.devnull).is_char_device()


def test_a_bad_export_path_writes_nothing(cli, tmp_path):
    target = tmp_path / "out.json"
    run = cli("heatmap", SENTENCE, "--json", "-o", str(target), "--export", str(tmp_path / "no" / "x.svg"))
    assert run.code == 2 and "no such directory" in run.stderr
    assert not target.exists()


@pytest.mark.parametrize(
    ("redirect", "message"), [(">&-", "standard output is closed"), ("> /dev/full", "No space left on device")]
)
def test_standard_output_that_cannot_be_written_is_one_clean_line(redirect, message):
    done = subprocess.run(
        ["bash", "-c", f'"{ATTNCLI}" heatmap "The cat" --json {redirect}'], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_batch_keeps_only_the_attention_unless_asked_for_steps():
    from attncli import commands
    from attncli.models import load_model

    model = load_model(BERT)
    assert commands.explain("The cat sat.", model, steps=False).run.trace.layers == []
    record = next(commands.batch([(1, "The cat sat.")], model)).to_json({})
    assert "steps" not in record and len(record["summary"]) == 6


def check_with_damaged_model(cli, tmp_path, damage: dict) -> tuple[Path, str]:
    """Run check against an explain --json result whose "model" is changed by `damage`: (saved file, stderr)."""
    document = cli("explain", SENTENCE, "--json").json()
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(document | {"model": document["model"] | damage}))
    run = cli("check", SENTENCE, "--against", str(saved))
    assert run.code == 2, run.stderr
    return saved, run.stderr


@pytest.mark.parametrize("name", [5, None])
def test_check_refuses_a_model_name_that_is_not_a_string(cli, tmp_path, name):
    """No model name, no model to recompute with: the file is not an attncli result at all."""
    saved, stderr = check_with_damaged_model(cli, tmp_path, {"name": name})
    assert stderr == f"attncli: error: {saved} is not an attncli --json result with text, model and attention\n"


@pytest.mark.parametrize("damage", [{"seed": 1.5}, {"heads": "8"}, {"causal": None}], ids=["seed", "heads", "causal"])
def test_check_refuses_a_sample_model_with_damaged_options(cli, tmp_path, damage):
    """The sample model is named, but it is rebuilt from options of the wrong type: they are damaged."""
    saved, stderr = check_with_damaged_model(cli, tmp_path, {"name": "sample"} | damage)
    assert stderr == f"attncli: error: {saved}: its model's heads, seed, causal and positions are damaged\n"


def test_check_finds_a_checkpoint_saved_from_another_directory(tmp_path):
    relative = os.path.relpath(BERT, tmp_path)
    saved = tmp_path / "saved.json"
    done = attncli("heatmap", "The cat sat.", "--model", relative, "--json", "-o", str(saved), cwd=tmp_path, check=True)
    assert done.returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    check = attncli("check", "The cat sat.", "--against", str(saved), cwd=elsewhere)
    assert check.returncode == 0


def test_csv_weights_are_json_s_numbers_rounded_as_asked(cli):
    document = cli("heatmap", SENTENCE, "--model", GPT2, "--json").json()
    first_row = document["attention"][0][0][0]
    plain = cli("heatmap", SENTENCE, "--model", GPT2, "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(plain)))
    assert [float(r["weight"]) for r in rows[: len(first_row)]] == first_row
    assert all(len(r["weight"]) <= 15 for r in rows)  # float32 in its shortest form: at most 9 digits, never 17
    asked = cli("heatmap", SENTENCE, "--model", GPT2, "--format", "csv", "--precision", "3").stdout
    rounded = list(csv.DictReader(io.StringIO(asked)))
    assert all(len(r["weight"].split(".")[-1]) <= 3 for r in rounded)
    assert [float(r["weight"]) for r in rounded[: len(first_row)]] == [round(w, 3) for w in first_row]


def test_csv_cells_are_escaped_and_never_formulas(cli):
    rows = cli("heatmap", "=1+2 @a -b", "--format", "csv").stdout
    tokens = {r["key_token"] for r in csv.DictReader(io.StringIO(rows))}
    assert {"'=", "'+", "'@", "'-"} <= tokens
    assert not any(t.startswith(("=", "+", "-", "@")) for t in tokens)
    assert csv_text("a\x1b[31m\u202e\\\n") == "a\\u001b[31m\\u202e\\\\\\n"


def test_check_takes_the_saved_text_and_lists_only_what_moved(cli, tmp_path):
    saved = tmp_path / "saved.json"
    saved.write_text(cli("heatmap", SENTENCE, "--model", BERT, "--json").stdout)
    same = cli("check", "--against", str(saved), "--json")
    assert same.code == 0 and same.json()["text"] == SENTENCE
    assert same.json()["heads"] == [] and same.json()["cells"] == []
    view = cli("check", "--against", str(saved)).stdout
    assert "No weight moved at all." in view and "L0 H0" not in view
    document = json.loads(saved.read_text())
    document["attention"][1][2][3][4] += 0.5
    saved.write_text(json.dumps(document))
    moved = cli("check", "--against", str(saved), "--json")
    assert moved.code == 4 and [(c["layer"], c["head"], c["query"], c["key"]) for c in moved.json()["cells"]] == [
        (1, 2, 3, 4)
    ]


def test_check_from_another_directory_keeps_the_model_s_saved_name(cli, tmp_path, monkeypatch):
    saved = tmp_path / "saved.json"
    document = json.loads(cli("heatmap", SENTENCE, "--model", BERT, "--json").stdout)
    document["model"]["name"] = "models/bert"  # a relative spec that does not exist from here
    saved.write_text(json.dumps(document))
    run = cli("check", "--against", str(saved), "--json")
    assert run.code == 0, run.stderr
    assert run.json()["model"]["name"] == "models/bert" and run.json()["model"]["path"] == document["model"]["path"]
