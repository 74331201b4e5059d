"""The scheduler and the system around it, end to end, with python-dbusmock.

logind (sleep and the delay inhibitor), UPower (on battery), NetworkManager
(metered) on the test's private system bus; a notification daemon on its
session bus; borgd as a process with real borg.
"""

from __future__ import annotations

import signal
import subprocess
import time
from typing import Any

import dbus
from dbusmock import MOCK_IFACE, SpawnedMock

from tests.conftest import wait_until
from tests.e2e.test_scheduler_runs import (
    S,
    add_profile,
    add_schedule,
    finished,
    jobs_of,
    prop,
    setup_profile,
)

LOGIND = "org.freedesktop.login1"
LOGIND_IFACE = "org.freedesktop.login1.Manager"
UPOWER = "org.freedesktop.UPower"
NM = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"
NM_METERED_YES = 1


def log_records(daemon: Any) -> list[tuple[str, str]]:
    """(event, level) of each line of the daemon's log, in order."""
    out = []
    for line in daemon.log().splitlines():
        fields = dict(word.split("=", 1) for word in line.split() if "=" in word and "'" in word)
        if "event" in fields:
            out.append((fields["event"].strip("'"), fields.get("level", "").strip("'")))
    return out


def log_events(daemon: Any) -> list[str]:
    return [event for event, _ in log_records(daemon)]


def borgd_locks(logind: SpawnedMock, mode: str) -> list[tuple[str, ...]]:
    rows = logind.obj.ListInhibitors(dbus_interface=LOGIND_IFACE)
    return [tuple(str(x) for x in r[:4]) for r in rows if r[1] == "borgd" and r[3] == mode]


def borgd_delay_locks(logind: SpawnedMock) -> list[tuple[str, ...]]:
    return borgd_locks(logind, "delay")


# -- logind ----------------------------------------------------------------------


def test_sleep_monitor_from_unavailable_to_active_and_through_a_sleep(
    start_borgd, busctl, session_env, spawn_mock
):
    daemon = start_borgd("--log-level", "debug")
    state = prop(busctl, "SleepMonitor")
    assert state == "unavailable: logind (org.freedesktop.login1) is not on the system bus"
    assert ("sleep_monitor_unavailable", "warning") in log_records(daemon)

    # logind appears later: picked up, the delay lock taken.
    logind = spawn_mock("logind")
    wait_until(lambda: prop(busctl, "SleepMonitor") == "active", 10, "SleepMonitor active")
    wait_until(lambda: borgd_delay_locks(logind), 5, "the delay lock")

    logind.obj.EmitSignal(LOGIND_IFACE, "PrepareForSleep", "b", [True], dbus_interface=MOCK_IFACE)
    wait_until(lambda: not borgd_delay_locks(logind), 5, "the delay lock released")
    events = log_events(daemon)
    persisted = events.index("scheduler.persisted")
    released = events.index("sleep_delay_lock_released")
    assert events.index("system_going_to_sleep") < persisted < released

    before = len(log_events(daemon))
    logind.obj.EmitSignal(LOGIND_IFACE, "PrepareForSleep", "b", [False], dbus_interface=MOCK_IFACE)
    wait_until(lambda: borgd_delay_locks(logind), 5, "a new delay lock")
    wait_until(lambda: "scheduler.rearmed" in log_events(daemon)[before:], 5, "re-armed")
    after = log_events(daemon)[before:]
    assert after.index("sleep_delay_lock_taken") < after.index("scheduler.rearmed")
    # The re-arm wakes the timer loop at once (a poke), which plans and sleeps again.
    wait_until(
        lambda: (
            "scheduler.woke" in log_events(daemon)[before + after.index("scheduler.rearmed") :]
        ),
        5,
        "the scheduler loop to run after resume",
    )
    assert prop(busctl, "SleepMonitor") == "active"

    # A running backup holds a block inhibitor (inhibit_sleep is on by default).
    big = session_env.home / "big"
    big.mkdir()
    for i in range(200):  # sparse: instant to make, slow enough for borg to read
        with open(big / f"sparse-{i}.img", "wb") as f:
            f.truncate(20 * 1024**2)
    setup_profile(busctl, session_env, "docs")
    add_profile(busctl, "big", "main", str(big))
    job_id = busctl("StartJob", "ssa{sv}", "big", "backup", 0)
    (lock,) = wait_until(lambda: borgd_locks(logind, "block"), 15, "the block lock")
    assert lock[:2] == ("sleep", "borgd") and "big" in lock[2]
    busctl("CancelJob", "t", job_id)
    wait_until(lambda: finished(busctl("GetJob", "t", job_id)), 30, "the backup to end")
    wait_until(lambda: not borgd_locks(logind, "block"), 5, "the block lock released")


# -- UPower and NetworkManager ------------------------------------------------------


