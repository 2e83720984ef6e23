"""The type stubs match the runtime (mypy.stubtest) and the examples pass mypy --strict."""

import importlib.util
import pathlib
import subprocess
import sys

import pytest

from conftest import native_only

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, timeout=600
    )


# stubtest imports every module, interlock.cluster's too, which needs the cluster extra (gRPC
# has no wheels for some interpreters yet, free-threaded 3.13 among them).
@pytest.mark.skipif(importlib.util.find_spec("grpc") is None,
                    reason="stubtest imports interlock.cluster: needs the cluster extra")
@native_only("compiled module for stubtest to compare _core.pyi with")
def test_stubs_match_runtime():
    allowlist = ROOT / ".ci" / "stubtest-allowlist.txt"
    result = run("mypy.stubtest", "interlock", "--allowlist", str(allowlist),
                 "--mypy-config-file", str(ROOT / "pyproject.toml"), "--ignore-unused-allowlist")
    assert result.returncode == 0, result.stdout + result.stderr


def test_examples_and_package_pass_mypy_strict():
    result = run("mypy", "--strict", "examples", "python/interlock")
    assert result.returncode == 0, result.stdout + result.stderr
