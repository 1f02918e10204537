"""attncli.main: what the process sets up before the CLI (and numpy, and OpenBLAS) is imported."""

import os
import subprocess
import sys

import pytest

# A process whose attncli.cli is a stand-in that prints the OpenBLAS setting the real one would load with.
_PROBE = """
import os, sys, types
cli = types.ModuleType("attncli.cli")
cli.main = lambda: print(os.environ.get("OPENBLAS_THREAD_TIMEOUT"), "numpy" in sys.modules)
sys.modules["attncli.cli"] = cli
import attncli
attncli.main()
"""


@pytest.mark.parametrize(("given", "seen"), [(None, "16 False"), ("30", "30 False")])
def test_idle_openblas_threads_sleep_soon_unless_the_environment_says(given, seen):
    environment = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if given is not None:
        environment["OPENBLAS_THREAD_TIMEOUT"] = given
    done = subprocess.run([sys.executable, "-c", _PROBE], env=environment, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == seen
