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


# A process whose attncli.cli is a stand-in that leaves a model behind, registers an exit handler and exits.
_ENDING = """
import atexit, sys, types
class Model:
    def __del__(self):
        sys.stderr.write("freed\\n")
cli = types.ModuleType("attncli.cli")
def main():
    cli.loaded = Model()
    atexit.register(lambda: sys.stderr.write("exit handler\\n"))
    sys.stdout.write("result\\n")  # left in the buffer: the ending flushes it
    sys.exit(CODE)
cli.main = main
sys.modules["attncli.cli"] = cli
import attncli
attncli.main()
"""


@pytest.mark.parametrize(
    ("code", "exit_code", "said"), [("0", 0, ""), ("None", 0, ""), ("3", 3, ""), ("'no'", 1, "no\n")]
)
def test_a_run_ends_with_its_output_flushed_and_exit_handlers_run_without_freeing_what_it_loaded(code, exit_code, said):
    done = subprocess.run([sys.executable, "-c", _ENDING.replace("CODE", code)], capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (exit_code, "result\n", said + "exit handler\n")
