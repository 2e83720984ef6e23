"""Every code example in the documentation runs: the docs' Python examples are doctests."""

import doctest
import pathlib
import re

import pytest

from conftest import native_only

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.md"))
# cluster.md's examples start a real etcd: they run with the cluster tests (marker "cluster").
# reliability.md's (robust locks) and asyncio.md's (awaiting) need the native core.
MARKS = {"cluster.md": pytest.mark.cluster, "reliability.md": native_only("robust locks"),
         "asyncio.md": native_only("awaitable primitives")}
RUNNABLE = [pytest.param(p, marks=MARKS[p.name]) if p.name in MARKS else p for p in PAGES]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


@pytest.mark.parametrize("page", RUNNABLE, ids=[p.name for p in PAGES])
def test_examples_run(page):
    result = doctest.testfile(
        str(page), module_relative=False, optionflags=doctest.ELLIPSIS, verbose=False
    )
    assert result.failed == 0, f"{result.failed} example(s) failed in {page.name}"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_python_examples_are_doctests(page):
    """A Python block that is not a doctest would not be run, so none may exist."""
    for language, body in FENCE.findall(page.read_text()):
        if language in ("python", "py", "pycon"):
            assert ">>> " in body, f"{page.name}: a {language} block that is not a doctest"


def test_the_guides_have_examples():
    for name in ("quickstart.md", "migration.md"):
        text = (DOCS / name).read_text()
        assert text.count(">>> ") >= 5, name
