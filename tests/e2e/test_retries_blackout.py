"""Retries and blackout windows end to end: borgd as a process on real borg.

Times come from calendar specs with seconds: a one-off start a few seconds
ahead, a window that covers now.
"""

from __future__ import annotations

import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.conftest import borg_binary, make_tree, wait_until
from tests.e2e.jobs_helpers import add_profile, asv, borg_env, init_repo, wait_status

S = 1_000_000


def now_us() -> int:
    return time.time_ns() // 1000


def at_spec(us: int) -> str:
    """A calendar spec for one local instant (whole seconds)."""
    return datetime.fromtimestamp(us / S).strftime("%Y-%m-%d %H:%M:%S")


def next_second(ahead: float) -> int:
    return (now_us() // S + int(ahead) + 1) * S


def jobs_of(busctl: Any, profile: str) -> list[dict[str, Any]]:
    listed = busctl("ListJobs", "a{sv}", 1, "profile", "s", profile)
    return sorted(listed, key=lambda j: j["id"])


def add_schedule(busctl: Any, profile: str, spec: str, **options: Any) -> int:
    return int(busctl("AddSchedule", "sssa{sv}", profile, "backup", spec, *asv(**options)))


def test_a_locked_repository_is_retried_and_the_retry_survives_a_restart(
    start_borgd, busctl, borgctl, session_env, tmp_path: Path
) -> None:
    daemon = start_borgd()
    repo = tmp_path / "repo"
    init_repo(busctl, "main", repo, lock_wait=("u", 1))
    add_profile(busctl, "docs", "main", [make_tree(tmp_path / "src", 12)])
    holder = subprocess.Popen(
        [borg_binary(), "with-lock", str(repo), "sleep", "120"],
        env=borg_env(session_env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: (repo / "lock.exclusive").exists(), 10, "the lock to be taken")
        when = next_second(2)
        sid = add_schedule(
            busctl, "docs", at_spec(when), retries=("u", 2), retry_delay=("t", 8 * S)
        )
        first = wait_until(
            lambda: [j for j in jobs_of(busctl, "docs") if j["status"] == "failed"],
            30,
            "the scheduled backup to fail on the lock",
        )[0]
        assert (first["schedule_id"], first["exit_code"]) == (sid, 73), first
        assert first["message"].startswith("repository is locked by another process"), first
        (retry,) = [j for j in jobs_of(busctl, "docs") if j["trigger"] == "retry"]
        assert (retry["status"], retry["requeued_from"]) == ("scheduled", first["id"]), retry
        assert retry["scheduled_for"] == first["finished_at"] + 8 * S
        assert retry["schedule_id"] == sid
        # The retry is a row: it survives borgd's stop (still locked meanwhile: a retry
        # run before the stop would fail and plan a second one, seen below).
        assert daemon.stop() == 0
    finally:
        holder.terminate()
        holder.wait(10)
    restarted = now_us()
    start_borgd()
    done = wait_status(busctl, retry["id"], 60)
    assert done["status"] == "succeeded", done
    assert done["started_at"] >= max(retry["scheduled_for"], restarted)
    assert done["archive"]
    # One success ends the chain: no other retry was planned.
    assert [j["id"] for j in jobs_of(busctl, "docs") if j["trigger"] == "retry"] == [retry["id"]]

    out = borgctl("show", str(retry["id"]))
    assert out.returncode == 0, out.stderr
    assert f"requeued from {first['id']}" in out.stdout
    assert f"attempts:  job {first['id']} failed → job {retry['id']} (this) retry succeeded" in (
        out.stdout
    ), out.stdout


def test_a_wrong_passphrase_is_never_retried(
    start_borgd, busctl, session_env, tmp_path: Path
) -> None:
    start_borgd()
    init_repo(busctl, "safe", tmp_path / "repo", encryption="repokey-blake2", passphrase="right")
    busctl("UpdateRepository", "sa{sv}", "safe", *asv(passphrase="wrong"))
    add_profile(busctl, "docs", "safe", [make_tree(tmp_path / "src", 4)])
    add_schedule(busctl, "docs", at_spec(next_second(1)), retries=("u", 3), retry_delay=("t", S))
    failed = wait_until(
        lambda: [j for j in jobs_of(busctl, "docs") if j["status"] == "failed"],
        60,
        "the scheduled backup to fail",
    )[0]
    assert failed["message"].startswith("wrong passphrase"), failed
    # A retry is planned in the same step that records the failure: none means none.
    assert [j for j in jobs_of(busctl, "docs") if j["trigger"] == "retry"] == []


def test_a_due_start_waits_out_a_blackout_window_and_a_manual_run_does_not(
    start_borgd, busctl, borgctl, session_env, tmp_path: Path
) -> None:
    start_borgd()
    init_repo(busctl, "main", tmp_path / "repo")
    add_profile(busctl, "docs", "main", [make_tree(tmp_path / "src", 12)])
    begin = now_us() // S * S - S
    end = begin + 15 * S
    out = borgctl("blackout", "set", f"{at_spec(begin)} 15s")
    assert out.returncode == 0, out.stderr
    assert busctl(
        "Get", "ss", "org.borgd1.Manager", "Blackout", interface="org.freedesktop.DBus.Properties"
    ) == [f"{at_spec(begin)} 15s"]
    due = next_second(1)
    assert due < end - 5 * S, "setting up took most of the window"
    sid = add_schedule(busctl, "docs", at_spec(due))

    # The calendar says the run waits for the window's end.
    (entry,) = busctl("Upcoming", "tt", due - S, due + S)
    assert (entry["schedule_id"], entry["deferred_to"], entry["blocked_by"]) == (
        sid,
        end,
        "blackout",
    )
    held = wait_until(
        lambda: [j for j in jobs_of(busctl, "docs") if j["blocked_by"] == "blackout"],
        15,
        "the due start to be held by the window",
    )[0]
    assert (held["status"], held["schedule_id"]) == ("scheduled", sid)

    # A manual run inside the window is not held.
    manual = int(busctl("StartJob", "ssa{sv}", "docs", "backup", 0))
    done = wait_status(busctl, manual, 30)
    assert done["status"] == "succeeded", done
    assert done["started_at"] < end, "the manual run waited for the window"

    ran = wait_status(busctl, held["id"], 40)
    assert ran["status"] == "succeeded", ran
    assert ran["queued_at"] >= end, (ran["queued_at"], end)
    assert ran["trigger"] == "schedule"

    out = borgctl("blackout", "clear")
    assert (out.returncode, out.stdout.strip()) == (0, "no blackout windows"), out
