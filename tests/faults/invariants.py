"""What must hold after any fault: borgd serves, nothing was lost or run twice, and the
schedules go on.  Checked only through the public contract (busctl, borg, /proc)."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.conftest import wait_until
from tests.e2e.test_scheduler_runs import prop
from tests.reliability.helpers import (
    FINISHED,
    all_jobs,
    archive_problems,
    intents_per_schedule,
    internal_errors,
    overlapping_runs,
)

SCHEDULED = ("schedule", "catch-up", "recovery")
SHOWN = ("id", "type", "status", "trigger", "archive", "requeued_from", "message")


def store_health(busctl: Any) -> str:
    return prop(busctl, "StoreHealth")


def lock_store(store: Path) -> sqlite3.Connection:
    """Another process's write transaction on the store (as a `sqlite3` shell would hold)."""
    conn = sqlite3.connect(store, timeout=10, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("CREATE TABLE IF NOT EXISTS fault_probe (x)")
    return conn


def scheduled_runs(busctl: Any, schedule_id: int) -> list[dict[str, Any]]:
    """Runs of one schedule that finished with a backup made (succeeded or warning)."""
    return [
        j
        for j in all_jobs(busctl)
        if j["schedule_id"] == schedule_id
        and j["trigger"] in SCHEDULED
        and j["status"] in ("succeeded", "warning")
    ]


def wait_runs(busctl: Any, schedule_id: int, more_than: int, timeout: float) -> int:
    """Until the schedule has made more than ``more_than`` backups; returns how many."""
    runs = wait_until(
        lambda: (n := len(scheduled_runs(busctl, schedule_id))) > more_than and n,
        timeout,
        f"schedule {schedule_id} to make more than {more_than} backups",
    )
    return int(runs)


def sound(
    busctl: Any,
    daemon: Any,
    repos: dict[str, Path],
    env: dict[str, str],
    *,
    settle: float = 60,
) -> list[dict[str, Any]]:
    """borgd still serves; every job settles (schedules paused meanwhile, resumed after);
    no two runs overlap on a repository; no occurrence ran twice; each schedule has one
    intent; every archive belongs to exactly one job and every successful backup's
    archive is there; no internal error."""
    assert daemon.proc.poll() is None, daemon.log()[-4000:]
    # Hold the schedules while checking: a run that starts and ends between the job
    # list and `borg list` would look like an archive made by no job.
    busctl("Pause", "t", 0)
    deadline = time.monotonic() + settle
    while True:
        jobs = all_jobs(busctl)
        active = [j for j in jobs if j["status"] in ("queued", "running")]
        if not active:
            break
        assert time.monotonic() < deadline, f"jobs still active: {active}"
        time.sleep(0.2)
    assert all(j["status"] in FINISHED or j["status"] == "scheduled" for j in jobs)
    assert not overlapping_runs(jobs)
    ran = Counter(
        (j["schedule_id"], j["scheduled_for"])
        for j in jobs
        if j["trigger"] in ("schedule", "catch-up") and j["started_at"]
    )
    assert not [k for k, n in ran.items() if n > 1], ran
    assert all(n == 1 for n in intents_per_schedule(busctl).values())
    for name, path in repos.items():
        problems = archive_problems(jobs, name, path, env)
        assert not problems, (problems, [{k: j[k] for k in SHOWN} for j in jobs])
    assert not internal_errors(daemon.log())
    busctl("Resume")
    return jobs
