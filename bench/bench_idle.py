"""Idle cost: what borgd costs while nothing is due.

    .venv/bin/python bench/bench_idle.py [--quick] [--minutes M] [--watchdog SEC] [--source DIR]

borgd gets 5 repositories, 5 profiles and 20 calendar schedules whose first
runs are one to two hours away, the client disconnects, and after a few
seconds of settling the daemon is left alone for 5 minutes (``--quick``:
30 s).  Read from /proc at both ends:

* wakeups: voluntary context switches summed over every thread
  (/proc/PID/task/*/status) — each time a thread blocks in epoll, poll or a
  lock counts once, so an idle loop that never wakes adds none;
* CPU: utime + stime of the whole process (/proc/PID/stat) / SC_CLK_TCK;
* RSS: VmRSS at the end, beside the floor set by borgd's libraries: the peak
  RSS of ``python -c 'import sqlalchemy, dbus_fast.aio, anyio, structlog,
  sdnotify'`` (median of 3 fresh processes, measured in the same run); and
  beside the skeleton (``idle_skeleton.py``: those imports, a SQLite store
  open, a name on the session bus, a worker thread, and nothing of borgd's),
  which shows how much of the floor's 1.1× the libraries take before any of
  borgd's code runs.

borgd runs as a user runs it: installed non-editable into a temporary venv
(pip compiles its bytecode) from this checkout or ``--source DIR``, started
through its ``borgd`` console script.

Mount-table changes and steps of the wall clock during the window are
counted too: borgd rightly wakes for those (its mount watcher and its
timerfd), so on a busy machine they explain a wakeup or two.

Targets (printed beside the figures, not asserted): CPU < 0.05 s per idle
minute, RSS <= 1.1× the floor's peak, and no wakeups beyond the watchdog's.
By default the run is without WATCHDOG_USEC; with ``--watchdog 60``
(systemd's WatchdogSec=60) borgd pings every 30 s, which adds 2 wakeups a
minute.
"""

from __future__ import annotations

import os
import select
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import _harness as h
import anyio

CPU_PER_MIN = 0.05
RSS_RATIO = 1.1  # idle RSS within this many times the floor's peak RSS
SETTLE = 3.0


def extra(parser) -> None:
    parser.add_argument("--minutes", type=float, help="observation time (default 5, quick 0.33)")
    parser.add_argument(
        "--watchdog", type=float, default=0, help="set WATCHDOG_USEC to this many seconds"
    )
    parser.add_argument(
        "--source", type=Path, default=h.ROOT, help="the checkout to install (default: this one)"
    )


async def configure(address: str, root) -> int:
    bus = await h.connect(address)
    try:
        base = datetime.now() + timedelta(hours=1)
        n = 0
        for r in range(5):
            repo = root / f"repo{r}"
            repo.mkdir(parents=True)
            await h.call(bus, "AddRepository", "ssa{sv}", [f"r{r}", str(repo), h.asv()])
            await h.call(bus, "AddProfile", "ssasa{sv}", [f"p{r}", f"r{r}", [str(root)], h.asv()])
            for k in range(4):
                at = (base + timedelta(minutes=3 * n)).strftime("%H:%M:%S")
                action = ("backup", "prune", "compact", "check")[k]
                await h.call(
                    bus, "AddSchedule", "sssa{sv}", [f"p{r}", action, f"*-*-* {at}", h.asv()]
                )
                n += 1
        schedules = h.plain((await h.call(bus, "ListSchedules"))[0])
        soonest = min(s["next_run"] for s in schedules) / 1e6 - time.time()
        if soonest < 3000:
            raise RuntimeError(f"a schedule is due in {soonest:.0f} s")
        return len(schedules)
    finally:
        bus.disconnect()


class ExternalEvents:
    """What may wake borgd legitimately: mount-table changes (its mount watcher
    polls /proc/self/mountinfo) and steps of the wall clock (its timerfd is
    cancelled on a clock set).  Counted here so a wakeup can be explained."""

    def __init__(self) -> None:
        self.mounts = 0
        self.clock_steps: list[float] = []
        self._offset = time.time() - time.monotonic()
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._watch_mounts, daemon=True)
        self._thread.start()

    def _watch_mounts(self) -> None:
        with open("/proc/self/mountinfo", "rb") as f:
            f.read()
            poller = select.poll()
            poller.register(f.fileno(), select.POLLPRI | select.POLLERR)
            poller.register(self._stop_r, select.POLLIN)
            while True:
                fds = {fd for fd, _ in poller.poll()}
                if self._stop_r in fds:
                    return
                self.mounts += 1
                f.seek(0)
                f.read()

    def sample_clock(self) -> None:
        offset = time.time() - time.monotonic()
        if abs(offset - self._offset) > 0.005:
            self.clock_steps.append(offset - self._offset)
        self._offset = offset

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(2)
        os.close(self._stop_r)
        os.close(self._stop_w)


