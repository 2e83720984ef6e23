"""Package-level facts: what the package exports and how it fails where it cannot work."""

import subprocess
import sys
import textwrap

import interlock


def test_public_names_exist():
    for name in interlock.__all__:
        assert hasattr(interlock, name), name


def _run(script):
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_without_the_native_extension_the_portable_backend_is_used():
    """As on a system where the core cannot be built (or a build with INTERLOCK_PURE_PYTHON=1):
    the primitives are multiprocessing's own, and interlock.native says so."""
    out = _run("""
        import sys
        sys.modules["interlock._core"] = None  # no extension module installed
        import multiprocessing.synchronize
        import interlock
        lock = interlock.Lock()
        print(interlock.native, interlock.backend,
              isinstance(lock, multiprocessing.synchronize.Lock), lock.acquire(), lock.locked())
        """)
    assert out.split() == ["False", "portable", "True", "True", "True"]


def test_a_native_extension_that_cannot_load_is_an_import_error():
    """A native core that is installed but broken is never hidden behind the fallback."""
    out = _run("""
        import importlib.abc, importlib.machinery, sys

        class Broken(importlib.abc.Loader):
            def create_module(self, spec):
                raise ImportError("undefined symbol: as a mismatched build would say")
            def exec_module(self, module):
                pass

        class Finder(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "interlock._core":
                    return importlib.machinery.ModuleSpec(name, Broken())
                return None

        sys.meta_path.insert(0, Finder())
        try:
            import interlock
        except ImportError as exc:
            print("ImportError", exc)
        """)
    assert out.startswith("ImportError undefined symbol")


def test_without_shared_semaphores_either_importing_synchronize_is_an_import_error():
    """The spec: without a working shared-semaphore implementation, importing the module
    fails with ImportError. Without the native core, the portable backend needs
    multiprocessing.synchronize, which follows that rule."""
    out = _run("""
        import sys
        sys.modules["interlock._core"] = None
        sys.modules["multiprocessing.synchronize"] = None  # as without sem_open
        try:
            import interlock.synchronize
        except ImportError as exc:
            print("ImportError", type(exc).__name__)
        """)
    assert out.startswith("ImportError")
