"""Event-loop lag while borg's JSON lines pour in (no D-Bus, no daemon).

    .venv/bin/python bench/bench_loop_lag.py [--quick] [--lines N]

A child process prints N (500,000; ``--quick``: 100,000) realistic
``progress_percent`` lines of ``borg compact`` to stderr as fast as the
pipe takes them.  The daemon's own line path reads them:
`borgd.execution.runner.run_process` with the executor's stderr sink —
`borgd.execution.output.BorgOutput.stderr` (job log write, `parse_line`,
`ProgressTracker.feed`, throttles) plus the executor's 0.25 s progress
ticker (`BorgOutput.due`, `JobLog.flush`).  If `BorgOutput` is gone after a
refactoring, the same steps are composed from `parse_line`,
`ProgressTracker.feed` and `Throttle` (the table says which).

Meanwhile another task sleeps 10 ms over and over; its overshoot is the
event loop's lag.  Printed: lines/s (first line to last), max and p99 lag
while lines flow, and the same lag with no load (the machine's noise floor).
Targets: >= 200,000 lines/s, lag <= 20 ms.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import _harness as h
import anyio

TARGET_RATE = 200_000
TARGET_LAG = 0.020
TICK = 0.010

CHILD = r"""
import json, os, sys, time
n = int(sys.argv[1])
t0 = time.time()
template = ('{"message": "Compacting segments %3d%%", "current": %d, "total": %d, '
            '"info": null, "operation": 1, "msgid": "repository.compact_segments", '
            '"type": "progress_percent", "finished": false, "time": %.7f}\n')
lines = [template % (i * 100 // n, i, n, t0 + i * 1e-6) for i in range(n)]
lines.append('{"message": "", "current": %d, "total": %d, "info": null, "operation": 1, '
             '"msgid": "repository.compact_segments", "type": "progress_percent", '
             '"finished": true, "time": %.7f}\n' % (n, n, time.time()))
data = "".join(lines).encode()
del lines
view = memoryview(data)
while view:
    k = os.write(2, view[:1 << 20])
    view = view[k:]
"""


def make_sink(jlog_path: Path):
    """The executor's stderr sink and its ticker; and which implementation it is."""
    from borgd.core.jobs import JobType
    from borgd.execution.joblog import JobLog

    jlog = JobLog(jlog_path)
    try:
        from borgd.execution.output import BorgOutput
    except ImportError:
        BorgOutput = None
    if BorgOutput is not None:
        out = BorgOutput(JobType.COMPACT, jlog, clock=time.monotonic)

        def tick() -> None:
            out.due(time.monotonic())
            jlog.flush()

        return out.stderr, tick, jlog, "BorgOutput.stderr + due() ticker"

    from borgd.core.borg_output import parse_line
    from borgd.core.progress import ProgressTracker, Throttle

    tracker = ProgressTracker(JobType.COMPACT)
    publish = Throttle(1.0)
    dirty = [False]

    def sink(line: str) -> None:
        jlog.write(line)
        if tracker.feed(parse_line(line), time.monotonic()):
            dirty[0] = True

    def tick_fallback() -> None:
        if dirty[0] and publish.due(time.monotonic()):
            tracker.snapshot()
            dirty[0] = False
        jlog.flush()

    return sink, tick_fallback, jlog, "parse_line + ProgressTracker.feed + Throttle"


async def measure_lag(stop: anyio.Event, samples: list[tuple[float, float]]) -> None:
    while not stop.is_set():
        begin = time.perf_counter()
        await anyio.sleep(TICK)
        end = time.perf_counter()
        samples.append((end, end - begin - TICK))


async def run(n: int, workdir: Path) -> dict:
    from borgd.execution.runner import run_process

    sink, tick, jlog, kind = make_sink(workdir / "job.log")
    count = 0
    first = last = cpu_first = cpu_last = 0.0

    total = n + 1  # the child's last line says "finished"

    def on_stderr(line: str) -> None:
        nonlocal count, first, last, cpu_first, cpu_last
        count += 1
        if count == 1:
            first, cpu_first = time.perf_counter(), time.process_time()
        elif count == total:
            last, cpu_last = time.perf_counter(), time.process_time()
        sink(line)

    async def ticker() -> None:
        while True:
            await anyio.sleep(0.25)
            tick()

    # the noise floor: the same lag probe with nothing else running
    idle: list[tuple[float, float]] = []
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(measure_lag, stop, idle)
        await anyio.sleep(1.0)
        stop.set()

    busy: list[tuple[float, float]] = []
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(measure_lag, stop, busy)
        tg.start_soon(ticker)
        result = await run_process(
            [h.PYTHON, "-c", CHILD, str(n)], env=dict(os.environ), on_stderr=on_stderr
        )
        stop.set()
        tg.cancel_scope.cancel()
    jlog.close()
    flowing = [lag for at, lag in busy if first <= at <= last + TICK]
    return {
        "kind": kind,
        "rc": result.returncode,
        "lines": count,
        "seconds": last - first,
        "lag": flowing,
        "idle": [lag for _, lag in idle],
        "log_bytes": (workdir / "job.log").stat().st_size,
        "cpu": cpu_last - cpu_first,
    }


def extra(parser) -> None:
    parser.add_argument("--lines", type=int, help="lines to send (500,000; quick 100,000)")


def body(args, cleanup: h.Cleanup) -> int:
    n = args.lines or (100_000 if args.quick else 500_000)
    workdir = cleanup.temp_dir("borgd-bench-looplag-")
    r = anyio.run(run, n, workdir, backend="asyncio")
    if r["rc"] != 0 or r["lines"] != n + 1:
        print(f"child exited {r['rc']} after {r['lines']} lines", file=sys.stderr)
        return 1
    rate = (r["lines"] - 1) / r["seconds"] if r["seconds"] > 0 else float("nan")
    lag_max = max(r["lag"], default=float("nan"))
    lag_p99 = h.percentile(r["lag"], 99)
    table = h.Table(f"event-loop lag, {n:,} progress_percent lines through run_process")
    table.add("sink", r["kind"])
    table.add(
        "lines/s (first line to last)",
        f"{rate:,.0f} ({r['seconds']:.2f} s)",
        f">= {TARGET_RATE:,}",
        rate >= TARGET_RATE,
    )
    cpu_line = r["cpu"] / max(1, r["lines"] - 1)
    table.add(
        "reader's CPU per line (→ lines/s with one core)",
        f"{cpu_line * 1e6:.2f} µs (→ {1 / cpu_line:,.0f})" if cpu_line else "n/a",
    )
    table.add(
        "reader's CPU use while lines flowed (1.0 = one core)",
        f"{r['cpu'] / r['seconds']:.2f}" if r["seconds"] else "n/a",
    )
    table.add(
        f"lag of a {TICK * 1000:.0f} ms sleep, max ({len(r['lag'])} samples)",
        h.ms(lag_max),
        f"<= {TARGET_LAG * 1000:.0f} ms",
        lag_max <= TARGET_LAG,
    )
    table.add("lag, p99", h.ms(lag_p99), f"<= {TARGET_LAG * 1000:.0f} ms", lag_p99 <= TARGET_LAG)
    table.add("lag, median", h.ms(h.median(r["lag"])))
    table.add(
        "noise floor: lag with no load, median / max",
        f"{h.ms(h.median(r['idle']))} / {h.ms(max(r['idle'], default=float('nan')))}",
    )
    table.add("job log written", f"{r['log_bytes'] / 1e6:.1f} MB")
    table.print()
    return 0


if __name__ == "__main__":
    h.main(body, h.parse_args(__doc__.splitlines()[0], extra))
