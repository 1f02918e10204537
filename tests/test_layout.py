"""The layout's promises, checked on the installed package: what each part may know."""

import ast
import re
from pathlib import Path
from string import Formatter

import numpy as np
import typer

import attncli
from attncli.cli import WORDS, app
from attncli.errors import Argument, BadInput, Parameter
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
    # the tokenizers library's names of its components (unigram.py's), not model families
    components = re.compile(r"\b(Bert|Roberta)(PreTokenizer|Processing)\b")
    naming = sorted(
        path.name
        for path in PACKAGE.rglob("*.py")
        if family.search(components.sub("", path.read_text(encoding="utf-8")))
    )
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
        assert path.read_text(encoding="utf-8").startswith('"""'), path


def test_an_error_names_parameters_as_the_caller_words_them():
    error = BadInput("{option} {value!r} is not a token; raise {max_tokens}", option=Parameter("focus"), value="{x}")
    assert str(error) == "focus '{x}' is not a token; raise max_tokens"
    assert error.worded(WORDS) == "--focus '{x}' is not a token; raise --max-tokens"
    given = BadInput("{what}: no such file", what=Argument("path", "{x}.json"))
    assert str(given) == "path {x}.json: no such file"
    assert given.worded(WORDS) == "-o {x}.json: no such file"
    literal = BadInput("a {brace} that is text")
    assert literal.worded(WORDS) == str(literal) == "a {brace} that is text"


def test_layer_norm_without_a_shift_is_layer_norm_with_a_zero_shift(rng):
    x, gain = rng.normal(size=(5, 8)), rng.normal(size=8)
    np.testing.assert_array_equal(layer_norm(x, Norm(gain), 1e-5), layer_norm(x, Norm(gain, np.zeros(8)), 1e-5))


def _message(node: ast.AST) -> tuple[str, bool]:
    """The text of an error's message as written (string constants, + joined, a clause chosen by a
    conditional counted with both branches), and whether any of it is an f-string or an expression,
    whose values would be read as a template's fields."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value, False
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        (left, dynamic_left), (right, dynamic_right) = _message(node.left), _message(node.right)
        return left + right, dynamic_left or dynamic_right
    if isinstance(node, ast.IfExp):  # a clause said or not: both branches' fields are the template's
        (body, dynamic_body), (other, dynamic_other) = _message(node.body), _message(node.orelse)
        return body + other, dynamic_body or dynamic_other
    return "", True


def test_every_parameter_an_error_names_has_words_on_the_command_line():
    """A template's fields are its facts or parameters; each parameter must have its flag (or phrase)
    in cli.WORDS, and a template is never built from an f-string (braces in the data would be fields)."""
    unworded, dynamic = [], []
    for path in LIBRARY:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            named = isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("BadInput", "DataError")
            if not named or not node.args or not node.keywords:
                continue
            text, is_dynamic = _message(node.args[0])
            where = f"{path.name}:{node.lineno}"
            if is_dynamic:
                dynamic.append(where)
            facts = {keyword.arg for keyword in node.keywords}
            fields = {field.split("!")[0].split(":")[0] for _, field, _, _ in Formatter().parse(text) if field}
            parameters = {
                call.args[0].value
                for keyword in node.keywords
                for call in ast.walk(keyword.value)
                if isinstance(call, ast.Call)
                and getattr(call.func, "id", None) in ("Parameter", "Argument")
                and isinstance(call.args[0], ast.Constant)
            }
            unworded += [f"{where}: {name}" for name in (fields - facts) | parameters if name not in WORDS]
    assert not unworded
    assert not dynamic


def test_the_command_line_starts_without_the_forward_pass_s_code(tmp_path):
    """attncli.transformer (and attribution, which reads it) load when a checkpoint runs or a head is read: the
    commands that do neither (tokenize, the sample model's) start without them."""
    import subprocess
    import sys

    loaded = "sorted(m for m in sys.modules if m in ('attncli.transformer', 'attncli.attribution'))"
    probe = f"import sys, attncli.cli\nprint({loaded})"
    # from elsewhere than the repository, whose attncli/ would be imported instead of the installed package
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr[-300:]
