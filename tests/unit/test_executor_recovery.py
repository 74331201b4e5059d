"""Crash recovery with real processes: our orphan is stopped, a reused pid is not."""

from __future__ import annotations

import subprocess

import anyio
import pytest

from borgd.app.recovery import recover
from borgd.events import Events
from borgd.execution.runner import process_start_time
from borgd.store import Store

NOW = 1_800_000_000 * 1_000_000


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "db")
    yield s
    s.close()


@pytest.fixture
def sleepers():
    procs: list[subprocess.Popen[bytes]] = []

    def spawn() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        proc.kill()
        proc.wait(5)


def running(store: Store, repo: int, trigger: str, pid: int, start: int, **extra) -> int:
    row = store.jobs.create(
        type=extra.pop("type", "backup"),
        status="running",
        trigger=trigger,
        profile="web",
        repository=f"r{repo}",
        repository_id=repo,
        schedule_id=7 if trigger in ("schedule", "catch-up") else 0,
        created_at=NOW,
        started_at=NOW,
        pid=pid,
        pid_start_time=start,
        options={},
        **extra,
    )
    return int(row.id)


def test_recovery(store, sleepers):
    ours = sleepers()  # "borg" that outlived the daemon
    stranger = sleepers()  # a process that got a recorded pid after a reboot
    scheduled = running(store, 1, "schedule", ours.pid, process_start_time(ours.pid))
    chain = store.jobs.create(
        type="prune",
        status="queued",
        trigger="chain",
        profile="web",
        repository="r1",
        repository_id=1,
        parent_id=scheduled,
        created_at=NOW,
        queued_at=NOW,
        options={},
    ).id
    reused = running(store, 2, "catch-up", stranger.pid, process_start_time(stranger.pid) + 1)
    manual = running(store, 3, "manual", 0, 0)
    check = running(store, 4, "schedule", 0, 0, type="check")
    again = running(store, 5, "recovery", 0, 0)

    requeued = anyio.run(recover, store, Events(), lambda: NOW + 1)

    assert ours.wait(15) != 0  # stopped (SIGINT first: a create writes a checkpoint)
    assert stranger.poll() is None  # same pid, other start time: not ours, left alone
    for job_id in (scheduled, reused, manual, check, again):
        row = store.jobs.get(job_id)
        assert row.status == "interrupted", row
        assert "borgd restarted" in row.message
        assert row.finished_at == NOW + 1
    # A scheduled or catch-up backup runs again, once; manual, check and recovery runs do not.
    assert sorted((j.requeued_from, j.trigger, j.status) for j in requeued) == [
        (scheduled, "recovery", "queued"),
        (reused, "recovery", "queued"),
    ]
    assert all(j.schedule_id == 7 for j in requeued)
    pruned = store.jobs.get(chain)
    assert (pruned.status, pruned.skip_reason) == ("skipped", "parent-failed")
    assert anyio.run(recover, store, Events(), lambda: NOW + 2) == []
