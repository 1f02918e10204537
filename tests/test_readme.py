"""The README's and the docs' examples are real: each shown `$ attncli ...` prints exactly what the
page says, and each `$ attncli ... | jq ...` gives what it shows."""

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import jq
import pytest
from helpers import README, attncli, needs_minilm

DOCS = README.parent / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]


def console_commands(page: Path) -> list[tuple[str, str]]:
    """(command, the output shown) for each `$ ` line of the page's console blocks."""
    found = []
    for block in re.findall(r"```console\n(.*?)```", page.read_text(), flags=re.S):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            found.append((command, output))
    return found


def examples() -> list[tuple[str, str, str]]:
    """(page, command, expected output) for each `$ attncli` line without a pipe."""
    return [(page.name, c, o) for page in PAGES for c, o in console_commands(page) if "|" not in c]


def recipes() -> list[tuple[str, str, str, str]]:
    """(page, attncli command, jq arguments, expected output) for each `$ attncli ... | jq ...`."""
    found = []
    for page in PAGES:
        for command, output in console_commands(page):
            if " | jq " in command:
                attncli_part, _, jq_arguments = command.partition(" | jq ")
                found.append((page.name, attncli_part, jq_arguments, output))
    return found


def strip_trailing(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.rstrip("\n").splitlines())


def test_the_readme_has_examples_and_recipes():
    page = README.name
    assert len([e for e in examples() if e[0] == page]) >= 3
    assert len([r for r in recipes() if r[0] == page]) >= 2
    assert len(recipes()) >= 8


def cases(found: list[tuple]) -> list:
    """Each case as a pytest.param named by its page and command, marked needs_minilm when it runs
    --model minilm."""
    return [
        pytest.param(
            *case[1:], id=f"{case[0]}: {case[1][:60]}", marks=needs_minilm if "--model minilm" in case[1] else ()
        )
        for case in found
    ]


def run(command: str, tmp_path: Path, **options):
    """Run a page's `attncli ...` command as a shell would, in a directory holding the files the pages
    read (docs/recipes/), standard input from the file after a `<`."""
    shutil.copytree(DOCS / "recipes", tmp_path / "docs" / "recipes")
    args = shlex.split(command)
    assert args[0] == "attncli"
    stdin = None
    if "<" in args:
        at = args.index("<")
        stdin, args = (tmp_path / args[at + 1]).read_text(), args[:at] + args[at + 2 :]
    return attncli(*args[1:], cwd=tmp_path, text=True, check=True, stdin=stdin, **options)


@pytest.mark.slow
@pytest.mark.parametrize(("command", "expected"), cases(examples()))
def test_an_example_prints_what_its_page_shows(command, expected, tmp_path):
    environment = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")} | {"COLUMNS": "80"}
    done = run(command, tmp_path, env=environment)
    assert strip_trailing(done.stdout) == strip_trailing(expected)


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


@pytest.mark.slow
@pytest.mark.parametrize(("command", "jq_arguments", "expected"), cases(recipes()))
def test_a_recipe_gives_what_its_page_shows(command, jq_arguments, expected, tmp_path):
    done = run(command, tmp_path)
    *flags, program = shlex.split(jq_arguments)
    values = jq.compile(program).input_text(done.stdout).all()
    lines = [as_jq_prints(value, "-c" in flags, "-r" in flags) for value in values]
    assert "\n".join(lines) == strip_trailing(expected)


def test_every_page_is_linked_from_the_readme():
    linked = set(re.findall(r"\]\(docs/([a-z-]+\.md)\)", README.read_text()))
    assert linked == {page.name for page in DOCS.glob("*.md")}
