"""Fixtures the tests share (constants and plain helpers live in helpers.py)."""

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from attncli.bundled import sample_vocabulary
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


@pytest.fixture(scope="module")
def vocab():
    return sample_vocabulary()


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium, or a skip that says what is missing (make test installs both where it can)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium on PATH: apt-get install chromium (make test does, as root) to run the browser tests")
    playwright = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is in the test extra: pip install .[test]"
    )
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()
