"""The load generator process: `python -m bench.loadgen`, driven by JSON lines on stdin.

It runs in its own process so that its CPU never counts as the servers' and is visible on its own
(a client near 100 % of a core would mean the figure measures the client). Each command is one
measurement: fixed concurrency, a warm-up, then a window bounded in time and in operations. Server
CPU is read from /proc at the exact instants the window opens and closes.

Command: {"scenario": {...}, "concurrency": 32, "warmup": 0.5, "duration": 3.0, "cap": 100000,
          "groups": {"server": [pid, ...], "redis": [pid], "idp": [pid]}}
Answer:  {"ops": n, "work": w, "seconds": s, "rate": w/s, "p50_ms", "p99_ms", "cpu": {group: seconds},
          "client_cpu_s", "machine_busy_s", "errors", "error_sample", "setup_s"}

`ops` counts the operations that ended inside the window (their latencies are the percentiles);
`work` counts every successful operation by the share of its duration that lies inside the window, so
an operation in flight when the window opens or closes counts for the part the window saw. Throughput
is `work` per second: with slow operations that all users started together (a FastMCP flow takes
about 0.8 s) the completions come in bursts of the concurrency, and a count of them moved a figure by
a whole burst (96 or 128 flows in one 3 s window: 32.0 or 42.7 flows/s for the same server).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from typing import Any

from bench.cpu import group_seconds, machine_busy_seconds
from bench.scenarios import PoolEmpty, VirtualUser, build
from bench.servers.common import loop_factory

ERROR_PAUSE_S = 0.01


def _client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def work_within(spans: list[tuple[float, float]], opened: float, closed: float) -> float:
    """Operations (started, ended), each counted by the share of its duration inside [opened, closed]."""
    return sum((min(ended, closed) - max(started, opened)) / (ended - started)
               for started, ended in spans if ended > opened and started < closed and ended > started)


class Window:
    """The measured interval: opened after the warm-up, closed by time, by the cap, or when work runs out."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.recording = False
        self.opened = False
        self.closed = asyncio.Event()
        self.latencies: list[float] = []
        self.spans: list[tuple[float, float]] = []  # (started, ended) of each successful op once opened
        self.errors = 0
        self.error_sample: list[str] = []
        self.cap = 0

    def _snapshot(self) -> tuple[float, float, dict[str, float], float]:
        """(wall clock, own CPU, each group's CPU, the whole machine's busy CPU) at one instant."""
        return (time.perf_counter(), _client_cpu(), {name: group_seconds(pids) for name, pids in self.groups.items()},
                machine_busy_seconds())

    def open(self, cap: int) -> None:
        self.cap = cap
        self.start = self._snapshot()
        self.recording = True
        self.opened = True

    def close(self) -> None:
        if self.recording:
            self.end = self._snapshot()
            self.recording = False
            self.closed.set()

    def record(self, started: float, ended: float) -> None:
        """A successful operation; one still running when the window closed is recorded for `work`."""
        if self.opened:
            self.spans.append((started, ended))
        if self.recording:
            self.latencies.append(ended - started)
            if len(self.latencies) >= self.cap:
                self.close()

    def work(self) -> float:
        return work_within(self.spans, self.start[0], self.end[0])

    def error(self, exc: BaseException) -> None:
        if self.recording:
            self.errors += 1
            if len(self.error_sample) < 3:
                self.error_sample.append(f"{type(exc).__name__}: {exc}"[:400])

    def result(self) -> dict[str, Any]:
        seconds = self.end[0] - self.start[0]
        latencies = sorted(self.latencies)
        work = self.work()
        return {
            "ops": len(latencies),
            "work": work,
            "seconds": round(seconds, 4),
            "rate": work / seconds if seconds > 0 else 0.0,
            "p50_ms": percentile(latencies, 0.50) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "cpu": {name: self.end[2][name] - self.start[2][name] for name in self.groups},
            "client_cpu_s": self.end[1] - self.start[1],
            "machine_busy_s": self.end[3] - self.start[3],
            "errors": self.errors,
            "error_sample": self.error_sample,
        }


async def measure(command: dict[str, Any]) -> dict[str, Any]:
    scenario = build(command["scenario"])
    concurrency = int(command["concurrency"])
    users = [VirtualUser() for _ in range(concurrency)]
    setup_started = time.perf_counter()
    await scenario.setup(users)
    setup_seconds = time.perf_counter() - setup_started
    window = Window({name: list(pids) for name, pids in command["groups"].items()})
    stopping = False
    running = concurrency

    async def worker(user: VirtualUser) -> None:
        nonlocal running
        try:
            while not stopping:
                started = time.perf_counter()
                try:
                    await scenario.op(user)
                except PoolEmpty:
                    return
                except Exception as exc:
                    window.error(exc)
                    await asyncio.sleep(ERROR_PAUSE_S)  # a failing server must not turn into a busy loop
                    continue
                window.record(started, time.perf_counter())
        finally:
            running -= 1
            if running == 0:
                window.close()  # the work ran out (a code pool) before the time did

    tasks = [asyncio.create_task(worker(user)) for user in users]
    await asyncio.sleep(float(command["warmup"]))
    cap = int(command["cap"])
    capacity = scenario.capacity()
    if capacity is not None:
        cap = max(1, min(cap, capacity - concurrency))  # the last codes in flight would end the window ragged
    window.open(cap)
    try:
        await asyncio.wait_for(window.closed.wait(), float(command["duration"]))
    except TimeoutError:
        window.close()
    stopping = True
    await asyncio.wait(tasks, timeout=30)
    for task in tasks:
        task.cancel()
    for user in users:
        user.session.close()
    result = window.result()
    result["setup_s"] = round(setup_seconds, 3)
    return result


async def serve() -> None:
    """One command per stdin line, one JSON answer per stdout line, until stdin closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        try:
            answer = await measure(json.loads(line))
        except Exception as exc:  # reported to the orchestrator, which shows it in the table
            answer = {"failed": f"{type(exc).__name__}: {exc}"[:1000]}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def main() -> None:
    loop = loop_factory()()
    try:
        loop.run_until_complete(serve())
    finally:
        loop.close()


if __name__ == "__main__":
    main()
