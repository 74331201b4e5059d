"""The buses under borgd: logind and the system bus go away and come back; the session
bus goes away (borgd exits 1, as `Restart=on-failure` wants) and a new one comes.

borgd follows logind again (SleepMonitor, the delay lock, PrepareForSleep) without a
restart; after the session bus, the borgd that starts on the new one loses no job: a
scheduled backup that the lost bus interrupted runs again once, and the schedule goes on.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from dbusmock import MOCK_IFACE

from tests.conftest import bus_config, make_tree, start_dbus_daemon, wait_until
from tests.e2e.jobs_helpers import asv, marked_tree, wait_running
from tests.e2e.test_scheduler_runs import prop
from tests.faults.invariants import sound, wait_runs
from tests.reliability.helpers import add_profile, all_jobs, borg_env, init_repo

LOGIND_IFACE = "org.freedesktop.login1.Manager"


def delay_locks(logind) -> list:
    rows = logind.obj.ListInhibitors(dbus_interface=LOGIND_IFACE)
    return [r for r in rows if r[1] == "borgd" and r[3] == "delay"]


class SystemBus:
    """A system bus at a fixed socket path, so that it can go away and come back."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir()
        self.socket = folder / "system_bus_socket"
        self.address = f"unix:path={self.socket}"
        self.config = folder / "system.conf"
        self.config.write_text(bus_config(self.address, "system"))
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.socket.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            ["dbus-daemon", f"--config-file={self.config}", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip(), "the system bus did not start"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def system_bus(session_env, tmp_path) -> Iterator[SystemBus]:
    bus = SystemBus(tmp_path / "sysbus")
    bus.start()
    session_env.vars["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
    yield bus
    bus.stop()


def test_logind_and_the_system_bus_go_away_and_come_back(
    system_bus, start_borgd, busctl, spawn_mock, report
):
    logind = spawn_mock("logind")
    for _ in range(3):  # READY=1 means ready: the delay lock is taken before it
        daemon = start_borgd()
        assert prop(busctl, "SleepMonitor") == "active"
        assert delay_locks(logind)
        assert daemon.stop() == 0
        wait_until(lambda: not delay_locks(logind), 5, "the delay lock released at stop")
    daemon = start_borgd()

    logind.terminate()
    wait_until(
        lambda: prop(busctl, "SleepMonitor").startswith("unavailable: logind"),
        10,
        "SleepMonitor to say logind left",
    )
    logind = spawn_mock("logind")
    wait_until(lambda: prop(busctl, "SleepMonitor") == "active", 15, "SleepMonitor active")
    wait_until(lambda: delay_locks(logind), 5, "a new delay lock")
    # It follows the new logind: a sleep releases the lock, the resume takes it again.
    logind.obj.EmitSignal(LOGIND_IFACE, "PrepareForSleep", "b", [True], dbus_interface=MOCK_IFACE)
    wait_until(lambda: not delay_locks(logind), 5, "the lock released before sleep")
    logind.obj.EmitSignal(LOGIND_IFACE, "PrepareForSleep", "b", [False], dbus_interface=MOCK_IFACE)
    wait_until(lambda: delay_locks(logind), 5, "the lock taken after resume")

    # The system bus itself goes and comes back (at the same address).
    system_bus.stop()
    wait_until(
        lambda: prop(busctl, "SleepMonitor").startswith("unavailable:"),
        10,
        "SleepMonitor to say the system bus is gone",
    )
    system_bus.start()
    logind = spawn_mock("logind")
    # Reconnection backs off from 1 s (doubling); the bus is back within a few seconds.
    wait_until(lambda: prop(busctl, "SleepMonitor") == "active", 30, "SleepMonitor active")
    wait_until(lambda: delay_locks(logind), 5, "the delay lock on the new bus")
    assert daemon.proc.poll() is None
    report("logind and the system bus went and came back; SleepMonitor followed")


def test_session_bus_goes_away_and_a_new_one_comes(
    buses, start_borgd, busctl, session_env, tmp_path, report
):
    daemon = start_borgd()
    repo = tmp_path / "repo"
    init_repo(busctl, "r", repo)
    add_profile(busctl, "big", "r", [marked_tree(tmp_path / "data", 8, 64)])
    add_profile(busctl, "small", "r", [make_tree(tmp_path / "src", 10)])
    schedule = busctl("AddSchedule", "sssa{sv}", "big", "backup", "*:*:0/2", 0)
    running = wait_until(
        lambda: [j for j in all_jobs(busctl, status="running") if j["schedule_id"] == schedule],
        30,
        "a scheduled backup to run",
    )
    wait_running(busctl, running[0]["id"])
    busctl("UpdateSchedule", "ta{sv}", schedule, *asv(enabled=False))

    buses.procs[0].terminate()  # the session bus goes away
    assert daemon.proc.wait(30) == 1  # Restart=on-failure brings it back on the new bus
    proc, address = start_dbus_daemon(tmp_path, "session-2")
    try:
        session_env.vars["DBUS_SESSION_BUS_ADDRESS"] = address
        daemon = start_borgd()
        interrupted = next(j for j in all_jobs(busctl) if j["id"] == running[0]["id"])
        assert interrupted["status"] == "interrupted", interrupted
        again = wait_until(
            lambda: [j for j in all_jobs(busctl) if j["requeued_from"] == interrupted["id"]],
            10,
            "the interrupted scheduled backup to be queued again",
        )
        assert [j["trigger"] for j in again] == ["recovery"]
        busctl("UpdateSchedule", "ta{sv}", schedule, *asv(enabled=True))
        wait_runs(busctl, schedule, 0, 90)
        jobs = sound(busctl, daemon, {"r": repo}, borg_env(session_env), settle=120)
        recovered = [j for j in jobs if j["requeued_from"] == interrupted["id"]]
        assert [j["status"] for j in recovered] == ["succeeded"], recovered
        report(f"session bus restarted: job {interrupted['id']} interrupted, run again once")
        assert daemon.stop() == 0
    finally:
        proc.terminate()
        proc.wait(10)
