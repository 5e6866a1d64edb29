"""The scale run's table: figures at both sizes, their ratios and the goals they meet."""

from __future__ import annotations

from typing import Any

READ_LIMIT = 1.3  # reads at N within 1.3x of 100k
INGEST_FLOOR = 0.8  # the last 10 % of the ingest at least 0.8x as fast as the first
RSS_LIMIT_MB = 300.0  # peak client RSS
REPLICA_LIMIT = 1.2  # reads on the standby within 1.2x of the primary
READS = ("get_by_company", "filtered_page")


def _ok(good: bool) -> str:
    return "yes" if good else "NO"


def goals(report: dict[str, Any]) -> dict[str, bool]:
    """Each goal of the run: met or not (reads on their medians and p95s)."""
    small, large = report["small"]["latency"], report["large"]["latency"]
    met = {
        f"{name} {stat} at N <= {READ_LIMIT}x 100k": (
            large[name][stat] / small[name][stat] <= READ_LIMIT
        )
        for name in READS
        for stat in ("median_ms", "p95_ms")
    }
    met[f"ingest end >= {INGEST_FLOOR}x start"] = report["ingest"]["end_to_start"] >= INGEST_FLOOR
    met[f"client RSS < {RSS_LIMIT_MB:.0f} MB"] = report["memory"]["vmhwm_mb"] < RSS_LIMIT_MB
    replica = report.get("replica")
    if replica is not None:
        for name in READS:
            for stat in ("median_ms", "p95_ms"):
                ratio = replica["replica"][name][stat] / replica["primary"][name][stat]
                met[f"{name} {stat} on replica <= {REPLICA_LIMIT}x primary"] = (
                    ratio <= REPLICA_LIMIT
                )
    return met


def _signals_touched(plan: dict[str, Any]) -> str:
    names = [n for n in plan["relations"] if n.startswith("signals")]
    others = [n for n in plan["relations"] if not n.startswith("signals")]
    if not names:
        return f"0 ({', '.join(others)})"
    return f"{len(names)}"


def _sizes(small: dict[str, Any], large: dict[str, Any]) -> list[str]:
    lines = []
    for label, key in (
        ("signals heap + TOAST [MB]", "table_mb"),
        ("signals indexes [MB]", "index_mb"),
        ("signals total [MB]", "total_mb"),
    ):
        lines.append(f"{label:<40}{small[key]:>14,.0f}{large[key]:>14,.0f}")
    rows = [
        ("leaf partitions of signals", "partitions"),
        ("rows in signals_default", "default_rows"),
    ]
    for label, key in rows:
        lines.append(f"{label:<40}{small[key]:>14,}{large[key]:>14,}")
    spread = [
        f"{block['month_partition_rows']['min']:,}-{block['month_partition_rows']['max']:,}"
        for block in (small, large)
    ]
    lines.append(f"{'rows per partition (estimate, min-max)':<40}{spread[0]:>14}{spread[1]:>14}")
    for name in READS:
        touched = [_signals_touched(b["explain"][name]) for b in (small, large)]
        lines.append(f"{'partitions touched, ' + name:<40}{touched[0]:>14}{touched[1]:>14}")
    return lines


_SHAPES = {"daily": "a daily feed, oldest day first", "backfill": "a random-date backfill"}


def _ingest(report: dict[str, Any]) -> list[str]:
    ingest = report["ingest"]
    first, last = ingest["first"], ingest["last"]
    ratio = ingest["end_to_start"]
    return [
        f"ingest (SignalRepository.bulk_ingest, COPY, {report['batch_rows']:,}-row batches, "
        f"bulk rows as {_SHAPES[report.get('ingest_shape', 'backfill')]}; "
        "rate = rows / seconds inside bulk_ingest):",
        f"  first 10 % (rows {first['from_row']:,}-{first['to_row']:,}): "
        f"{first['copy_rows_per_s']:,.0f} rows/s  (with generating the rows "
        f"{first['wall_rows_per_s']:,.0f})",
        f"  last 10 % (rows {last['from_row']:,}-{last['to_row']:,}): "
        f"{last['copy_rows_per_s']:,.0f} rows/s  (with generating the rows "
        f"{last['wall_rows_per_s']:,.0f})",
        f"  end / start {ratio:.2f}x (goal >= {INGEST_FLOOR}x): {_ok(ratio >= INGEST_FLOOR)}",
        "  server per row, first / last 10 %: "
        f"{first['buffer_reads_per_row']:.2f} / {last['buffer_reads_per_row']:.2f} buffer reads, "
        f"{first['buffer_writes_per_row']:.2f} / {last['buffer_writes_per_row']:.2f} buffer "
        f"writes (pg_stat_io, client backends), {first['wal_bytes_per_row']:,.0f} / "
        f"{last['wal_bytes_per_row']:,.0f} WAL bytes",
        f"  whole ingest: {ingest['copy_rows_per_s']:,.0f} rows/s in bulk_ingest, "
        f"{ingest['wall_rows_per_s']:,.0f} rows/s with generation, {ingest['wall_s']:,.0f} s",
    ]