def measure_skeleton(python: str, session: h.Session) -> float:
    """Idle VmRSS (MiB) of `idle_skeleton.py` on the same buses, median of 3 processes."""
    home = session.home("skeleton")
    figures = []
    for n in range(3):
        out = subprocess.run(
            [python, str(Path(__file__).with_name("idle_skeleton.py")), str(home / f"s{n}.db")],
            env=session.env(home),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            raise RuntimeError("idle_skeleton.py failed")
        figures.append(float(out.stdout.split()[-1]))
    return statistics.median(figures)


def body(args, cleanup: h.Cleanup) -> int:
    minutes = args.minutes or (1 / 3 if args.quick else 5.0)
    session = h.Session.create(cleanup, "borgd-bench-idle-")
    installed = h.install_borgd(cleanup, args.source.resolve())
    home = session.home()
    env = {}
    if args.watchdog:
        env["WATCHDOG_USEC"] = str(int(args.watchdog * 1e6))
    daemon = h.Borgd(session, home, cleanup, env=env, installed=installed)
    daemon.wait_ready()
    pid = daemon.pid
    count = anyio.run(configure, session.session_bus, session.root / "data")
    time.sleep(SETTLE)

    cpu0 = h.cpu_seconds(pid)
    vol0, invol0, _ = h.ctx_switches(pid)
    per0 = h.per_thread_switches(pid)
    external = ExternalEvents()
    cleanup.callback(external.close)
    begin = time.monotonic()
    print(f"observing borgd (pid {pid}) idle for {minutes:.2g} min …", flush=True)
    while time.monotonic() - begin < minutes * 60:
        time.sleep(1)
        external.sample_clock()
        if daemon.proc.poll() is not None:
            raise RuntimeError(f"borgd exited:\n{daemon.log_tail()}")
    elapsed_min = (time.monotonic() - begin) / 60
    cpu1 = h.cpu_seconds(pid)
    vol1, invol1, threads = h.ctx_switches(pid)
    per1 = h.per_thread_switches(pid)
    rss = h.rss_mb(pid)
    floor = statistics.median(
        h.measure_floor(installed.python, session.root).peak_mib for _ in range(3)
    )
    skeleton = measure_skeleton(installed.python, session)

    wake_rate = (vol1 - vol0) / elapsed_min
    cpu_rate = (cpu1 - cpu0) / elapsed_min
    watchdog_rate = 120 / args.watchdog if args.watchdog else 0.0
    wd = f"WATCHDOG_USEC={int(args.watchdog * 1e6)}" if args.watchdog else "no watchdog"
    table = h.Table(
        f"borgd idle, {count} schedules none due, {elapsed_min:.1f} min, {wd};"
        f" {installed.describe()}"
    )
    table.add(
        "wakeups (voluntary switches, all threads)",
        f"{vol1 - vol0} = {wake_rate:.2f} /min",
        f"<= {watchdog_rate:g} /min (watchdog's only)",
        wake_rate <= watchdog_rate + 0.5,
    )
    table.add("involuntary switches", f"{invol1 - invol0}")
    table.add(
        "CPU (utime+stime)",
        f"{cpu1 - cpu0:.2f} s = {cpu_rate:.3f} s/min",
        f"< {CPU_PER_MIN} s/min",
        cpu_rate < CPU_PER_MIN,
    )
    table.add(
        "RSS at the end",
        f"{rss:.1f} MiB = {rss / floor:.2f}× floor",
        f"<= {RSS_RATIO:g}× floor = {RSS_RATIO * floor:.1f} MiB",
        rss <= RSS_RATIO * floor,
    )
    table.add("  floor: peak RSS of python -c '" + h.FLOOR_IMPORTS + "'", f"{floor:.1f} MiB")
    table.add(
        "  skeleton: floor + SQLite store + bus name + worker thread, idle",
        f"{skeleton:.1f} MiB = {skeleton / floor:.2f}× floor",
    )
    table.add("  borgd beyond the skeleton", f"{rss - skeleton:+.1f} MiB = {rss / skeleton:.2f}×")
    table.add("threads", str(threads))
    busy = {k: per1[k] - per0.get(k, 0) for k in per1 if per1[k] - per0.get(k, 0)}
    for name, n in sorted(busy.items(), key=lambda kv: -kv[1]):
        table.add(f"  thread {name}", f"{n} switches")
    table.add(
        "external events meanwhile (may wake borgd)",
        f"{external.mounts} mount-table changes, {len(external.clock_steps)} clock steps",
    )
    table.add("anchor: systemd timer, default AccuracySec", "wakes within 1 min of due")
    table.add("anchor: Pika Backup, Borg-UI, DeviceVault", "poll every 60 s = 1+ /min")
    table.print()
    return 0


if __name__ == "__main__":
    h.main(body, h.parse_args(__doc__.splitlines()[0], extra))
