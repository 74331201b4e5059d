"""The first slice end to end: borgd as a process, driven by busctl, on real borg."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import BusctlError, borg_json, make_tree, wait_until
from tests.e2e.jobs_helpers import backing_up


def job(busctl, job_id: int) -> dict:
    return busctl("GetJob", "t", job_id)


def wait_status(busctl, job_id: int, timeout: float = 60) -> dict:
    return wait_until(
        lambda: (
            (j := job(busctl, job_id))["status"]
            in ("succeeded", "warning", "failed", "cancelled", "interrupted", "skipped")
            and j
        ),
        timeout,
        f"job {job_id} to finish",
    )


def init_repo(busctl, name: str, repo: Path) -> int:
    busctl(
        "AddRepository",
        "ssa{sv}",
        name,
        str(repo),
        2,
        "init",
        "b",
        "true",
        "encryption",
        "s",
        "none",
    )
    init_jobs = busctl("ListJobs", "a{sv}", 1, "type", "s", "init")
    assert len(init_jobs) == 1
    done = wait_status(busctl, init_jobs[0]["id"])
    assert done["status"] == "succeeded", done
    return init_jobs[0]["id"]


def test_backup_through_busctl(start_borgd, busctl, session_env, tmp_path):
    start_borgd()
    source = make_tree(tmp_path / "data", 137)
    repo = tmp_path / "repo"
    init_repo(busctl, "main", repo)
    busctl("AddProfile", "ssasa{sv}", "docs", "main", 1, str(source), 0)

    job_id = busctl("StartJob", "ssa{sv}", "docs", "backup", 0)
    done = wait_status(busctl, job_id)
    assert done["status"] == "succeeded", done
    assert done["exit_code"] == 0
    assert done["trigger"] == "manual"
    assert done["started_at"] >= done["queued_at"] >= done["created_at"] > 0
    assert done["finished_at"] >= done["started_at"]

    archives = borg_json("list", str(repo), env=session_env.vars)["archives"]
    assert [a["name"] for a in archives] == [done["archive"]]
    listed = busctl("ListJobs", "a{sv}", 0)
    backup = next(j for j in listed if j["id"] == job_id)
    assert backup["nfiles"] == 137
    assert backup["original_size"] > 137 * 100
    assert backup["progress"] == 1.0
    # Newest first: the backup before the init job.
    assert [j["type"] for j in listed] == ["backup", "init"]
    log_lines = busctl("GetJobLog", "tu", job_id, 0)
    assert any("archive" in line for line in log_lines)


def test_second_instance_exits_1_and_first_keeps_serving(start_borgd, busctl):
    first = start_borgd()
    started = time.monotonic()
    second = start_borgd(ready=False)
    # It waits for nothing (the state directory's lock is taken: exit); 15 s covers a
    # loaded machine's Python start-up, and is far below "hangs until killed".
    rc = second.proc.wait(15)
    assert rc == 1
    assert time.monotonic() - started < 15
    out = second.log().strip().splitlines()
    assert len(out) == 1 and "another borgd" in out[0], out
    assert busctl("ListRepositories") == []
    assert first.proc.poll() is None


def test_bad_input_is_refused_and_changes_nothing(start_borgd, busctl, gdbus, tmp_path):
    start_borgd()
    init_repo(busctl, "main", tmp_path / "repo")
    before = (busctl("ListRepositories"), busctl("ListProfiles"), busctl("ListJobs", "a{sv}", 0))

    def refused(name: str, member: str, *args: str) -> str:
        with pytest.raises(BusctlError) as err:
            gdbus(member, *args)
        assert err.value.name == f"org.borgd1.Error.{name}", err.value
        return err.value.text

    assert "nosuch" in refused("NotFound", "StartJob", "nosuch", "backup", "{}")
    text = refused("InvalidArgument", "AddProfile", "docs", "main", "['relative/path']", "{}")
    assert "absolute" in text
    assert "name" in refused("InvalidArgument", "AddRepository", "", str(tmp_path / "r2"), "{}")
    text = refused(
        "InvalidArgument", "AddProfile", "docs", "main", "['/tmp']", "{'colour': <'red'>}"
    )
    assert "colour" in text and "compression" in text
    refused("InvalidArgument", "AddProfile", "docs", "main", "['/tmp']", "{'keep_daily': <'7'>}")
    refused("AlreadyExists", "AddRepository", "main", str(tmp_path / "other"), "{}")
    refused("NotFound", "CancelJob", "uint64 999")
    refused("InvalidArgument", "StartJob", "docs", "explode", "{}")
    # A wrong signature is a typed error too, not a generic UnknownMethod.
    assert "ssa{sv}" in refused("InvalidArgument", "StartJob", "docs", "backup")

    after = (busctl("ListRepositories"), busctl("ListProfiles"), busctl("ListJobs", "a{sv}", 0))
    assert after == before


def test_sigterm_during_backup_interrupts_with_checkpoint(
    start_borgd, busctl, session_env, tmp_path
):
    daemon = start_borgd()
    source = tmp_path / "big"
    source.mkdir()
    # 300 sparse files of 200 MB: instant to make, far longer than this test for borg to read.
    for i in range(300):
        with open(source / f"sparse-{i}.img", "wb") as f:
            f.truncate(200 * 1024**2)
    make_tree(source / "small", 20)
    repo = tmp_path / "repo"
    init_repo(busctl, "main", repo)
    busctl("AddProfile", "ssasa{sv}", "big", "main", 1, str(source), 0)
    job_id = busctl("StartJob", "ssa{sv}", "big", "backup", 0)
    wait_until(lambda: job(busctl, job_id)["status"] == "running", 20, "the backup to run")
    # Borg has stored some chunks (its log says so), so a checkpoint has content.
    wait_until(lambda: backing_up(busctl, job_id), 30, "borg to store data", interval=0.05)

    daemon.notify.drain()
    stopped = time.monotonic()
    try:
        rc = daemon.stop(signal.SIGTERM, timeout=10)
    except Exception:
        print(daemon.log())
        raise
    assert rc == 0, daemon.log()
    # borg gets SIGINT and borgd escalates after 10 s (borgd/execution/runner.py): within
    # that, the stop did not need the escalation.
    assert time.monotonic() - stopped < 10
    assert daemon.notify.wait_for("STOPPING=1", 1)

    listing = borg_json("list", "--consider-checkpoints", str(repo), env=session_env.vars)
    names = [a["name"] for a in listing["archives"]]
    assert any(n.endswith(".checkpoint") for n in names), names

    start_borgd()
    after = job(busctl, job_id)
    assert after["status"] == "interrupted"
    assert after["archive"] in names and after["archive"].endswith(".checkpoint"), after
    assert "borgd stopped" in after["message"]
    assert os.stat(session_env.state_dir / "borgd.sqlite3").st_mode & 0o777 == 0o600


def test_scheduled_backup_stopped_cleanly_runs_again_after_restart(start_borgd, busctl, tmp_path):
    daemon = start_borgd()
    source = tmp_path / "big"
    source.mkdir()
    for i in range(300):
        with open(source / f"sparse-{i}.img", "wb") as f:
            f.truncate(200 * 1024**2)
    init_repo(busctl, "main", tmp_path / "repo")
    busctl("AddProfile", "ssasa{sv}", "big", "main", 1, str(source), 0)
    busctl("AddSchedule", "sssa{sv}", "big", "backup", "*:*:0/2", 0)
    running = wait_until(
        lambda: busctl("ListJobs", "a{sv}", 2, "status", "s", "running", "type", "s", "backup"),
        20,
        "the scheduled backup to run",
    )[0]
    assert running["trigger"] == "schedule"
    assert daemon.stop() == 0

    start_borgd()
    assert job(busctl, running["id"])["status"] == "interrupted"
    again = wait_until(
        lambda: [j for j in busctl("ListJobs", "a{sv}", 0) if j["requeued_from"] == running["id"]],
        10,
        "a recovery job",
    )
    assert len(again) == 1 and again[0]["trigger"] == "recovery"
    assert again[0]["schedule_id"] == running["schedule_id"]
