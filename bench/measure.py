"""One timed run and what is kept of it; the memory of one run; outside load.

A timed run measures wall time, client CPU (``time.process_time`` of this process),
server CPU (``/proc`` of the postmaster and its backends) and the CPU that unrelated
processes used meanwhile (``/proc/stat`` minus those two).  A memory run repeats the
work once, untimed, under ``tracemalloc`` with the RSS sampled in a thread.
"""

from __future__ import annotations

import gc
import os
import statistics
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.server import BenchServer

# ``BENCH_GC=off`` turns the cyclic garbage collector off during timed runs (it is on, as
# in an application, by default; the seeded data is frozen out of its way either way).
GC_DURING_RUNS = os.environ.get("BENCH_GC", "on") != "off"
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class RunResult:
    units: int
    wall: float
    client_cpu: float
    server_cpu: float
    other_cores: float
    check: int

    @property
    def rate(self) -> float:
        return self.units / self.wall


@dataclass
class Memory:
    """One untimed run under ``tracemalloc``: peak Python allocations and RSS."""

    units: int
    traced_peak: int  # bytes allocated by Python at the high-water mark, above the start
    traced_end: int  # bytes still allocated at the end (kept by caches, pools, results)
    rss_start: int
    rss_peak: int

    def as_json(self) -> dict[str, float]:
        return {
            "units": self.units,
            "tracemalloc_peak_kib": round(self.traced_peak / 1024, 1),
            "tracemalloc_peak_per_unit_b": round(self.traced_peak / self.units, 1),
            "tracemalloc_retained_kib": round(self.traced_end / 1024, 1),
            "rss_start_mib": round(self.rss_start / 2**20, 1),
            "rss_peak_mib": round(self.rss_peak / 2**20, 1),
            "rss_growth_kib": round((self.rss_peak - self.rss_start) / 1024, 1),
        }


@dataclass
class Cell:
    op: str
    peer: str
    runs: list[RunResult] = field(default_factory=list)
    warmup: RunResult | None = None
    discarded: int = 0
    loaded: int = 0  # kept runs that still had outside load
    memory: Memory | None = None
    round_trips: dict[str, float] | None = None

    @property
    def rate(self) -> float:
        return statistics.median(r.rate for r in self.runs)

    def per_unit_us(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) / r.units * 1e6 for r in self.runs)


def busy_jiffies() -> int:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return user + nice + system + irq + softirq + steal


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE


async def timed(server: BenchServer, work: Callable[[], Awaitable[int]], units: int) -> RunResult:
    """Run ``work`` once and measure it (collected garbage first; see :data:`GC_DURING_RUNS`)."""
    gc.collect()
    if not GC_DURING_RUNS:
        gc.disable()
    try:
        server0 = server.server_cpu_seconds()
        busy0 = busy_jiffies()
        cpu0 = time.process_time()
        wall0 = time.perf_counter()
        check = await work()
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        busy = (busy_jiffies() - busy0) / os.sysconf("SC_CLK_TCK")
        server_cpu = server.server_cpu_seconds() - server0
    finally:
        gc.enable()
    other = max(0.0, busy - cpu - server_cpu) / wall
    return RunResult(units, wall, cpu, server_cpu, other, check)


class _RssSampler:
    """The peak RSS of this process while it runs (sampled every millisecond in a thread)."""

    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


async def memory_run(work: Callable[[], Awaitable[int]], units: int) -> Memory:
    """Run ``work`` once under ``tracemalloc`` and an RSS sampler."""
    gc.collect()
    rss_start = rss_bytes()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        with _RssSampler() as sampler:
            await work()
        end, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return Memory(units, max(0, peak - base), max(0, end - base), rss_start, sampler.peak)
