"""The README's examples are real: each shown `$ attncli ...` prints exactly what the README says."""

import json
import os
import re
import shlex

import jq
import pytest
from helpers import README, attncli, needs_minilm


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


def cases(found: list[tuple], ids: list[str]) -> list:
    """Each case as a pytest.param, marked needs_minilm when its command runs --model minilm."""
    return [
        pytest.param(*case, id=name, marks=needs_minilm if "--model minilm" in case[0] else ())
        for case, name in zip(found, ids, strict=True)
    ]


@pytest.mark.slow
@pytest.mark.parametrize(("command", "expected"), cases(examples(), [c for c, _ in examples()]))
def test_readme_output_is_what_attncli_prints(command, expected, tmp_path):
    args = shlex.split(command)
    assert args[0] == "attncli"
    environment = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")} | {"COLUMNS": "80"}
    done = attncli(*args[1:], cwd=tmp_path, env=environment, text=True, check=True)
    assert strip_trailing(done.stdout) == strip_trailing(expected)


def recipes() -> list[tuple[str, str, str]]:
    """(attncli command, jq arguments, expected output) for each `$ attncli ... | jq ...` in the README."""
    found = []
    for block in re.findall(r"```console\n(.*?)```", README.read_text(), flags=re.S):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            if " | jq " in command:
                attncli, _, jq_arguments = command.partition(" | jq ")
                found.append((attncli, jq_arguments, output))
    return found


def as_jq_prints(value, compact: bool, raw: bool) -> str:
    """A value the way the jq program prints it: integral numbers without ".0", -r strings bare."""
    if raw and isinstance(value, str):
        return value

    def plain(item):
        if isinstance(item, float) and item.is_integer():
            return int(item)
        if isinstance(item, list):
            return [plain(element) for element in item]
        if isinstance(item, dict):
            return {key: plain(element) for key, element in item.items()}
        return item

    return json.dumps(plain(value), ensure_ascii=False, separators=(",", ":") if compact else None)


def test_the_readme_has_recipes():
    assert len(recipes()) >= 4


@pytest.mark.slow
@pytest.mark.parametrize(("command", "jq_arguments", "expected"), cases(recipes(), [r[1][:40] for r in recipes()]))
def test_readme_recipe_gives_what_the_readme_shows(command, jq_arguments, expected, tmp_path):
    args = shlex.split(command)
    done = attncli(*args[1:], cwd=tmp_path, text=True, check=True)
    *flags, program = shlex.split(jq_arguments)
    values = jq.compile(program).input_text(done.stdout).all()
    lines = [as_jq_prints(value, "-c" in flags, "-r" in flags) for value in values]
    assert "\n".join(lines) == strip_trailing(expected)
