"""systemd/borgd.service under a real `systemd --user`: enable, D-Bus activation, status,
watchdog and Restart=, each seen the way a user sees them (systemctl, busctl).

The drop-in of tests/systemd/conftest.py shortens WatchdogSec to 4 s and RestartSec
to 1 s; everything else is the shipped unit.
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.conftest import wait_until
from tests.systemd.manager import UNIT, UserManager

# The first test of this folder also pays for the package fixture: a venv with borgd
# and borg (~15 s with pip's wheel cache; minutes if pip must build borg).
pytestmark = pytest.mark.timeout(600)

# After a crash: RestartSec (1 s, drop-in) plus a start (~0.5 s); the watchdog adds its
# 4 s. 30 s leaves room for a loaded two-core machine without hiding a missing restart.
RESTART_WAIT = 30.0


def answers_on_bus(manager: UserManager) -> bool:
    return isinstance(manager.busctl("ListJobs", "a{sv}", 0), list)


def wait_restarted(manager: UserManager, old_pid: int, restarts: int) -> dict[str, str]:
    return wait_until(
        lambda: (
            (s := manager.show("MainPID", "NRestarts", "ActiveState", "SubState"))
            and (s["ActiveState"], s["SubState"]) == ("active", "running")
            and int(s["NRestarts"]) == restarts + 1
            and int(s["MainPID"]) not in (0, old_pid)
            and s
        ),
        RESTART_WAIT,
        f"systemd to restart {UNIT}",
    )


def test_enable_now_starts_borgd_and_installs_the_bus_alias(borgd_unit: UserManager) -> None:
    m = borgd_unit
    m.systemctl("disable", "--now", UNIT)
    assert m.systemctl("is-enabled", UNIT, check=False).stdout.strip() == "disabled"

    m.systemctl("enable", "--now", UNIT)

    state = m.show("ActiveState", "SubState", "UnitFileState", "MainPID")
    assert (state["ActiveState"], state["SubState"]) == ("active", "running"), m.diagnostics()
    assert m.systemctl("is-enabled", UNIT).stdout.strip() == "enabled"
    units = m.home / ".config" / "systemd" / "user"
    assert (units / "default.target.wants" / UNIT).resolve() == units / UNIT
    # Alias= made the name the activation file's SystemdService= points to.
    alias = units / "dbus-org.borgd1.service"
    assert alias.is_symlink() and alias.resolve() == units / UNIT
    assert m.show("Id", unit="dbus-org.borgd1.service")["Id"] == UNIT
    # The daemon systemd runs is the one that owns org.borgd1 and answers.
    assert m.bus_name_owner_pid() == int(state["MainPID"])
    assert answers_on_bus(m)


def test_a_bus_call_starts_the_stopped_unit(borgd_unit: UserManager) -> None:
    m = borgd_unit
    m.start_borgd()
    m.systemctl("stop", UNIT)
    assert m.show("ActiveState")["ActiveState"] == "inactive"
    unowned = m.run("busctl", "--user", "status", "org.borgd1", check=False)
    assert unowned.returncode != 0, unowned.stdout

    jobs = m.busctl("ListJobs", "a{sv}", 0)

    assert isinstance(jobs, list)
    # The reply can come before systemd has read READY=1: wait for the state, briefly
    # (a READY=1 is milliseconds behind the name; 10 s is for a loaded machine).
    state = m.wait_state("active", 10, "activated by a bus call")
    assert state["SubState"] == "running"
    # Exec=/bin/false in the activation file: only SystemdService= can have started
    # it, and the name's owner is the unit's main process, not a second copy.
    assert m.bus_name_owner_pid() == int(state["MainPID"])


def test_status_shows_what_borgd_reports(borgd_unit: UserManager) -> None:
    m = borgd_unit
    m.start_borgd()

    out = m.systemctl("status", UNIT).stdout

    assert "Active: active (running)" in out, out
    assert 'Status: "serving org.borgd1"' in out, out
    assert m.show("StatusText")["StatusText"] == "serving org.borgd1"


def test_watchdog_kills_and_restarts_a_hung_daemon(borgd_unit: UserManager) -> None:
    m = borgd_unit
    hung = m.start_borgd()
    restarts = int(m.show("NRestarts")["NRestarts"])
    stops = len(m.results())

    m.systemctl("kill", "--kill-whom=main", "--signal=SIGSTOP", UNIT)

    state = wait_restarted(m, hung, restarts)
    assert m.results()[stops:] == ["watchdog killed ABRT"], m.diagnostics()
    assert not os.path.exists(f"/proc/{hung}"), "the hung daemon is still there"
    assert m.bus_name_owner_pid() == int(state["MainPID"])
    assert answers_on_bus(m)


def test_restart_after_kill_9(borgd_unit: UserManager) -> None:
    m = borgd_unit
    killed = m.start_borgd()
    restarts = int(m.show("NRestarts")["NRestarts"])
    stops = len(m.results())

    os.kill(killed, signal.SIGKILL)

    state = wait_restarted(m, killed, restarts)
    assert m.results()[stops:] == ["signal killed KILL"], m.diagnostics()
    assert m.bus_name_owner_pid() == int(state["MainPID"])
    assert answers_on_bus(m)
