"""output.py: CSV, NPZ, pictures and files written whole or not at all; views through a pager."""

import csv
import io
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    ATTNCLI,
    BERT,
    FIXTURES,
    GPT2,
    LONG,
    PRONOUN,
    SENTENCE,
    attncli,
    read_until_closed,
)
from numpy.testing import assert_allclose

from attncli.output import csv_text


@pytest.mark.slow
def test_npz_holds_the_attention_json_has(tmp_path):
    directory = str(FIXTURES / "phi3")
    out = tmp_path / "attention.npz"
    assert attncli("heatmap", PRONOUN, "--model", directory, "--format", "npz", "-o", str(out)).returncode == 0
    saved = np.load(out)
    document = json.loads(attncli("heatmap", PRONOUN, "--model", directory, "--json").stdout)
    assert_allclose(saved["attention"], np.array(document["attention"], dtype=np.float32), rtol=0, atol=0)
    assert saved["ids"].tolist() == [token["id"] for token in document["tokens"]]
    assert saved["tokens"].tolist() == [token["text"] for token in document["tokens"]]


@pytest.mark.slow
def test_an_export_that_cannot_be_written_leaves_every_other_output_untouched(tmp_path):
    (tmp_path / "picture.svg").mkdir()
    saved = tmp_path / "saved.json"
    saved.write_text("the old result")
    run = attncli("heatmap", SENTENCE, "-o", str(saved), "--export", str(tmp_path / "picture.svg"), text=True)
    assert (run.returncode, saved.read_text()) == (2, "the old result")
    assert "names a directory; give a file name" in run.stderr
    unwritable = attncli("heatmap", SENTENCE, "--export", "/proc/picture.svg", text=True)  # no file can be made there
    assert (unwritable.returncode, unwritable.stdout) == (2, "")


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
@pytest.mark.parametrize(
    "command", [["explain", SENTENCE], ["heatmap", SENTENCE], ["query", SENTENCE, "--token", "cat"]]
)
def test_a_narrow_output_encoding_still_gives_a_view(encoding, command):
    run = attncli(*command, env={**os.environ, "PYTHONIOENCODING": encoding})
    assert (run.returncode, run.stderr) == (0, b"")
    assert b"cat" in run.stdout


def _on_a_terminal(*args: str, pager: str) -> tuple[int, str]:
    """Run attncli with its stdout on a pseudo-terminal of 24 rows and PAGER set: (exit code, what it printed)."""
    import pty

    controller, terminal = pty.openpty()
    os.set_blocking(controller, True)
    env = {**os.environ, "PAGER": pager, "LINES": "24", "COLUMNS": "100"}
    with subprocess.Popen([ATTNCLI, *args], stdout=terminal, stderr=subprocess.PIPE, env=env) as process:
        os.close(terminal)
        printed = read_until_closed(controller)
        code = process.wait(timeout=60)
    os.close(controller)
    return code, printed.decode(errors="replace")


@pytest.mark.slow
def test_a_view_taller_than_the_terminal_goes_through_the_pager_unless_told_not_to(tmp_path):
    paged = tmp_path / "paged.txt"
    pager = f"tee {paged}"  # a pager that keeps what it was given
    code, printed = _on_a_terminal("heatmap", LONG, "--head", "0", pager=pager)
    assert code == 0 and paged.exists() and "head 0" in paged.read_text()
    paged.unlink()
    code, printed = _on_a_terminal("heatmap", LONG, "--head", "0", "--no-pager", pager=pager)
    assert code == 0 and not paged.exists() and "head 0" in printed
    code, printed = _on_a_terminal("tokenize", "The cat", pager=pager)  # shorter than the screen: printed
    assert code == 0 and not paged.exists() and "The" in printed


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