def test_on_battery_holds_back_then_runs_when_ac_returns(
    start_borgd, busctl, session_env, spawn_mock
):
    upower = spawn_mock("upower", {"OnBattery": True})
    start_borgd()
    wait_until(lambda: prop(busctl, "OnBattery") is True, 10, "OnBattery")
    setup_profile(busctl, session_env)
    sid = add_schedule(busctl, "docs", "*:*:0/2", skip_on_battery=True)

    held = wait_until(
        lambda: [j for j in jobs_of(busctl, sid) if j["blocked_by"] == "on-battery"],
        6,
        "the due job to be held back",
    )[0]
    assert held["status"] == "scheduled"
    # Overtaken by its next occurrence: skipped with the condition as the reason.
    overtaken = wait_until(
        lambda: [j for j in jobs_of(busctl, sid) if j["id"] == held["id"] and finished(j)],
        6,
        "the held-back job to be overtaken",
    )[0]
    assert (overtaken["status"], overtaken["skip_reason"]) == ("skipped", "on-battery")
    wait_until(
        lambda: [j for j in jobs_of(busctl, sid) if j["blocked_by"] == "on-battery"],
        4,
        "the next occurrence held back",
    )

    upower.obj.Set(UPOWER, "OnBattery", False, dbus_interface=dbus.PROPERTIES_IFACE)
    ac_at = time.time_ns() // 1000
    ran = wait_until(
        lambda: [j for j in jobs_of(busctl, sid) if j["started_at"]], 10, "a run on AC"
    )[0]
    # Before the schedule's next occurrence (2 s): the AC change itself released the job.
    assert ran["started_at"] - ac_at < 2 * S, ran
    assert prop(busctl, "OnBattery") is False
    done = wait_until(
        lambda: [j for j in jobs_of(busctl, sid) if j["id"] == ran["id"] and finished(j)],
        30,
        "the run to finish",
    )[0]
    assert (done["status"], done["trigger"]) == ("succeeded", "schedule"), done["message"]


def test_metered_network_holds_back_a_remote_repository_only(
    start_borgd, busctl, session_env, spawn_mock
):
    spawn_mock("networkmanager")
    # The template has no Metered; its main object is /org/freedesktop, not the manager.
    system = dbus.bus.BusConnection(session_env.vars["DBUS_SYSTEM_BUS_ADDRESS"])
    manager = system.get_object(NM, NM_PATH)
    manager.AddProperty(NM, "Metered", dbus.UInt32(NM_METERED_YES), dbus_interface=MOCK_IFACE)
    start_borgd()
    wait_until(lambda: prop(busctl, "Metered") is True, 10, "Metered")
    setup_profile(busctl, session_env, "docs")
    busctl("AddRepository", "ssa{sv}", "far", "ssh://nobody@127.0.0.1:1/./repo", 0)
    add_profile(busctl, "remote", "far", str(session_env.home))
    local = add_schedule(busctl, "docs", "*:*:0/2", skip_on_metered=True)
    remote = add_schedule(busctl, "remote", "*:*:0/2", skip_on_metered=True)

    wait_until(
        lambda: any(j["status"] == "succeeded" for j in jobs_of(busctl, local)),
        10,
        "the local backup to run",
    )
    remote_jobs = jobs_of(busctl, remote)
    assert not any(j["started_at"] for j in remote_jobs), remote_jobs
    assert {j["blocked_by"] or j["skip_reason"] for j in remote_jobs} == {"metered-network"}


# -- notifications ------------------------------------------------------------------


def test_one_notification_per_failure_episode_and_one_when_overdue(
    start_borgd, busctl, session_env, spawn_mock
):
    notifications = spawn_mock("notification_daemon", session=True)
    monitor = subprocess.Popen(
        ["gdbus", "monitor", "--session", "--dest", "org.borgd1"],
        env=session_env.vars,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        start_borgd()
        broken = session_env.home / "not-a-repository"
        broken.mkdir()
        busctl("AddRepository", "ssa{sv}", "broken", str(broken), 0)
        add_profile(busctl, "docs", "broken", str(session_env.home), max_age=4 * S)
        sid = add_schedule(busctl, "docs", "*:*:0/2")

        def calls() -> list[list[Any]]:
            got = notifications.obj.GetMethodCalls("Notify", dbus_interface=MOCK_IFACE)
            return [list(args) for _ts, args in got]

        wait_until(
            lambda: len([j for j in jobs_of(busctl, sid) if j["status"] == "failed"]) >= 3,
            20,
            "three failed runs",
        )
        wait_until(lambda: prop_overdue(busctl), 10, "the profile to become overdue")
        wait_until(lambda: len(calls()) >= 2, 5, "the notifications")

        def failures() -> int:
            return len([j for j in jobs_of(busctl, sid) if j["status"] == "failed"])

        seen = failures()
        wait_until(lambda: failures() >= seen + 2, 20, "two more failed runs")
        # More failures, no more notifications (one per episode).
        summaries = sorted(str(c[3]) for c in calls())
        assert summaries == ["Backup of docs failed", "Backups of docs are overdue"], summaries
    finally:
        monitor.send_signal(signal.SIGTERM)
        out, _ = monitor.communicate(timeout=10)
    signals = [line for line in out.splitlines() if ".ProfileChanged" in line]
    assert len(signals) == 1, out
    assert "'overdue': <true>" in signals[0]


def prop_overdue(busctl: Any) -> bool:
    (profile,) = busctl("ListProfiles")
    return bool(profile["overdue"])
