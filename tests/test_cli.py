"""The command line, end to end: exit codes, stdout that is only JSON, one-line errors, pipes, signals."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import typer
from helpers import (
    ATTNCLI,
    BERT,
    FIXTURES,
    GPT2,
    LONG,
    PRONOUN,
    README,
    SENTENCE,
    attncli,
    clean_error,
    read_until_closed,
    write_corpus,
)
from numpy.testing import assert_allclose

from attncli import __version__
from attncli import cli as cli_module
from attncli.cli import app

COMMANDS = [
    "explain",
    "predict",
    "heatmap",
    "explore",
    "tokenize",
    "embed",
    "similar",
    "softmax",
    "dot",
    "query",
    "compare",
    "heads",
    "model",
    "rollout",
    "batch",
    "check",
    "schema",
    "attribute",
    "lens",
    "generate",
]


def test_explain_json_has_the_documented_shape(cli):
    run = cli("explain", SENTENCE, "--json")
    assert run.code == 0, run.stderr
    assert run.stderr == ""
    doc = run.json()
    assert doc["schema"] == "attncli/v1"
    assert doc["command"] == "explain"
    assert doc["text"] == SENTENCE
    assert doc["model"] == {
        "name": "sample",
        "type": "sample",
        "layers": 1,
        "heads": 8,
        "d_model": 64,
        "d_head": 8,
        "max_length": None,
        "causal": False,
        "positions": True,
        "seed": 0,
    }
    assert [t["text"] for t in doc["tokens"]] == ["the", "cat", "sat", "on", "the", "mat"]
    assert doc["tokens"][1] == {"index": 1, "id": 4937, "text": "cat", "start": 4, "end": 7, "special": False}
    attention = np.array(doc["attention"])
    assert attention.shape == (1, 8, 6, 6)
    assert_allclose(attention.sum(axis=-1), 1.0)
    steps = doc["steps"]
    assert np.array(steps["embeddings"]).shape == (6, 64)
    assert np.array(steps["input"]).shape == (1, 6, 64)
    for name in ("q", "k", "v"):
        assert np.array(steps[name]).shape == (1, 8, 6, 8)
    for name in ("scores", "scaled"):
        assert np.array(steps[name]).shape == (1, 8, 6, 6)
    assert_allclose(np.array(steps["scaled"]), np.array(steps["scores"]) / np.sqrt(8))
    assert np.array(steps["output"]).shape == (6, 64)
    assert doc["focus"] == {"index": 5, "text": "mat"}
    mat = doc["summary"][5]
    assert mat["heads"][2]["index"] == int(np.argmax(attention[0, 2, 5]))


def test_heatmap_json_holds_every_head_even_when_one_is_drawn(cli):
    doc = cli("heatmap", SENTENCE, "--head", "2", "--causal", "--json").json()
    attention = np.array(doc["attention"])
    assert attention.shape == (1, 8, 6, 6)
    assert np.all(np.triu(attention[0, 0], k=1) == 0)
    assert "steps" not in doc


def test_the_same_command_prints_the_same_numbers(cli):
    assert cli("explain", SENTENCE, "--json").stdout == cli("explain", SENTENCE, "--json").stdout


def test_softmax_gives_the_right_probabilities(cli):
    doc = cli("softmax", "2.0", "1.0", "0.5", "--json").json()
    assert [round(p, 2) for p in doc["probabilities"]] == [0.63, 0.23, 0.14]
    assert doc["scores"] == [2.0, 1.0, 0.5]
    assert_allclose(np.array(doc["exp"]) / sum(doc["exp"]), doc["probabilities"])


def test_softmax_takes_negative_and_comma_separated_scores(cli):
    doc = cli("softmax", "-1", "-2.5,3", "--json").json()
    assert doc["scores"] == [-1.0, -2.5, 3.0]


def test_dot_of_two_vectors(cli):
    assert cli("dot", "1,2,3", "4,5,6", "--json").json()["dot"] == 32.0
    assert "32.0000" in cli("dot", "1,2,3", "4,5,6").stdout


def test_dot_of_two_words_uses_their_embeddings(cli):
    doc = cli("dot", "king", "queen", "--json").json()
    assert doc["a"]["word"] == "king"
    assert len(doc["a"]["vector"]) == 64
    assert doc["cosine"] > 0.5


def test_similar_lists_neighbours(cli):
    doc = cli("similar", "king", "-k", "10", "--json").json()
    assert doc["word"] == "king"
    assert len(doc["neighbors"]) == 10
    assert "queen" in [n["text"] for n in doc["neighbors"]]


def test_similar_reads_a_checkpoints_own_embedding_table(cli):
    from safetensors.numpy import load_file

    doc = cli("similar", "cat", "-k", "3", "--model", BERT, "--json").json()
    assert doc["model"]["type"] == "bert"
    table = load_file(f"{BERT}/model.safetensors")["embeddings.word_embeddings.weight"].astype(np.float64)
    unit = table / np.linalg.norm(table, axis=1, keepdims=True)
    cosines = unit @ unit[doc["id"]]
    vocabulary = json.loads(Path(BERT, "tokenizer.json").read_text())["model"]["vocab"]
    # Nobody's neighbour: the word itself, special tokens and placeholders such as [PAD].
    candidates = [i for token, i in vocabulary.items() if not token.startswith("[") and i != doc["id"]]
    nearest = sorted(candidates, key=lambda i: -cosines[i])[:3]
    assert [n["id"] for n in doc["neighbors"]] == nearest
    assert [n["cosine"] for n in doc["neighbors"]] == pytest.approx(cosines[nearest], abs=1e-6)


def test_tokenize_and_embed(cli):
    tokens = cli("tokenize", SENTENCE, "--json").json()["tokens"]
    assert " ".join(t["text"] for t in tokens) == "the cat sat on the mat"
    embeddings = cli("embed", SENTENCE, "--json").json()["embeddings"]
    assert np.array(embeddings).shape == (6, 64)


def test_dash_reads_the_text_from_stdin(cli):
    run = cli("tokenize", "-", "--json", stdin="The cat sat on the mat\n")
    assert run.json()["text"] == SENTENCE
    crlf_with_bom = cli("tokenize", "-", "--json", stdin="\ufeffThe cat sat on the mat\r\n".encode())
    assert crlf_with_bom.json()["text"] == SENTENCE


def cat_row(command: str, doc: dict) -> list[str]:
    """The cells of the view's row for "cat" (token 1), as the --json document of the same command has them."""
    token = doc["tokens"][1]
    if command == "tokenize":  # index, token, id, characters, the text they cover
        return [str(token["index"]), token["text"], str(token["id"]), f"{token['start']}–{token['end']}", "cat"]
    if command == "embed":  # the token and the first ten dimensions of its embedding
        return [token["text"], *(f"{value:.3f}" for value in doc["embeddings"][1][:10]), "…"]
    # explain and heatmap: head 0's weights from the query "cat" to every key
    return [str(token["index"]), token["text"], *(f"{weight:.2f}" for weight in doc["attention"][0][0][1])]