@pytest.mark.parametrize(
    ("name", "opens"), [("out.json", b"{"), ("out.jsonl", b"{"), ("out.csv", b"layer,head,"), ("out.npz", b"PK")]
)
def test_an_output_file_named_for_a_format_is_written_in_it(cli, tmp_path, name, opens):
    target = tmp_path / name
    assert cli("heatmap", SENTENCE, "-o", str(target)).code == 0
    assert target.read_bytes().startswith(opens)
    as_asked = tmp_path / "view.txt"  # a name that names no format: the view, as before
    assert cli("heatmap", SENTENCE, "-o", str(as_asked)).code == 0 and as_asked.read_text().startswith("Text:")


def test_the_heads_help_example_writes_json_that_merge_reads(cli, tmp_path):
    texts = tmp_path / "sentences.txt"
    texts.write_text(f"{SENTENCE}\n{PRONOUN}\n")
    stats = tmp_path / "stats.json"
    run = cli("heads", "--file", str(texts), "--model", BERT, "--jobs", "1", "-o", str(stats))
    assert run.code == 0, run.stderr
    assert json.loads(stats.read_text())["partial_sums"]["texts"] == 2
    merged = cli("heads", "--merge", str(stats), "--json")
    assert merged.code == 0, merged.stderr
    assert merged.json()["texts"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["heatmap", SENTENCE, "--format", "csv", "-o", "x.json"], "-o x.json is named for JSON, but --format csv "),
        (["heatmap", SENTENCE, "--json", "-o", "x.CSV"], "-o x.CSV is named for CSV, but --json writes JSON"),
        (["heatmap", SENTENCE, "--format", "table", "-o", "x.npz"], "but --format table writes the view"),
        (["tokenize", SENTENCE, "-o", "x.npz"], "is named for NPZ, which this command does not write"),
        (["batch", "-", "-o", "records.csv"], "-o records.csv is named for CSV, but batch writes JSON Lines"),
    ],
)
def test_a_format_at_odds_with_the_output_file_name_is_refused_before_any_work(
    cli, tmp_path, monkeypatch, args, message
):
    monkeypatch.chdir(tmp_path)  # where the relative -o names would be written, were they not refused
    missing = ["--model", str(tmp_path / "no-such-model")]  # loaded after the output is checked: never reached
    run = cli(*args, *missing, stdin="a text\n")
    assert (run.code, run.stdout) == (2, "")
    assert run.stderr.startswith("attncli: error: ") and message in run.stderr and len(run.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_failed_output_leaves_an_existing_export_as_it_was(cli, tmp_path):
    figure = tmp_path / "figure.svg"
    figure.write_text("the old figure")
    run = cli("heatmap", SENTENCE, "--export", str(figure), "--json", "-o", "/dev/full")  # -o fails: disk full
    assert run.code == 2 and "No space left on device" in run.stderr
    assert figure.read_text() == "the old figure"
    assert list(tmp_path.iterdir()) == [figure]  # no temporary left behind


@pytest.mark.slow
@pytest.mark.parametrize("what", ["--json", "--format=csv", "--format=table"])
def test_a_failed_standard_output_leaves_existing_files_as_they_were(tmp_path, what):
    figure = tmp_path / "figure.html"
    figure.write_text("the old page")
    with open("/dev/full", "wb") as full:  # every write to it fails: a full disk
        run = subprocess.run(
            [ATTNCLI, "heatmap", SENTENCE, "--export", str(figure), what],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert (run.returncode, run.stderr) == (
        2,
        "attncli: error: cannot write standard output: No space left on device\n",
    )
    assert figure.read_text() == "the old page" and list(tmp_path.iterdir()) == [figure]
    done = attncli("heatmap", SENTENCE, "--export", str(figure), what)
    assert done.returncode == 0 and "attncli-data" in figure.read_text()  # and one that succeeds replaces it


def test_a_view_into_a_pipe_or_file_is_drawn_for_a_stated_width(cli):
    widths = {}
    for env, options in [({}, []), ({"COLUMNS": "100"}, []), ({"COLUMNS": "100"}, ["--width", "60"])]:
        view = cli("heatmap", LONG, "--head", "0", "--no-values", *options, env=env).stdout
        widths[tuple(options) or env.get("COLUMNS", "")] = max(len(line) for line in view.splitlines())
    assert widths == {"": 120, "100": 100, ("--width", "60"): 60}


@pytest.mark.slow  # over half a second: 170 tokens' walkthrough
def test_a_long_text_s_heatmap_without_room_for_numbers_still_ranks_its_weights(cli):
    """explain "$(cat paragraph.txt)" > file: the cells cannot hold numbers, and most weights are small."""
    run = cli("explain", LONG, "--model", BERT, "--head", "0")
    document = cli("heatmap", LONG, "--model", BERT, "--json").json()  # the same weights
    assert run.code == 0 and "too narrow for the numbers in the cells; widen the terminal, give --width" in run.stdout
    lines = run.stdout.splitlines()
    assert max(len(line) for line in lines) <= 120
    edges = [
        float(edge) for edge in re.findall(r"≥([0-9.]+)", next(line for line in lines if line.startswith("weight:")))
    ]
    keys = int(re.search(r"showing keys 0–(\d+) of", " ".join(lines))[1]) + 1
    tokens = [token["text"] for token in document["tokens"]]
    indent = len(str(len(tokens) - 1)) + 1 + min(max(map(len, tokens)), 12) + 1  # "  7 label   " before the cells
    assert keys == 120 - indent  # drawn for 120 columns, not 80
    heatmap = lines[lines.index("layer 0 head 0") :]
    weights = np.array(document["attention"])[0, 0]  # [T, T]
    for query in range(len(tokens)):
        row = next(line for line in heatmap if line.startswith(f"{query:>3} {tokens[query]}"))
        levels = np.array([" ░▒▓█".index(mark) for mark in row[indent:].ljust(keys)])
        assert (levels == np.searchsorted(edges, weights[query, :keys], side="right")).all()  # a mark is its step
        assert (levels[weights[query, :keys] >= 2 / len(tokens)] > 0).all()  # twice the average weight shows


def test_a_view_to_a_file_is_as_wide_as_the_same_view_into_a_pipe(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "90")
    text = " ".join(["word"] * 30)
    piped = cli("heatmap", text, "--no-values").stdout
    assert cli("heatmap", text, "--no-values", "-o", str(tmp_path / "view.txt")).code == 0
    assert (tmp_path / "view.txt").read_text() == piped
    assert max(len(line) for line in piped.splitlines()) <= 90


def test_an_output_through_a_link_into_no_directory_is_refused_before_any_work(cli, tmp_path):
    link = tmp_path / "dangling.json"
    link.symlink_to(tmp_path / "missing" / "attention.json")
    run = cli("heatmap", SENTENCE, "--json", "-o", str(link))
    assert run.code == 2 and run.stdout == ""
    assert run.stderr == f"attncli: error: cannot write -o {link}: no such directory {tmp_path / 'missing'}\n"


@pytest.mark.parametrize("command", [["heatmap", SENTENCE], ["model", SENTENCE]])
def test_csv_and_npz_of_norms_name_their_measure_and_hold_the_json_s_norms(cli, tmp_path, command):
    args = [*command, "--model", BERT, "--measure", "norms"]
    document = cli(*args, "--json").json()
    rows = list(csv.DictReader(io.StringIO(cli(*args, "--format", "csv").stdout)))
    assert "weight" not in rows[0] and float(rows[9]["norm"]) == document["attention"][0][0][1][1]
    target = tmp_path / "norms.npz"
    assert cli(*args, "-o", str(target)).code == 0
    saved = np.load(target)
    assert str(saved["measure"]) == "norms" and sorted(saved.files) == ["attention", "ids", "measure", "tokens"]
    assert_allclose(saved["attention"], document["attention"])
    weights = tmp_path / "weights.npz"
    assert cli(*command, "--model", BERT, "-o", str(weights)).code == 0
    assert sorted(np.load(weights).files) == ["attention", "ids", "tokens"]
