"""The layout's promises, checked on the installed package: what each part may know."""

import re
from pathlib import Path

import numpy as np
import typer

import attncli
from attncli.cli import OPTION_NAMES, app
from attncli.errors import BadInput, Parameter
from attncli.transformer import Norm, layer_norm

PACKAGE = Path(attncli.__file__).parent
# The command line, its views and their widgets speak in flags, and so do the JSON Schemas'
# titles ("attncli explain --json"); everything else is the library.
LIBRARY = [
    path
    for path in PACKAGE.rglob("*.py")
    if path.name not in ("cli.py", "schema.py") and path.parent.name not in ("views", "widgets")
]


def _flags() -> set[str]:
    group = typer.main.get_command(app)
    return {
        option
        for command in group.commands.values()
        for parameter in command.params
        for option in parameter.opts + parameter.secondary_opts
        if option.startswith("-")
    }


def test_model_families_are_named_only_in_architectures():
    family = re.compile(r"bert|gpt-?2", re.IGNORECASE)
    naming = sorted(path.name for path in PACKAGE.rglob("*.py") if family.search(path.read_text(encoding="utf-8")))
    assert naming == ["architectures.py"]


def test_no_library_module_names_a_flag():
    flags = _flags()
    assert {"--max-tokens", "--focus", "-o", "-k", "--model"} <= flags
    pattern = re.compile(
        r"(?<![\w-])(" + "|".join(sorted(map(re.escape, flags), key=len, reverse=True)) + r")(?![\w-])"
    )
    found = {
        f"{path.relative_to(PACKAGE)}: {match.group()}"
        for path in LIBRARY
        for match in pattern.finditer(path.read_text(encoding="utf-8"))
    }
    assert not found


def test_every_module_says_what_it_owns():
    for path in PACKAGE.rglob("*.py"):
        if path.name != "__main__.py":
            assert path.read_text(encoding="utf-8").startswith('"""'), path


def test_an_error_names_parameters_as_the_caller_words_them():
    error = BadInput("{option} {value!r} is not a token; raise {max_tokens}", option=Parameter("focus"), value="{x}")
    assert str(error) == "focus '{x}' is not a token; raise max_tokens"
    assert error.worded(OPTION_NAMES) == "--focus '{x}' is not a token; raise --max-tokens"
    literal = BadInput("a {brace} that is text")
    assert literal.worded(OPTION_NAMES) == str(literal) == "a {brace} that is text"


def test_layer_norm_without_a_shift_is_layer_norm_with_a_zero_shift(rng):
    x, gain = rng.normal(size=(5, 8)), rng.normal(size=8)
    np.testing.assert_array_equal(layer_norm(x, Norm(gain), 1e-5), layer_norm(x, Norm(gain, np.zeros(8)), 1e-5))
