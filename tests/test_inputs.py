"""inputs.py: a text read whole from stdin or a file up to its limit; hostile, endless input refused."""

import json
import subprocess

import pytest
from helpers import (
    ATTNCLI,
    attncli,
    clean_error,
)

pytestmark = pytest.mark.slow  # every test here starts attncli in a process of its own


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
    "args", [["explain", "-"], ["batch", "-"], ["batch", "/dev/zero"], ["heads", "--file", "/dev/zero"]]
)
def test_an_endless_input_is_refused_at_the_stated_limit(args):
    with subprocess.Popen(["yes"], stdout=subprocess.PIPE) as endless:  # what `yes |` gives
        run = subprocess.run([ATTNCLI, *args], stdin=endless.stdout, capture_output=True, text=True, timeout=60)
        endless.kill()
    assert run.returncode == 2
    assert run.stderr.endswith("is over 256 MB, the most attncli reads of one input\n")