def _load(label: str, load: dict[str, Any]) -> str:
    signals = load["plans"].get("signals", {"generic": 0, "custom": 0})
    return (
        f"{label}: {load['rounds']} rounds kept after {load['rounds_redone']} re-runs for "
        f"outside load ({load['waited_s']:.0f} s waited), {load['rounds_loaded']} of them "
        f"still loaded, mean {load['other_cores_mean']:.2f} other cores; signals statements "
        f"ran {signals['custom']:,} custom and {signals['generic']:,} generic plans"
    )


def _replica(replica: dict[str, Any]) -> list[str]:
    lines = [
        f"replica: hot standby by pg_basebackup, streaming; copied in "
        f"{replica['basebackup_s']:.0f} s, caught up at {replica['caught_up_s']:.0f} s; reads in "
        "Database.session(read_only=True) with read_replica_urls (checked pg_is_in_recovery())",
        f"{'':<34}{'primary':>12}{'replica':>12}{'ratio':>9}  ok (<= {REPLICA_LIMIT}x)",
    ]
    for name in READS:
        for stat in ("median_ms", "p95_ms"):
            a, b = replica["primary"][name][stat], replica["replica"][name][stat]
            label = f"{name} {stat.removesuffix('_ms')} [ms]"
            lines.append(
                f"{label:<34}{a:>12.3f}{b:>12.3f}{b / a:>8.2f}x  {_ok(b / a <= REPLICA_LIMIT)}"
            )
    load = replica["load"]
    lines += [_load("primary", load["primary"]), _load("replica", load["replica"])]
    return lines


def render(report: dict[str, Any]) -> str:
    """The printed table (also stored as ``table`` in the results JSON)."""
    small, large = report["small"], report["large"]
    big = f"{report['final_rows'] / 1e6:g}M signals"
    lines = [
        f"biotech-ma-db scale run — {report['date_utc']} UTC; CPU placement: {report['placement']}",
        f"{report['final_rows']:,} signals over {report['months']} months, "
        f"{report['companies']['measured']:,} measured + {report['companies']['bulk']:,} bulk "
        f"companies; partitions created for the data: {len(report['partitions_created'])}",
        "",
        f"{'':<40}{'100k signals':>14}{big:>14}{'ratio':>9}  ok (<= {READ_LIMIT}x)",
    ]
    for name in READS:
        for stat in ("median_ms", "p95_ms"):
            a, b = small["latency"][name][stat], large["latency"][name][stat]
            label = f"{name} {stat.removesuffix('_ms')} [ms]"
            ok = _ok(b / a <= READ_LIMIT)
            lines.append(f"{label:<40}{a:>14.3f}{b:>14.3f}{b / a:>8.2f}x  {ok}")
        rows = [block["latency"][name]["rows_mean"] for block in (small, large)]
        lines.append(f"{name + ' rows per call (mean)':<40}{rows[0]:>14.1f}{rows[1]:>14.1f}")
    lines += _sizes(small, large)
    lines += [_load("100k", small["load"]), _load(big.split(maxsplit=1)[0], large["load"])]
    busy = large["latency"].get("get_by_company_busy")
    if busy is not None:
        lines += [
            "",
            f"get_by_company of a bulk company at {big} (its window holds more than a page): "
            f"median {busy['median_ms']:.3f} ms, p95 {busy['p95_ms']:.3f} ms, "
            f"{busy['rows_mean']:.1f} rows per call",
        ]
    memory = report["memory"]
    rss_ok = _ok(memory["vmhwm_mb"] < RSS_LIMIT_MB)
    lines += [
        "",
        *_ingest(report),
        f"peak client RSS (VmHWM, whole run): {memory['vmhwm_mb']:,.0f} MB "
        f"(goal < {RSS_LIMIT_MB:.0f} MB): {rss_ok}; ru_maxrss {memory['ru_maxrss_mb']:,.0f} MB; "
        f"sampled during the ingest {memory['sampled_ingest_mb']:,.0f} MB",
        "",
    ]
    if report.get("replica") is not None:
        lines += [*_replica(report["replica"]), ""]
    for size, block in (("100k", small), (big.split(maxsplit=1)[0], large)):
        for name, plan in block["explain"].items():
            lines += [
                f"EXPLAIN {name} at {size} (relations scanned: {', '.join(plan['relations'])}):",
                *(f"  {p}" for p in plan["plan"].splitlines()),
                "",
            ]
    missed = [goal for goal, ok in report["goals"].items() if not ok]
    lines.append(f"goals missed: {'; '.join(missed) if missed else 'none'}")
    lines.append(f"total wall time {report['total_wall_s']}s")
    return "\n".join(lines)
