"""The compiled module's stubs match it (mypy.stubtest), and the package and the examples pass
mypy --strict."""

import pathlib
import subprocess
import sys

from conftest import native_only

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, timeout=600
    )


# The one stub file is _core.pyi (the compiled module's); every other module is Python with
# inline types, which is its own stub. So stubtest checks interlock._core alone: it then needs
# no optional extra, and it does not trip over names a module imports from typing, which
# stubtest compares with the interpreter's typing module differently from one version to the
# next.
@native_only("compiled module for stubtest to compare _core.pyi with")
def test_core_stubs_match_the_compiled_module():
    allowlist = ROOT / ".ci" / "stubtest-allowlist.txt"
    result = run("mypy.stubtest", "interlock._core", "--allowlist", str(allowlist),
                 "--mypy-config-file", str(ROOT / "pyproject.toml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_examples_and_package_pass_mypy_strict():
    result = run("mypy", "--strict", "examples", "python/interlock")
    assert result.returncode == 0, result.stdout + result.stderr
