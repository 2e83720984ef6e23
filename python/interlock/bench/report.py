"""Presenting results: a plain-text table, JSON, and PNG plots."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, TextIO

from .timing import Row, fmt_value

PEER_ORDER = ["interlock", "multiprocessing", "threading", "posix_ipc", "manager", "etcd put",
              "zookeeper", "redis", "gateway", "grpc"]


def peers_of(rows: List[Row], with_notes: bool = False) -> List[str]:
    """The columns for these rows: the peers they measured, in PEER_ORDER first, then any other
    peer (a group's own, such as the asyncio group's "executor") in the order it first appears."""
    seen: List[str] = []
    for row in rows:
        for peer in list(row.samples) + (list(row.notes) if with_notes else []):
            if peer not in seen:
                seen.append(peer)
    known = [p for p in PEER_ORDER if p in seen]
    return known + [p for p in seen if p not in known]


def _groups(rows: List[Row]) -> List[List[Row]]:
    """Consecutive rows of one group, each list printed as one table with its own columns."""
    groups: List[List[Row]] = []
    for row in rows:
        if not groups or groups[-1][0].group != row.group:
            groups.append([])
        groups[-1].append(row)
    return groups


def _cell(row: Row, peer: str) -> str:
    stats = row.stats().get(peer)
    if stats is None:
        return "-"
    return fmt_value(row.unit, stats["median"])


def print_table(rows: List[Row], header: List[str], out: TextIO) -> None:
    width = max(len(r.operation) for r in rows) + 2
    for text in header:
        print(f"# {text}", file=out)
    for group in _groups(rows):
        peers = peers_of(group, with_notes=True)
        widths = [max(16, len(p) + 2) for p in peers]
        line = f"{'operation':{width}}" + "".join(f"{p:>{w}}" for p, w in zip(peers, widths))
        line += f"{'ratio':>9}{'target':>8}  spread (interlock, min..max)"
        print(f"\n== {group[0].group}", file=out)
        print(line, file=out)
        print("-" * len(line), file=out)
        for row in group:
            ratio = row.ratio()
            verdict = _verdict(row)
            target = f"{row.target:.2f}x" if row.target is not None else ""
            if row.limit is not None:
                target = "<" + fmt_value(row.unit, row.limit)
            spread = ""
            stats = row.stats().get(row.subject)
            if stats and stats["n"] > 1:
                spread = (f"{fmt_value(row.unit, stats['min'])}.."
                          f"{fmt_value(row.unit, stats['max'])}")
            ratio_text = f"{ratio:.3f}x" if ratio is not None else "-"
            print(
                f"{row.operation:{width}}"
                + "".join(f"{_cell(row, p):>{w}}" for p, w in zip(peers, widths))
                + f"{ratio_text:>9}{target:>8}{verdict:5} {spread}",
                file=out,
            )
    notes = [(r.operation, p, n) for r in rows for p, n in r.notes.items()]
    if notes:
        print("\nnotes:", file=out)
        for operation, peer, text in notes:
            print(f"  {operation} / {peer}: {text}", file=out)


def write_markdown(path: str, rows: List[Row]) -> None:
    """The table as Markdown, one table per group (what docs/performance.md shows)."""
    lines: List[str] = []
    for group in _groups(rows):
        peers = peers_of(group)
        lines += ["", f"**{group[0].group}**", "",
                  "| operation | " + " | ".join(peers) + " | ratio | target |",
                  "|---" * (len(peers) + 3) + "|"]
        for row in group:
            cells = ["–" if _cell(row, p) == "-" else _cell(row, p) for p in peers]
            ratio = row.ratio()
            target = f"{row.target:.2f}x" if row.target is not None else ""
            if row.limit is not None:
                target = "< " + fmt_value(row.unit, row.limit)
            verdict = _verdict(row).strip()
            if verdict:
                target += " ok" if verdict == "ok" else " **miss**"
            lines.append(f"| {row.operation} | " + " | ".join(cells) + " | "
                         + (f"{ratio:.3f}x" if ratio is not None else "–") + f" | {target} |")
    with open(path, "w") as f:
        f.write("\n".join(lines).lstrip("\n") + "\n")


def write_json(path: str, rows: List[Row], meta: Dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump({"meta": meta, "rows": [r.as_dict() for r in rows]}, f, indent=2)


def write_plots(directory: str, rows: List[Row]) -> List[str]:
    """Ratio bars per operation, and latency against the number of processes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(directory, exist_ok=True)
    written = []

    timed = [r for r in rows
             if r.unit == "s" and r.group != "scale" and r.stats().get("multiprocessing")]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(timed) + 1.5))
    peers = [p for p in PEER_ORDER if p != "multiprocessing"]
    height = 0.8 / len(peers)
    for i, peer in enumerate(peers):
        ys, xs = [], []
        for j, row in enumerate(timed):
            stats = row.stats()
            if peer in stats:
                ys.append(j + i * height)
                xs.append(stats[peer]["median"] / stats["multiprocessing"]["median"])
        if xs:
            ax.barh(ys, xs, height=height, label=peer)
    ax.set_yticks([j + 0.4 - height / 2 for j in range(len(timed))])
    ax.set_yticklabels([r.operation for r in timed], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("time relative to multiprocessing (log scale; < 1 is faster)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(directory, "ratios.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    for prefix, title, name in [
        ("Lock contended by ", "Lock contended by N processes", "contended_lock.png"),
        ("Barrier(", "Barrier(N) round", "barrier.png"),
    ]:
        series: Dict[str, List[Any]] = {}
        for row in rows:
            if row.group == "N processes" and row.operation.startswith(prefix):
                n = int("".join(ch for ch in row.operation[len(prefix):] if ch.isdigit()) or 0)
                for peer, peer_stats in row.stats().items():
                    series.setdefault(peer, []).append((n, peer_stats["median"]))
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for peer in PEER_ORDER:
            if peer in series:
                points = sorted(series[peer])
                ax.plot([p[0] for p in points], [p[1] * 1e6 for p in points], marker="o",
                        label=peer)
        ax.set_yscale("log")
        ax.set_xlabel("processes")
        ax.set_ylabel("microseconds per operation (log scale)")
        ax.set_title(title)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(directory, name)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _verdict(row: Row) -> str:
    ratio = row.ratio()
    if row.target is not None and ratio is not None:
        return " ok" if ratio <= row.target else " MISS"
    ours = row.stats().get(row.subject)
    if row.limit is not None and ours is not None:
        return " ok" if ours["median"] <= row.limit else " MISS"
    return ""


def targets_summary(rows: List[Row]) -> Optional[str]:
    checked = [(r, _verdict(r)) for r in rows if _verdict(r)]
    if not checked:
        return None
    missed = [r.operation for r, verdict in checked if verdict == " MISS"]
    return f"targets met: {len(checked) - len(missed)}/{len(checked)}" + (
        f" (missed: {', '.join(missed)})" if missed else ""
    )
