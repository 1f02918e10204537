import json

import numpy as np
import pytest
from typer.testing import CliRunner

from attncli.cli import app


class Run:
    def __init__(self, result):
        self.code = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr

    def json(self) -> dict:
        return json.loads(self.stdout)


@pytest.fixture
def cli():
    """Call the CLI in-process: cli("explain", "text", "--json") -> Run with code, stdout, stderr."""
    runner = CliRunner()

    def invoke(*args: str, stdin: bytes | str | None = None, env: dict | None = None) -> Run:
        return Run(runner.invoke(app, list(args), input=stdin, env=env, catch_exceptions=False))

    return invoke


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
