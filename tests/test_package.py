"""Package-level facts: what the package exports and how it fails where it cannot work."""

import subprocess
import sys
import textwrap

import interlock


def test_public_names_exist():
    for name in interlock.__all__:
        assert hasattr(interlock, name), name


def test_missing_native_extension_is_an_import_error():
    """The spec: without a working shared-semaphore implementation, importing the module
    fails with ImportError. interlock's equivalent is its native core (Linux futexes)."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["interlock._core"] = None  # as on a platform where it cannot be built
        try:
            import interlock.synchronize
        except ImportError as exc:
            print("ImportError", type(exc).__name__)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ImportError")
