"""interlock.bench.report: each group's table has the columns of the peers it measured."""

import io

from interlock.bench import report
from interlock.bench.timing import Row


def _row(group, operation, **figures):
    row = Row(group, operation)
    for peer, value in figures.items():
        row.add(peer, value)
    return row


def _rows():
    a = _row("between", "Lock", interlock=1e-6, multiprocessing=2e-6, posix_ipc=3e-6)
    b = _row("asyncio", "Event wake", executor=4e-4, interlock=2e-4)
    c = Row("asyncio", "FileLock hand-off")
    c.add("filelock", 1e-3)
    c.add("interlock", 1e-4)
    b.baseline = c.baseline = "executor"
    return [a, b, c]


def test_known_peers_come_in_their_order_and_others_as_they_first_appear():
    rows = _rows()
    assert report.peers_of(rows[:1]) == ["interlock", "multiprocessing", "posix_ipc"]
    assert report.peers_of(rows[1:]) == ["interlock", "executor", "filelock"]


def test_every_peer_of_a_group_gets_a_column_in_the_text_table():
    out = io.StringIO()
    report.print_table(_rows(), ["header"], out)
    text = out.getvalue()
    between, asyncio_part = text.split("== asyncio")
    assert "posix_ipc" in between and "executor" not in between
    header = asyncio_part.splitlines()[1]
    assert header.split()[:4] == ["operation", "interlock", "executor", "filelock"]
    wake = next(line for line in asyncio_part.splitlines() if line.startswith("Event wake"))
    assert "200.00 us" in wake and "400.00 us" in wake and "0.500x" in wake


def test_the_markdown_tables_have_one_column_per_measured_peer(tmp_path):
    path = tmp_path / "table.md"
    report.write_markdown(str(path), _rows())
    lines = path.read_text().splitlines()
    headers = [line for line in lines if line.startswith("| operation")]
    assert headers == ["| operation | interlock | multiprocessing | posix_ipc | ratio | target |",
                       "| operation | interlock | executor | filelock | ratio | target |"]
    hand_off = next(line for line in lines if line.startswith("| FileLock hand-off"))
    assert hand_off.split(" | ")[1:4] == ["100.00 us", "–", "1.00 ms"]
