"""Sleep and resume cycles through a logind mock: each missed occurrence is caught up once.

python-dbusmock's logind template runs on the test's private system bus.  A
cycle is what a suspend looks like to borgd: logind emits
``PrepareForSleep(true)``; borgd persists and releases its ``delay``
inhibitor; the machine sleeps (here: borgd and its children are stopped with
SIGSTOP while the wall clock runs on past several occurrences of a schedule);
the machine wakes (SIGCONT) and logind emits ``PrepareForSleep(false)``;
borgd takes the delay lock again, re-arms and catches up.

Checked per cycle: the delay lock is released before the sleep and held
again after it; exactly one run covers the occurrences missed during the
sleep (a catch-up), started after the wake-up.  Checked at the end: every
occurrence of the schedule from the first to the last handled one is
accounted for exactly once (an on-time run, a skipped row, or the
catch-up/coalesced pair of a sleep), and the schedule has one intent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator

import dbus
import pytest
from dbusmock import MOCK_IFACE, SpawnedMock

from tests.conftest import make_tree, wait_until
from tests.e2e.jobs_helpers import children
from tests.reliability.helpers import (
    add_profile,
    all_jobs,
    init_repo,
    intents_per_schedule,
    internal_errors,
    log_on_failure,
    status_counts,
)

LOGIND = "org.freedesktop.login1"
MANAGER_IFACE = "org.freedesktop.login1.Manager"
S = 1_000_000
PERIOD = 1  # second between occurrences of SPEC
SPEC = "*:*:*"
FREEZE = 2.5  # seconds asleep: at least two occurrences are missed
SLACK = 300_000  # an occurrence this close to a sleep's edges may fall on either side


@pytest.fixture
def logind(buses, monkeypatch) -> Iterator[tuple[SpawnedMock, dbus.bus.BusConnection]]:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", buses.system)
    conn = dbus.bus.BusConnection(buses.system)
    mock = SpawnedMock.spawn_with_template(
        "logind", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield mock, conn
    finally:
        mock.terminate()
        conn.close()


def delay_locks(conn: dbus.bus.BusConnection) -> int:
    obj = conn.get_object(LOGIND, "/org/freedesktop/login1")
    rows = obj.ListInhibitors(dbus_interface=MANAGER_IFACE)
    return sum(1 for r in rows if str(r[1]) == "borgd" and str(r[3]) == "delay")


def prepare_for_sleep(mock: SpawnedMock, start: bool) -> None:
    mock.obj.EmitSignal(MANAGER_IFACE, "PrepareForSleep", "b", [start], dbus_interface=MOCK_IFACE)


def describe(jobs: list[dict], windows: list[tuple[int, int]]) -> str:
    """Jobs and sleeps as lines, times in seconds, for a failure message."""
    lines = [f"asleep {a / S:.3f} .. awake {b / S:.3f}" for a, b in windows]
    lines += [
        f"job {j['id']} {j['trigger']} {j['status']} {j['skip_reason']} "
        f"for {j['scheduled_for'] / S:.3f} queued {j['queued_at'] / S:.3f} "
        f"started {j['started_at'] / S:.3f} finished {j['finished_at'] / S:.3f}"
        for j in jobs
    ]
    return "\n".join(lines)


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (borg runs in its own session, still our child)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def freeze(pids: list[int], sig: signal.Signals) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, sig)


@pytest.mark.parametrize(
    "cycles",
    [
        pytest.param(5, id="fast"),
        pytest.param(100, id="long", marks=[pytest.mark.slow, pytest.mark.timeout(3600)]),
    ],
)
def test_sleep_cycles_catch_up_each_missed_schedule_once(
    cycles, report, logind, start_borgd, busctl, tmp_path
):
    mock, conn = logind
    began = time.monotonic()
    daemon = start_borgd()
    sleep_monitor = lambda: busctl(  # noqa: E731
        "Get",
        "ss",
        "org.borgd1.Manager",
        "SleepMonitor",
        interface="org.freedesktop.DBus.Properties",
    )
    wait_until(lambda: sleep_monitor() == "active", 10, "SleepMonitor to be active")
    wait_until(lambda: delay_locks(conn) == 1, 10, "borgd's delay lock")
    init_repo(busctl, "r1", tmp_path / "r1")
    add_profile(busctl, "p", "r1", [make_tree(tmp_path / "src", 5)])
    schedule = busctl("AddSchedule", "sssa{sv}", "p", "backup", SPEC, 0)

    with log_on_failure(lambda: daemon):
        windows: list[tuple[int, int]] = []
        for i in range(cycles):
            wait_until(
                lambda: not all_jobs(busctl, status=["queued", "running"]),
                30,
                f"cycle {i}: the lane to be idle",
                interval=0.05,
            )
            prepare_for_sleep(mock, True)
            wait_until(lambda: delay_locks(conn) == 0, 10, f"cycle {i}: the delay lock released")
            pids = tree(daemon.proc.pid)
            freeze(pids, signal.SIGSTOP)
            asleep = time.time_ns() // 1000
            time.sleep(FREEZE)
            awake = time.time_ns() // 1000
            freeze(list(reversed(pids)), signal.SIGCONT)
            prepare_for_sleep(mock, False)
            windows.append((asleep, awake))
            wait_until(
                lambda: delay_locks(conn) == 1, 10, f"cycle {i}: the delay lock taken again"
            )
            assert sleep_monitor() == "active"
            assert intents_per_schedule(busctl) == {schedule: 1}
            # Awake for a while: the schedule runs on time again before the next sleep.
            wait_until(
                lambda a=awake: any(
                    j["trigger"] == "schedule"
                    and j["scheduled_for"] > a
                    and j["status"] == "succeeded"
                    for j in all_jobs(busctl, limit=("u", 6))
                ),
                20,
                f"cycle {i}: an on-time run after the wake-up",
            )
        # Hold the schedule and let the lane settle before the snapshot: with an
        # occurrence every second a run is nearly always in progress, and a snapshot
        # taken during it would show it `running` (later `interrupted` by the stop).
        busctl("Pause", "t", 0)
        wait_until(
            lambda: not all_jobs(busctl, status=["queued", "running"]),
            30,
            "the lane to be idle after the pause",
            interval=0.05,
        )
        jobs = [j for j in all_jobs(busctl) if j["schedule_id"] == schedule]
        assert intents_per_schedule(busctl) == {schedule: 1}
        assert daemon.stop() == 0, daemon.log()
        assert internal_errors(daemon.log()) == []

    handled = sorted((j for j in jobs if j["status"] != "scheduled"), key=lambda j: j["id"])
    runs = [j for j in handled if j["status"] != "skipped"]
    assert all(j["status"] == "succeeded" for j in runs), describe(runs, windows)
    for n, (asleep, awake) in enumerate(windows):
        until = windows[n + 1][0] if n + 1 < len(windows) else 2**63
        after_wake = [j for j in runs if awake <= j["started_at"] < until]
        # The one run after the wake-up for what fell due during the sleep: a catch-up,
        # or the run of an occurrence just before the sleep that was still queued then
        # (the missed ones are skipped as already active: that run covers them).  None
        # only if a run was in progress through the sleep and the catch-up was skipped
        # as already active because of it.
        covering = [
            j
            for j in after_wake
            if j["trigger"] == "catch-up"
            or (j["trigger"] == "schedule" and j["scheduled_for"] <= asleep + SLACK)
        ]
        through = [j for j in runs if j["started_at"] < asleep < awake < j["finished_at"]]
        if through and not covering:
            covering = through
        near = [
            j
            for j in handled
            if asleep - 5 * S < max(j["scheduled_for"], j["started_at"]) < awake + 5 * S
        ]
        assert len(covering) == 1, f"sleep {n}: {describe(near, windows[n : n + 1])}"
    # Every occurrence handled exactly once: by its own row, or inside the span a
    # coalesced row stands for (up to its catch-up's occurrence).
    covered: Counter[int] = Counter(j["scheduled_for"] for j in handled)
    catch_ups = [j for j in handled if j["trigger"] == "catch-up"]
    late = {j["scheduled_for"] for j in catch_ups}  # handled after a sleep, as missed
    for row in (j for j in handled if j["skip_reason"] == "coalesced"):
        partner = min(
            (c["scheduled_for"] for c in catch_ups if c["scheduled_for"] > row["scheduled_for"]),
            default=None,
        )
        assert partner is not None, describe([row], windows)
        span = range(row["scheduled_for"], partner, PERIOD * S)
        covered.update(span[1:])
        late.update(span)
    for n, (asleep, awake) in enumerate(windows):
        first = -(-(asleep + SLACK) // (PERIOD * S)) * PERIOD * S
        missed = range(int(first), int(awake - SLACK), PERIOD * S)
        assert len(missed) >= 1 and all(t in late for t in missed), (
            f"sleep {n}: {[t / S for t in missed]} not caught up\n{describe(handled, windows)}"
        )
    lo, hi = min(covered), max(covered)
    twice = sorted(t for t, n in covered.items() if n > 1)
    lost = [t for t in range(lo, hi + 1, PERIOD * S) if t not in covered]
    assert twice == [], f"handled more than once: {twice}\n{describe(handled, windows)}"
    assert lost == [], f"never handled: {lost}\n{describe(handled, windows)}"

    report(
        f"cycles={cycles} occurrences={len(covered)} runs={len(runs)} "
        f"catch-ups={sum(j['trigger'] == 'catch-up' for j in runs)} "
        f"statuses={status_counts(jobs)} "
        f"skips={dict(Counter(j['skip_reason'] for j in handled if j['skip_reason']))} "
        f"seconds={time.monotonic() - began:.0f}"
    )
