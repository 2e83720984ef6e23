"""CPython's multiprocessing tests for the forkserver start method, on interlock's primitives."""

from ._suite import install_tests

install_tests(globals(), "forkserver")
