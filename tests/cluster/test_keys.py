"""interlock.cluster._keys: the key layout is written down once, and the docs agree with it."""

import pathlib
import re

from interlock.cluster import _keys

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "cluster.md"


def _doc_table():
    text = DOC.read_text()
    section = text.split("## How the keys are laid out", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    return [(", ".join(re.findall(r"`([^`]+)`", key)), what) for key, what, _ in cells]


def test_the_docs_key_table_lists_the_layout_in_order():
    assert _doc_table() == list(_keys.LAYOUT)


def test_every_per_owner_key_ends_with_its_owner():
    assert _keys.owner_of(b"/ns/lock/q/1a2b-7") == "1a2b-7"
    assert _keys.owner_of(b"/ns/sem/h/ff-1") == "ff-1"


def test_the_holder_record_round_trips_and_says_who_let_go():
    record = _keys.HolderRecord("/ns/l/q/1-2", "handed", "op-7")
    assert _keys.HolderRecord.parse(record.encode()) == record
    assert record.let_go_by(b"/ns/l/q/1-2") and not record.let_go_by(b"/ns/l/q/1-3")
    assert not _keys.HolderRecord("/ns/l/q/1-2", "held").let_go_by(b"/ns/l/q/1-2")
    assert _keys.HolderRecord.parse(b"") is None and _keys.HolderRecord.parse(None) is None


def test_a_corrupt_holder_record_is_a_cluster_error():
    import pytest

    from interlock.cluster import ClusterError

    for raw in (b"{not json", b'{"state": "held"}', b"[1, 2]"):
        with pytest.raises(ClusterError, match="corrupted holder record"):
            _keys.HolderRecord.parse(raw)