@pytest.mark.parametrize("command", ["explain", "heatmap", "tokenize", "embed"])
def test_every_text_command_has_a_view(cli, command):
    run = cli(command, SENTENCE, env={"COLUMNS": "80"})  # embed's view: ten dimensions at 80 columns
    assert run.code == 0, run.stderr
    cells = cat_row(command, cli(command, SENTENCE, "--json").json())
    assert re.search(r"^" + r"\s+".join(map(re.escape, cells)) + r"(\s|$)", run.stdout, re.MULTILINE), run.stdout
    assert "\x1b" not in run.stdout  # not a terminal: no escapes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explain", ""], "the text is empty"),
        (["explain", "   \t "], "the text has no tokens (only spaces"),
        (["explain", SENTENCE, "--num-heads", "7"], "--num-heads 7 does not divide"),
        (["explain", SENTENCE, "--num-heads", "0"], "--num-heads 0 is not positive"),
        (["explain", SENTENCE, "--num-heads", "-8"], "--num-heads -8 is not positive"),
        (["explain", SENTENCE, "--num-heads", "many"], "Invalid value for '--num-heads'"),
        (["explain", SENTENCE, "--focus", "dog"], "--focus 'dog' is not a token"),
        (["explain", SENTENCE, "--focus", "the"], "occurs at 0, 4"),
        (["explain", SENTENCE, "--focus", "6"], "--focus 6 is out of range"),
        (["explain", SENTENCE, "--head", "8"], "--head 8 is out of range"),
        (["explain", SENTENCE, "--max-tokens", "5"], "6 tokens, over the limit of 5"),
        (["explain", SENTENCE, "--max-tokens", "0"], "--max-tokens 0"),
        (["explain", SENTENCE, "--seed", "-1"], "--seed -1 is negative"),
        (["explain"], "Missing argument"),
        (["explain", SENTENCE, "--nope"], "No such option"),
        (["tokenize", "\x00\x01"], "no tokens"),
        (["similar", "tokenization"], "not one token"),
        (["similar", "king", "-k", "0"], "-k 0"),
        (["softmax", "2", "abc"], "'abc' is not a number"),
        (["softmax", "nan"], "out of range"),
        (["softmax", "1e308", "-1e308"], "out of range"),
        (["dot", "1e200,1", "1e200,1"], "out of range"),
        (["similar", "😀"], "not in the vocabulary"),
        (["explain", SENTENCE, "--focus", "²"], "is not a token"),
        (["explain", SENTENCE, "--focus", "9" * 5000], "--focus 999999999999… (5,000 characters) is out of range"),
        (["model", SENTENCE, "--layers", "9" * 5000], "(5,000 characters)': the model has 1"),
        (["heatmap", SENTENCE, "--seed", str(2**64), "--json"], "--seed 18446744073709551616 is too large"),
        (["heatmap", SENTENCE, "-o", "same.svg", "--export", "./same.svg"], "both name same.svg"),
        (["explain", "It didn't.", "--focus", "didn't"], "\"didn't\" is split into tokens 1 to 3 (didn ' t)"),
        (["rollout", "It didn't.", "--token", "DIDN'T"], "split into tokens 1 to 3"),
        (["explain", SENTENCE, "--layer", "1"], "--layer 1 is out of range"),
        (["explain", SENTENCE, "--model", "/nonexistent/model"], "no such directory"),
        (["explain", SENTENCE, "--model", BERT, "--num-heads", "2"], "only shape the sample model"),
        (["explain", SENTENCE, "--model", BERT, "--layer", "2"], "--layer 2 is out of range"),
        (["explain", SENTENCE, "--model", "nobody/nothing"], "not in the local Hugging Face cache"),
        (["dot", "1,2", "1,2,3"], "different lengths"),
        (["dot", "1,", ",2"], "A '1,': part 2 of its 2 comma-separated parts is empty"),
        (["dot", "1,2", "3,,4"], "B '3,,4': part 2 of its 3 comma-separated parts is empty"),
        (["softmax", "1,", ",2"], "'1, ,2': part 2 of its 3 comma-separated parts is empty"),
        (["softmax", "1,,2"], "'1,,2': part 2 of its 3 comma-separated parts is empty"),
        (["heads", "--file", "-", "--jobs", "2", "--dask", "tcp://127.0.0.1:1"], "--jobs counts processes here"),
        (["heatmap", SENTENCE, "--json", "--keys", "50:60"], "--keys 50:60 picks none of the 6 tokens (0 to 5)"),
        (["model", SENTENCE, "--format", "csv", "--queries", "-99:-90"], "--queries -99:-90 picks none"),
        (["query", SENTENCE, "--token", "cat", "--json", "--keys", "6:"], "--keys 6: picks none of the 6 tokens"),
        (["heatmap", SENTENCE, "--title", "Figure 2"], "--title titles the figure --export FILE saves"),
        (["frobnicate"], "No such command"),
        (["heads", SENTENCE, "--sort", "prev"], "'prev' is not one of 'layer', 'head', 'entropy'"),
        (["heads", SENTENCE, "--induction"], "--induction runs random tokens of its own: give no TEXT"),
        (["heads", "--induction", "--seed", "-3", "--model", BERT], "--seed -3: use a seed from 0 to 2**63 - 1"),
        (["heads", "--induction", "--max-tokens", "3"], "needs at least 4 tokens"),
        (["heads", SENTENCE, "--model", BERT, "--seed", "3"], "--seed only shape the sample model"),
        (["compare", SENTENCE, "--token", "cat"], "give TEXT_B, to compare two texts; or --model twice"),
        (["compare", SENTENCE, SENTENCE, "--token", "cat", "--model", BERT, "--model", BERT], "not two of each"),
        (["compare", SENTENCE, "a", "b", "--token", "cat"], "give one or two texts, in quotes (got 3 arguments)"),
        (["compare", SENTENCE, "--token", "cat", *["--model", BERT] * 3], "--model is given 3 times"),
        (["compare", SENTENCE, "--token", "cat", "--model", BERT, "--model", GPT2], "tokenize the text differently"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(cli, args, message):
    run = cli(*args)
    assert run.code == 2
    assert run.stdout == ""
    assert message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert "Traceback" not in run.stderr


def test_errors_in_json_mode_leave_stdout_empty(cli):
    run = cli("explain", SENTENCE, "--num-heads", "5", "--json")
    assert run.code == 2
    assert run.stdout == ""


@pytest.mark.slow
def test_an_argument_that_is_not_utf8_is_a_clean_error():
    run = subprocess.run([ATTNCLI, "explain", b"the \xff cat"], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr == "attncli: error: TEXT is not UTF-8 (bad byte at character 5); convert it to UTF-8\n"


@pytest.mark.slow
def test_a_file_name_that_is_not_utf8_is_a_file_name_like_any_other(tmp_path):
    texts = os.fsencode(tmp_path) + b"/caf\xe9.txt"
    with open(texts, "w") as file:
        file.write("The cat sat.\n")
    run = subprocess.run([ATTNCLI, "batch", texts], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["text"] == "The cat sat."


def test_the_cosine_of_tiny_vectors_is_their_angles(cli):
    assert cli("dot", "1e-200,1e-200", "2e-200,2e-200", "--json").json()["cosine"] == pytest.approx(1.0)


def test_invalid_utf8_on_stdin_is_a_clean_error(cli):
    run = cli("tokenize", "-", stdin=b"caf\xe9\n")
    assert run.code == 2
    assert "not UTF-8" in run.stderr


def test_markup_and_escape_sequences_in_the_text_are_shown_not_obeyed(cli):
    run = cli("explain", "[bold red]alarm[/] \x1b[2J\u202eevil", "--no-values")
    assert run.code == 0
    assert "[bold red]alarm[/]" in run.stdout
    assert "\x1b" not in run.stdout
    assert "\u202e" not in run.stdout
    assert "\\x1b[2J" in run.stdout
    assert "\\u202e" in run.stdout


def test_json_keeps_the_text_exact(cli):
    text = "[b]x[/b] \x1b[2J \u202e café"
    doc = cli("tokenize", text, "--json").json()
    assert doc["text"] == text


def test_attncli_model_sets_the_default_model(cli):
    tokens = cli("tokenize", SENTENCE, "--json", env={"ATTNCLI_MODEL": BERT}).json()["tokens"]
    assert tokens[0]["text"] == "[CLS]" and tokens[0]["special"]
    assert cli("tokenize", SENTENCE, "--json", "--model", "sample").json()["tokens"][0]["text"] == "the"


def test_explain_with_a_checkpoint_names_its_layer(cli):
    run = cli("explain", SENTENCE, "--model", BERT, "--layer", "1", "--head", "3")
    assert run.code == 0, run.stderr
    assert "x  (input to layer 1's attention)" in run.stdout
    assert "layer 1 head 3" in run.stdout
    assert "(special token)" in run.stdout


def test_version(cli):
    run = cli("--version")
    assert run.stdout == f"attncli {__version__}\n"


def test_every_command_has_help_and_is_in_the_readme(cli):
    readme = README.read_text()
    registered = sorted(typer.main.get_command(app).commands)
    assert registered == sorted(COMMANDS)
    for command in COMMANDS:
        run = cli(command, "--help")
        assert run.code == 0
        assert "Example:" in run.stdout
        assert f"attncli {command}" in readme


@pytest.mark.slow
def test_the_installed_command_runs_outside_the_repository(tmp_path):
    done = attncli("explain", SENTENCE, "--json", cwd=tmp_path, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["schema"] == "attncli/v1"


@pytest.mark.slow
@pytest.mark.parametrize(
    "args", [["--help"], ["--help", "explain"], ["explian", "x"]], ids=["help", "help before a command", "misspelt"]
)
def test_the_installed_command_still_knows_every_command(tmp_path, args):
    """The installed command builds only the command invoked; the top-level help and the
    suggestion for a misspelt command still see them all."""
    done = attncli(*args, cwd=tmp_path, text=True)
    if args[0] == "explian":
        assert done.returncode == 2
        assert "Did you mean 'explain'?" in done.stderr
        return
    assert done.returncode == 0
    assert all(re.search(rf"^\W*{command}\b", done.stdout, re.MULTILINE) for command in COMMANDS), done.stdout


@pytest.mark.slow
def test_python_dash_m(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "attncli", "--version"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.stdout.strip() == f"attncli {__version__}"


def colour_run(tmp_path, **env) -> str:
    unset = ("NO_COLOR", "FORCE_COLOR", "COLORTERM")
    environment = {k: v for k, v in os.environ.items() if k not in unset} | {"TERM": "xterm-256color"} | env
    return attncli("heatmap", SENTENCE, "--head", "0", cwd=tmp_path, env=environment, text=True, check=True).stdout


@pytest.mark.slow
def test_colour_only_on_request_and_never_with_no_color(tmp_path):
    # SGR codes that set a foreground or background colour, in any colour system
    colour = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-8]|4[0-8]|9[0-7]|10[0-7])[;m]")
    assert "\x1b" not in colour_run(tmp_path)
    assert colour.search(colour_run(tmp_path, FORCE_COLOR="1"))
    assert "\x1b" not in colour_run(tmp_path, FORCE_COLOR="1", NO_COLOR="1")


def test_spaces_are_text_for_a_tokenizer_that_makes_tokens_of_them(cli):
    run = cli("tokenize", "   ", "--model", GPT2, "--json")
    assert run.code == 0, run.stderr
    assert "".join(t["text"] for t in run.json()["tokens"]) == "ĠĠĠ"  # byte-level BPE: three spaces


def test_a_text_longer_than_the_model_reads_names_the_model_s_limit(cli):
    run = cli("explain", "cat " * 600, "--model", BERT, "--max-tokens", "1000")
    assert run.code == 2 and "reads at most 512; shorten it" in run.stderr and "max-tokens" not in run.stderr


def test_piped_views_end_lines_without_trailing_spaces(cli):
    for args in (["tokenize", SENTENCE], ["heads", SENTENCE], ["explain", SENTENCE]):
        lines = cli(*args).stdout.splitlines()
        assert lines and not any(line.endswith(" ") for line in lines)


def _stderr_on_a_terminal(tmp_path: Path, *args: str) -> tuple[bytes, str]:
    """Run attncli with ARGS, its standard error a pseudo-terminal 100 columns wide: (standard output, what the
    terminal showed)."""
    import pty

    controller, terminal = pty.openpty()
    output = tmp_path / "stdout"
    with (
        output.open("wb") as stdout,
        subprocess.Popen(
            [ATTNCLI, *args], stdout=stdout, stderr=terminal, env={**os.environ, "COLUMNS": "100"}
        ) as process,
    ):
        os.close(terminal)
        shown = read_until_closed(controller)
        assert process.wait(timeout=120) == 0
    os.close(controller)
    return output.read_bytes(), shown.decode(errors="replace")


@pytest.mark.slow
def test_progress_on_a_terminal_counts_lines_with_their_rate(tmp_path):
    source = tmp_path / "corpus.txt"
    write_corpus(source, 5000)  # a run of several seconds: progress shows from a second on
    _, shown = _stderr_on_a_terminal(tmp_path, "heads", "--file", str(source), "--model", BERT, "--jobs", "1", "--json")
    assert "/5000" in shown and "lines/s" in shown and " left" in shown


@pytest.mark.slow
def test_a_run_of_under_a_second_shows_no_progress_on_a_terminal(tmp_path):
    output, shown = _stderr_on_a_terminal(tmp_path, "heatmap", PRONOUN, "--model", GPT2, "--json")
    assert shown == "" and output == attncli("heatmap", PRONOUN, "--model", GPT2, "--json").stdout


# generate's steps: each a forward pass, which over a second in all show on a terminal.
LONG_GENERATE = ("generate", "The cat sat on the mat", "--model", str(FIXTURES / "qwen2"), "--max-new-tokens", "480")


@pytest.mark.slow
def test_a_long_run_shows_its_steps_and_layers_on_a_terminal_and_writes_what_it_writes_elsewhere(tmp_path):
    output, shown = _stderr_on_a_terminal(tmp_path, *LONG_GENERATE, "--max-tokens", "512", "--json")
    assert re.search(r"token \d+/480 · layer [1-3]/3 .* left", shown)
    assert "\x1b[2K" in shown  # cleared when done
    piped = attncli(*LONG_GENERATE, "--max-tokens", "512", "--json")
    assert piped.stderr == b"" and piped.stdout == output


@pytest.mark.slow
@pytest.mark.parametrize(
    ("lines", "args"),
    [(64, ("batch", "{source}", "--summary")), (100, ("heads", "--file", "{source}", "--jobs", "2", "--json"))],
    ids=["batch", "heads-in-a-pool"],
)
def test_a_partition_s_lines_show_as_its_passes_go_on_a_terminal(tmp_path, lines, args):
    source = tmp_path / "long.txt"
    source.write_text((" ".join([PRONOUN] * 20) + "\n") * lines)  # lines a pass takes a while over
    args = (*(arg.format(source=source) for arg in args), "--model", GPT2)
    output, shown = _stderr_on_a_terminal(tmp_path, *args)
    counts = {int(done) for done in re.findall(rf"(\d+)/{lines}\b", shown)}
    assert counts - {0, 64, lines} and "lines/s" in shown  # lines counted within a partition of 64
    piped = attncli(*args)
    assert piped.stderr == b"" and piped.stdout == output


@pytest.mark.slow
def test_a_long_view_shows_its_drawing_on_a_terminal_and_writes_what_it_writes_elsewhere(tmp_path):
    args = ("heatmap", " ".join([PRONOUN] * 26), "--model", str(FIXTURES / "qwen2"))  # 4 heads of 340 tokens
    output, shown = _stderr_on_a_terminal(tmp_path, *args)
    assert re.search(r"drawing the view: [\d,]+ lines", shown)
    assert shown.rstrip("\r\n").endswith("\x1b[2K")  # cleared when done
    piped = attncli(*args, env={**os.environ, "COLUMNS": "100"})
    assert piped.stderr == b"" and piped.stdout == output


class _Terminal(io.StringIO):
    """Standard error as a terminal: what is written to it, kept."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [True, False])
def test_a_step_and_a_drawing_show_on_a_terminal_only_and_are_cleared(monkeypatch, terminal):
    from rich.console import Console

    stderr = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setattr(cli_module, "SHOW_AFTER", 0.0)

    class Slow:  # a view of three lines that takes a while over each
        def __rich_console__(self, console, options):
            for line in ("one", "two", "three"):
                time.sleep(0.2)
                yield line

    with cli_module._step("reading saved.json"):
        time.sleep(0.3)
    view = io.StringIO()
    drawn = cli_module._Drawn(Slow()) if sys.stderr.isatty() else Slow()
    Console(file=view, width=40).print(drawn)
    assert view.getvalue() == "one\ntwo\nthree\n"
    shown = stderr.getvalue()
    if terminal:
        assert "reading saved.json" in shown and re.search(r"drawing the view: [12] lines", shown)
        assert shown.count("\x1b[2K") >= 2 and shown.rstrip("\r\n").endswith("\x1b[2K")
    else:
        assert shown == ""


def test_check_shows_the_layers_of_its_pass_as_other_commands_do(cli, monkeypatch, tmp_path):
    saved = tmp_path / "saved.json"
    saved.write_text(cli("heatmap", PRONOUN, "--model", GPT2, "--json").stdout)
    wrapped = []
    monkeypatch.setattr(cli_module, "_reported", lambda model: wrapped.append(model.info.name) or model)
    assert cli("check", "--against", str(saved)).code == 0
    assert wrapped == [GPT2]
    piped = attncli("check", "--against", str(saved))
    assert piped.returncode == 0 and piped.stderr == b"" and b"passed" in piped.stdout


def test_the_command_line_leaves_out_sinks_unless_asked_and_draws_on_the_asked_scale(cli):
    qwen = str(FIXTURES / "qwen2")
    plain = cli("explain", PRONOUN, "--model", qwen, "--json").json()
    kept = cli("explain", PRONOUN, "--model", qwen, "--include-special", "--json").json()
    assert plain["include_special"] is False and kept["include_special"] is True
    assert all(entry["mean"]["index"] != 0 for entry in plain["summary"][1:])
    view = cli("heatmap", PRONOUN, "--model", qwen, "--scale", "log", "--color", "always")
    assert view.code == 0 and "weight, log scale" in view.stdout and "≤0.001" in view.stdout
    assert "--scale log shows the rest" in cli("heatmap", PRONOUN, "--model", qwen).stdout


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("args", [["explain", "--help"], ["--help"], ["--version"], []])
def test_help_to_a_reader_that_has_gone_ends_as_a_closed_pipe_does(args):
    reading, writing = os.pipe()
    os.close(reading)  # gone before the first byte, so the outcome does not race the reader
    try:
        run = attncli(*args, capture_output=False, stdout=writing, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(writing)
    assert (run.returncode, run.stderr) == (141, "")


@pytest.mark.slow
def test_a_closed_stdout_or_stderr_is_a_clean_exit():
    closed_stdout = subprocess.run(["sh", "-c", f'"{ATTNCLI}" --version >&-'], capture_output=True, text=True)
    assert closed_stdout.returncode == 2
    assert closed_stdout.stderr == "attncli: error: standard output is closed; give it a file or a pipe\n"
    closed_stderr = subprocess.run(["sh", "-c", f'"{ATTNCLI}" explain "" 2>&-'], capture_output=True)
    assert closed_stderr.returncode == 2


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["--help"], ["explain", SENTENCE], ["--version"]])
def test_a_full_disk_on_stdout_is_one_line_and_exit_2(args):
    with open("/dev/full", "w") as full:
        run = attncli(*args, capture_output=False, stdout=full, stderr=subprocess.PIPE, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().endswith("No space left on device")
    assert len(run.stderr.splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("option", ["-o", "--export", "--model"])
def test_a_path_component_over_the_systems_limit_is_a_clean_error(tmp_path, option):
    name = tmp_path / ("a" * 300 + (".svg" if option == "--export" else ".json"))
    run = attncli("heatmap", SENTENCE, option, str(name), capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.startswith("attncli: error: ") and "File name too long" in run.stderr
    assert len(run.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("200:300", "--keys 200:300 picks none of the 156 tokens (0 to 155)"),
        ("5", "is not a window A:B"),
        ("1_0:2_0", "is not a window A:B"),
        ("٣:٥", "is not a window A:B"),
    ],
)
def test_a_window_that_picks_nothing_or_is_not_a_window_is_one_line(cli, window, message):
    run = cli("heatmap", LONG, "--keys", window)
    assert run.code == 2 and message in run.stderr and run.stdout == ""


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


def test_color_always_and_never(cli):
    assert "\x1b[" in cli("heatmap", SENTENCE, "--head", "0", "--color", "always").stdout
    assert "\x1b" not in cli("heatmap", SENTENCE, "--head", "0", "--color", "never").stdout


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize(
    ("redirect", "message"), [(">&-", "standard output is closed"), ("> /dev/full", "No space left on device")]
)
def test_standard_output_that_cannot_be_written_is_one_clean_line(redirect, message):
    done = subprocess.run(
        ["bash", "-c", f'"{ATTNCLI}" heatmap "The cat" --json {redirect}'], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("args", "message"), [([], "either TEXT or --file"), (["x", "--file", "y"], "either TEXT")])
def test_heads_needs_exactly_one_source(cli, args, message):
    run = cli("heads", *args)
    assert run.code == 2 and message in run.stderr


def test_heads_induction_takes_seed_for_any_model_and_sort_orders_the_csv(cli):
    """--seed draws --induction's tokens, a checkpoint's too (it shapes no checkpoint), and the sample model's
    weights as ever; --sort orders the CSV rows, JSON keeps layer order with each head's rank."""
    seeded = cli("heads", "--induction", "--seed", "5", "--model", BERT, "--json")
    assert seeded.code == 0, seeded.stderr
    assert seeded.json()["induction_test"]["seed"] == 5 and seeded.json()["text"] is None
    assert cli("heads", "--induction", "--seed", "5", "--json").json()["model"]["seed"] == 5
    csv = cli("heads", "--induction", "--model", BERT, "--sort", "induction", "--format", "csv").stdout.splitlines()
    header = csv[0].split(",")
    scores = [float(line.split(",")[header.index("induction")]) for line in csv[1:]]
    assert header[-1] == "pattern" and scores == sorted(scores, reverse=True)
    document = cli("heads", "--induction", "--model", BERT, "--sort", "induction", "--json").json()
    assert document["sort"] == "induction" and [h["head"] for h in document["heads"][:2]] == [0, 1]
    first = min(document["heads"], key=lambda h: h["rank"])
    assert ",".join(csv[1].split(",")[:2]) == f"{first['layer']},{first['head']}"


@pytest.mark.parametrize("command", ["heads", "batch"])
def test_the_dask_option_s_help_names_the_extra_it_needs(cli, command):
    assert "needs attncli[dask]." in cli(command, "--help", env={"COLUMNS": "200"}).stdout


def test_compare_takes_its_model_from_attncli_model_as_the_other_commands_do(cli):
    texts = ("The cat sat.", "The cat sat down.")
    from_environment = cli("compare", *texts, "--token", "cat", "--json", env={"ATTNCLI_MODEL": BERT}).json()
    assert from_environment["model"]["name"] == BERT and "models" not in from_environment
    two = cli("compare", texts[0], "--token", "cat", "--model", BERT, "--model", BERT, "--json").json()
    assert two["texts"] == [texts[0]] * 2 and [two["models"][side]["name"] for side in "ab"] == [BERT, BERT]


@pytest.mark.slow  # a process of its own for each command
@pytest.mark.parametrize("command", ["heatmap", "model", "query", "heads", "rollout", "explore"])
def test_a_measure_attncli_has_not_is_one_line_naming_the_two_it_has(command):
    token = ["--token", "cat"] if command == "query" else []
    done = attncli(command, SENTENCE, *token, "--measure", "lengths")
    clean_error(done, "Invalid value for '--measure': 'lengths' is not one of 'weights', 'norms'")


def test_attribute_json_has_the_documented_shape_and_its_csv_a_row_per_component(cli):
    model = str(FIXTURES / "phi")
    document = cli("attribute", PRONOUN, "--model", model, "--json").json()
    assert document["command"] == "attribute"
    assert document["position"] == {"index": len(document["tokens"]) - 1, "text": document["tokens"][-1]["text"]}
    assert set(document["target"]) == {"id", "token"} and document["versus"] is None and document["predicted"]
    components = document["components"]
    assert components[0] == {
        "name": "embed",
        "layer": None,
        "head": None,
        "contribution": components[0]["contribution"],
    }
    assert {k: v for k, v in components[16].items() if k != "contribution"} == {"name": "L2H3", "layer": 2, "head": 3}
    assert abs(sum(c["contribution"] for c in components) - document["logit"]) <= 1e-4
    assert document["soft_cap"] is None
    rows = cli("attribute", PRONOUN, "--model", model, "--format", "csv").stdout.splitlines()
    assert rows[0] == "name,layer,head,contribution" and len(rows) == 1 + len(components)
    assert rows[1].startswith("embed,,,") and rows[3].startswith("L0H1,0,1,")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the sample model is one layer of attention"),
        (["--model", BERT], "language-model head"),
        (["--model", str(FIXTURES / "opt-post-norm")], "(post-norm), so no part of it reaches the logits directly"),
        (["--model", GPT2, "--target", " catapult"], "--target ' catapult' is not one token of the vocabulary"),
        (["--model", GPT2, "--versus", "#99999"], "--versus #99999 is past the vocabulary's last id"),
        (["--model", GPT2, "--at", "dog"], "--at 'dog' is not a token of the text"),
        (["--model", GPT2, "--at", "99"], "--at 99 is out of range"),
        (["--model", GPT2, "--target", "#5", "--versus", "#5"], "--versus '#5' is the target itself"),
    ],
)
def test_attribute_refuses_in_one_line(cli, args, message):
    run = cli("attribute", SENTENCE, *args)
    assert run.code == 2 and run.stdout == ""
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr


QWEN2 = str(FIXTURES / "qwen2")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["lens", SENTENCE, "--model", BERT],
            "has no masked-language-model head (cls.predictions.transform.dense.weight)",
        ),
        (["lens", SENTENCE], "the sample model is one layer of attention"),
        (["lens", SENTENCE, "--model", QWEN2, "--top", "0"], "Invalid value for '--top'"),
        (["lens", SENTENCE, "--model", QWEN2, "--tokens", "50:60"], "--tokens 50:60 picks none of the 10 tokens"),
        (["lens", SENTENCE, "--model", QWEN2, "--tokens", "x"], "--tokens 'x' is not a window A:B"),
        (["generate", SENTENCE, "--model", BERT], f"--model {BERT} is an encoder"),
        (["generate", SENTENCE, "--model", QWEN2, "--max-new-tokens", "0"], "Invalid value for '--max-new-tokens'"),
        (
            ["generate", SENTENCE, "--model", QWEN2, "--max-new-tokens", "9", "--max-tokens", "12"],
            "give --max-new-tokens 2 or fewer, or raise --max-tokens",
        ),
        (
            ["generate", SENTENCE, "--model", QWEN2, "--max-tokens", "10"],
            "the limit: no new token fits; raise --max-tokens",
        ),
        (["generate", SENTENCE, "--model", QWEN2, "--max-new-tokens", "600"], "would pass the 512 tokens"),
        (["generate", SENTENCE, "--model", QWEN2, "--explore", "--json"], "--explore shows the sequence full-screen"),
    ],
)
def test_lens_and_generate_refuse_in_one_line(args, message):
    clean_error(attncli(*args), message)


def test_lens_and_generate_write_their_tables_as_csv(cli):
    lens = cli("lens", SENTENCE, "--model", QWEN2, "--top", "2", "--format", "csv")
    assert lens.code == 0, lens.stderr
    lines = lens.stdout.splitlines()
    assert lines[0] == "layer,position,input_token,rank,id,token,probability,logit"
    assert lines[1].startswith("embeddings,0,The,1,") and lines[2].startswith("embeddings,0,The,2,")
    assert len(lines) == 1 + 4 * 10 * 2  # the embeddings and 3 layers, 10 positions, 2 ranks
    generated = cli("generate", SENTENCE, "--model", QWEN2, "--max-new-tokens", "2", "--format", "csv")
    assert generated.code == 0, generated.stderr
    assert generated.stdout.splitlines()[0] == "index,id,token,probability" and len(generated.stdout.splitlines()) == 3
