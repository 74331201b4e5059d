"""borgd's command-line flags (borgd(8), OPTIONS), each seen the way a user would see it.

--borg (which program the jobs run), --log-format json (every stderr line is a
JSON object), --keep-jobs-days (old finished jobs and their logs go at start),
--notify-blocked-after (when a held-back backup is notified), --network-settle
(how long remote repositories wait after a resume).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
from dbusmock import MOCK_IFACE

from tests.conftest import BusctlError, borg_binary, make_tree, wait_until
from tests.e2e.jobs_helpers import add_profile, add_repo, init_repo, start, wait_status
from tests.e2e.test_scheduler_runs import S, add_schedule, jobs_of, now_us, prop
from tests.e2e.test_scheduler_system import LOGIND_IFACE

DAY = 86_400 * S


def test_borg_flag_runs_that_program(start_borgd, busctl, tmp_path):
    """--borg names the program every job runs; it wins over $BORGD_BORG, and PATH holds
    no borg at all (an empty folder)."""
    record = tmp_path / "argv.txt"
    wrapper = tmp_path / "bin" / "my-borg"
    wrapper.parent.mkdir()
    wrapper.write_text(
        f'#!/bin/sh\nprintf \'%s\\n\' "$*" >> {record}\nexec {borg_binary()} "$@"\n'
    )
    wrapper.chmod(0o755)
    empty = tmp_path / "empty-path"
    empty.mkdir()
    start_borgd(
        "--borg",
        str(wrapper),
        env={"PATH": str(empty), "BORGD_BORG": str(tmp_path / "nowhere" / "borg")},
    )
    init_repo(busctl, "main", tmp_path / "repo")
    add_profile(busctl, "docs", "main", [make_tree(tmp_path / "src", 5)])
    done = wait_status(busctl, start(busctl, "docs"))
    assert done["status"] == "succeeded", done["message"]
    calls = [line.split() for line in record.read_text().splitlines()]
    assert any("init" in argv for argv in calls), calls
    (create,) = [argv for argv in calls if "create" in argv]
    assert any(done["archive"] in arg for arg in create), (done["archive"], create)


def test_log_format_json_makes_every_stderr_line_a_json_event(start_borgd, busctl, tmp_path):
    daemon = start_borgd("--log-format", "json", "--log-level", "debug")
    init_repo(busctl, "main", tmp_path / "repo")
    add_profile(busctl, "docs", "main", [make_tree(tmp_path / "src", 5)])
    assert wait_status(busctl, start(busctl, "docs"))["status"] == "succeeded"
    assert daemon.stop() == 0
    lines = [line for line in daemon.log().splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"not JSON: {line!r}")
        assert isinstance(record, dict) and record.get("event"), line
        records.append(record)
    events = [r["event"] for r in records]
    # Start, a job's life, the stop: the lines span the daemon's whole run.
    assert "borg.found" in events and "borgd.stopping" in events, events
    assert len(records) >= 5, events


def test_keep_jobs_days_removes_older_finished_jobs_and_their_logs(
    start_borgd, busctl, gdbus, session_env, tmp_path
):
    daemon = start_borgd()
    old = init_repo(busctl, "main", tmp_path / "repo")
    add_profile(busctl, "docs", "main", [make_tree(tmp_path / "src", 5)])
    recent = wait_status(busctl, start(busctl, "docs"))["id"]
    logs = session_env.state_dir / "logs"
    assert (logs / f"{old}.log").exists() and (logs / f"{recent}.log").exists()
    assert daemon.stop() == 0

    # Age the history instead of the clock: the init finished 10 days ago, the backup 2.
    with sqlite3.connect(session_env.state_dir / "borgd.sqlite3") as db:
        for job_id, days in ((old, 10), (recent, 2)):
            db.execute(
                "UPDATE jobs SET finished_at = ? WHERE id = ?", (now_us() - days * DAY, job_id)
            )
    db.close()
    start_borgd("--keep-jobs-days", "5")  # the default, 180, would keep both

    def gone(job_id: int) -> bool:
        try:
            gdbus("GetJob", str(job_id))  # gdbus names the error, busctl does not
        except BusctlError as exc:
            assert exc.name == "org.borgd1.Error.NotFound", exc
            return True
        return False

    wait_until(lambda: gone(old), 10, "the 10-day-old job to be removed")
    assert not (logs / f"{old}.log").exists()
    assert busctl("GetJob", "t", recent)["status"] == "succeeded"
    assert (logs / f"{recent}.log").exists()


def test_notify_blocked_after_sets_when_a_held_back_backup_is_notified(
    start_borgd, busctl, spawn_mock, tmp_path
):
    """A repository on a disk that is not there holds every due backup back; with
    --notify-blocked-after 3 the user hears of it 3 s after the first held-back
    occurrence (the default is an hour)."""
    notifications = spawn_mock("notification_daemon", session=True)
    start_borgd("--notify-blocked-after", "3")
    add_repo(busctl, "usb", tmp_path / "unplugged-disk" / "repo")
    add_profile(busctl, "docs", "usb", [make_tree(tmp_path / "src", 3)])
    sid = add_schedule(busctl, "docs", "*:*:0/2")

    def calls() -> list[tuple[int, list[Any]]]:
        got = notifications.obj.GetMethodCalls("Notify", dbus_interface=MOCK_IFACE)
        return [(int(ts), list(args)) for ts, args in got]

    ((sent_at, args),) = wait_until(calls, 20, "the 'waiting' notification")
    assert str(args[3]) == "Backup of docs is waiting", args
    assert "disk is not connected" in str(args[4]), args
    held = [
        j
        for j in jobs_of(busctl, sid)
        if "repository-unavailable" in (j["blocked_by"], j["skip_reason"])
    ]
    assert held and not any(j["started_at"] for j in jobs_of(busctl, sid)), held
    first_held = min(j["scheduled_for"] for j in held)
    # dbusmock stamps calls in whole seconds (rounded down): not before first + 3 s.
    assert sent_at >= first_held // S + 3, (sent_at, first_held)


def test_network_settle_holds_remote_jobs_that_long_after_resume(
    start_borgd, busctl, session_env, spawn_mock
):
    logind = spawn_mock("logind")
    start_borgd("--network-settle", "3")
    wait_until(lambda: prop(busctl, "SleepMonitor") == "active", 10, "SleepMonitor active")
    # Port 1 refuses: each remote run fails at once, but its start is what counts here.
    add_repo(busctl, "far", "ssh://nobody@127.0.0.1:1/./repo")
    add_profile(busctl, "remote", "far", [session_env.home])
    sid = add_schedule(busctl, "remote", "*:*:0/2")
    wait_until(
        lambda: any(j["started_at"] for j in jobs_of(busctl, sid)), 10, "a run before sleep"
    )

    def emit_sleep(going: bool) -> None:
        logind.obj.EmitSignal(
            LOGIND_IFACE, "PrepareForSleep", "b", [going], dbus_interface=MOCK_IFACE
        )

    emit_sleep(True)
    resumed_at = now_us()  # borgd hears of the resume after this instant
    emit_sleep(False)
    held = wait_until(
        lambda: [j for j in jobs_of(busctl, sid) if j["blocked_by"] == "network-unavailable"],
        10,
        "a remote job held back for the network",
    )
    assert held[0]["status"] == "scheduled"
    after = wait_until(
        lambda: [j for j in jobs_of(busctl, sid) if j["started_at"] > resumed_at],
        20,
        "a remote run after the settle time",
    )
    assert min(j["started_at"] for j in after) >= resumed_at + 3 * S, after
