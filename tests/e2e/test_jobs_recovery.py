"""Crash recovery: kill -9 the daemon mid-backup; the restart interrupts and requeues it."""

from __future__ import annotations

import os
import signal

from tests.conftest import borg_json, wait_until
from tests.e2e.jobs_helpers import (
    add_profile,
    backing_up,
    borg_children,
    borg_env,
    borg_run,
    init_repo,
    job,
    sparse_tree,
    wait_status,
)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z"


def test_kill_9_mid_backup_then_restart_recovers(start_borgd, busctl, session_env, tmp_path):
    daemon = start_borgd()
    repo = tmp_path / "repo"
    init_repo(busctl, "main", repo)
    source = sparse_tree(tmp_path / "data", 12, 200)  # a few seconds of reading
    add_profile(busctl, "nightly", "main", [source])
    schedule = busctl("AddSchedule", "sssa{sv}", "nightly", "backup", "*:*:0/5", 0)

    running = wait_until(
        lambda: busctl("ListJobs", "a{sv}", 1, "status", "s", "running"),
        15,
        "the scheduled backup to run",
        interval=0.05,
    )[0]
    assert running["trigger"] == "schedule", running
    borg = wait_until(lambda: borg_children(daemon.proc.pid), 5, "borg to start")[0]
    wait_until(lambda: backing_up(busctl, running["id"]), 10, "borg to store data", interval=0.05)
    assert job(busctl, running["id"])["status"] == "running"

    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait(5)
    orphan_alive = alive(borg)

    start_borgd()  # READY=1 comes after recovery
    assert not alive(borg), f"borg {borg} survived recovery (alive before: {orphan_alive})"
    before = job(busctl, running["id"])
    assert before["status"] == "interrupted", before
    assert "borgd restarted" in before["message"]
    busctl("RemoveSchedule", "t", schedule)

    requeued = [j for j in busctl("ListJobs", "a{sv}", 0) if j["requeued_from"] == running["id"]]
    assert [(j["type"], j["trigger"]) for j in requeued] == [("backup", "recovery")]
    done = wait_status(busctl, requeued[0]["id"], timeout=60)
    assert done["status"] == "succeeded", done
    wait_until(
        lambda: not busctl("ListJobs", "a{sv}", 1, "status", "as", 2, "queued", "running"),
        60,
        "the lane to drain",
    )

    env = borg_env(session_env)
    archives = borg_json("list", str(repo), env=env)["archives"]
    assert done["archive"] in [a["name"] for a in archives]
    check = borg_run("check", str(repo), env=env)
    assert check.returncode == 0, check.stderr
    assert not os.path.exists(repo / "lock.exclusive")
