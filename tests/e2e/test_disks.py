"""Removable disks through UDisks2, end to end: borgd as a process, real borg, real mounts.

UDisks2 is a python-dbusmock template (``udisks2_template.py``) on the test's
private system bus whose ``Mount``/``Unmount`` bind-mount a folder inside a
private mount namespace, where borgd runs too.  A "disk" holds a borg
repository; before it is mounted the repository's folder does not exist.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dbus
import pytest
from dbusmock import MOCK_IFACE, SpawnedMock

from tests.conftest import make_tree, wait_until
from tests.e2e.test_scheduler_runs import (
    S,
    add_profile,
    add_schedule,
    calendar_seconds,
    finished,
    init_repo,
    jobs_of,
    prop,
    variant_args,
)
from tests.e2e.test_scheduler_system import log_events
from tests.mountns import MountNamespace, private_mounts

TEMPLATE = str(Path(__file__).with_name("udisks2_template.py"))
UDISKS = "org.freedesktop.UDisks2"
FS_IFACE = "org.freedesktop.UDisks2.Filesystem"
UUID = "4f2a9c1e-7d3b-4e8a-9f10-2b6c5d8e1a37"
LABEL = "BackupStick"


@dataclass
class Stick:
    """A disk for the mock: its content (a borg repository inside) and its mount point."""

    name: str
    uuid: str
    label: str
    content: Path
    mount_point: Path

    @property
    def repo_url(self) -> str:
        return str(self.mount_point / "repo")

    def plug(self, udisks: SpawnedMock) -> None:
        udisks.obj.AddDisk(
            self.name,
            self.uuid,
            self.label,
            str(self.content),
            str(self.mount_point),
            dbus_interface=MOCK_IFACE,
        )

    def pull(self, udisks: SpawnedMock) -> None:
        udisks.obj.RemoveDisk(self.name, dbus_interface=MOCK_IFACE)


def make_stick(env: Any, name: str = "sdb", uuid: str = UUID, label: str = LABEL) -> Stick:
    base = env.home.parent
    content = base / f"{name}-content"
    content.mkdir()
    mount_point = base / "media" / label
    mount_point.mkdir(parents=True)
    # Made where it is used (borg refuses a repository that moved), then put on the disk.
    init_repo(mount_point / "repo", env.vars)
    shutil.move(mount_point / "repo", content / "repo")
    return Stick(name, uuid, label, content, mount_point)


@pytest.fixture
def ns() -> Iterator[MountNamespace]:
    with private_mounts() as namespace:
        try:
            yield namespace
        finally:
            # Whatever a failed test left mounted goes (the namespace goes with its holder).
            table = namespace.run("cat", "/proc/self/mountinfo").stdout.splitlines()
            for line in table:
                point = line.split()[4]
                if "/media/" in point:
                    namespace.run("umount", "-l", point)


def spawn_udisks(spawn_mock: Any, ns: MountNamespace) -> SpawnedMock:
    return spawn_mock(TEMPLATE, {"enter": dbus.Array(list(ns.enter), signature="s")})


def mounted(ns: MountNamespace, path: Path) -> bool:
    return ns.run("mountpoint", "-q", str(path)).returncode == 0


def times(udisks: SpawnedMock, method: str) -> list[int]:
    rows = udisks.obj.Times(dbus_interface=MOCK_IFACE)
    return [int(t) for m, _path, t in rows if str(m) == method]


def add_repo(busctl: Any, name: str, url: str, **options: Any) -> None:
    busctl("AddRepository", "ssa{sv}", name, url, *variant_args(options))


def repository(busctl: Any, name: str) -> dict[str, Any]:
    return next(r for r in busctl("ListRepositories") if r["name"] == name)


def one_off(seconds_from_now: int) -> str:
    """A calendar spec with a single occurrence, a few seconds from now (UTC)."""
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds_from_now)
    return calendar_seconds(first, 1)


# -- the monitor -----------------------------------------------------------------------


def test_disk_monitor_says_when_udisks2_is_away_and_add_repository_finds_the_disk(
    start_borgd, busctl, borgctl, session_env, spawn_mock, ns
):
    daemon = start_borgd(wrap=ns.enter)
    assert prop(busctl, "DiskMonitor") == (
        "unavailable: UDisks2 (org.freedesktop.UDisks2) is not on the system bus"
    )
    assert "disk_monitor_unavailable" in log_events(daemon)

    udisks = spawn_udisks(spawn_mock, ns)
    wait_until(lambda: prop(busctl, "DiskMonitor") == "active", 10, "DiskMonitor active")

    # A disk that a desktop automounter mounted: a repository added on it gets its UUID.
    stick = make_stick(session_env)
    stick.plug(udisks)
    system = dbus.bus.BusConnection(session_env.vars["DBUS_SYSTEM_BUS_ADDRESS"])
    block = system.get_object(UDISKS, "/org/freedesktop/UDisks2/block_devices/sdb1")
    block.Mount(dbus.Dictionary({}, signature="sv"), dbus_interface=FS_IFACE)
    assert mounted(ns, stick.mount_point)
    wait_until(lambda: _adds_device(busctl, stick), 10, "AddRepository to fill in the UUID")
    # Not on a removable disk: no device; borgctl sets the options by hand.
    local = session_env.home.parent / "local-repo"
    add_repo(busctl, "local", str(local))
    assert repository(busctl, "local")["device"] == ""
    done = borgctl(
        "repo", "edit", "local", "--device", "1234-ABCD", "--automount", "--eject-after"
    )
    assert done.returncode == 0, done.stderr
    got = repository(busctl, "local")
    assert (got["device"], got["automount"], got["eject_after"]) == ("1234-ABCD", True, True)
    assert "disk monitor:  active\n" in borgctl("status").stdout

    # UDisks2 leaves the bus: said at once.
    udisks.terminate()
    wait_until(
        lambda: prop(busctl, "DiskMonitor").startswith("unavailable: UDisks2"),
        10,
        "DiskMonitor unavailable again",
    )
    assert daemon.proc.poll() is None


def _adds_device(busctl: Any, stick: Stick) -> bool:
    """AddRepository on the mounted disk; True once borgd knew the disk (else undo, retry)."""
    add_repo(busctl, "stick", stick.repo_url)
    if repository(busctl, "stick")["device"] == stick.uuid:
        return True
    busctl("RemoveRepository", "s", "stick")
    return False


# -- arrival ---------------------------------------------------------------------------


def test_arrival_mounts_starts_the_held_job_and_runs_on_connect_once_per_appearance(
    start_borgd, busctl, session_env, spawn_mock, ns
):
    udisks = spawn_udisks(spawn_mock, ns)
    daemon = start_borgd(wrap=ns.enter)
    wait_until(lambda: prop(busctl, "DiskMonitor") == "active", 10, "DiskMonitor active")
    stick = make_stick(session_env)
    add_repo(busctl, "stick", stick.repo_url, device=stick.uuid, automount=True)
    home = session_env.home.parent
    add_profile(busctl, "docs", "stick", str(make_tree(home / "src-docs", 6)))
    add_profile(busctl, "photos", "stick", str(make_tree(home / "src-photos", 6)))
    held_sid = add_schedule(busctl, "docs", one_off(3))
    on_connect = int(
        busctl("AddSchedule", "sssa{sv}", "photos", "backup", "on-connect", *variant_args({}))
    )
    (listed,) = [s for s in busctl("ListSchedules") if s["id"] == on_connect]
    assert (listed["min_interval"], listed["next_run"]) == (86_400 * S, 0)  # the default

    held = wait_until(
        lambda: [j for j in jobs_of(busctl, held_sid) if j["blocked_by"]], 15, "the held job"
    )[0]
    assert (held["status"], held["blocked_by"]) == ("scheduled", "repository-unavailable")
    assert jobs_of(busctl, on_connect) == []  # the clock never plans an on-connect schedule
    assert not mounted(ns, stick.mount_point)

    stick.plug(udisks)
    # automount: mounted through UDisks2 (the mock's Mount), in borgd's namespace.
    wait_until(lambda: times(udisks, "Mount"), 10, "UDisks2's Mount to be called")
    assert mounted(ns, stick.mount_point)
    ran = wait_until(
        lambda: [j for j in jobs_of(busctl, held_sid) if finished(j)], 60, "the held job to end"
    )
    assert [(j["id"], j["status"]) for j in ran] == [(held["id"], "succeeded")], ran
    runs = wait_until(
        lambda: [j for j in jobs_of(busctl, on_connect) if finished(j)], 60, "the on-connect run"
    )
    assert len(runs) == 1, runs
    (run,) = runs
    assert (run["status"], run["trigger"], run["type"]) == ("succeeded", "schedule", "backup")
    assert run["started_at"] > times(udisks, "Mount")[0]
    assert log_events(daemon).count("disk.arrived") == 1

    # Pulled and plugged in again within min_interval: mounted again, nothing runs.
    stick.pull(udisks)
    wait_until(lambda: "disk.gone" in log_events(daemon), 10, "the disk to be gone")
    assert not mounted(ns, stick.mount_point)
    stick.plug(udisks)
    wait_until(lambda: len(times(udisks, "Mount")) == 2, 10, "the second Mount")
    wait_until(
        lambda: log_events(daemon).count("disk.arrived") == 2, 10, "the second arrival handled"
    )
    assert "disk.on_connect_not_due" in log_events(daemon)
    assert [j["id"] for j in jobs_of(busctl, on_connect)] == [run["id"]]
    assert all(finished(j) for j in busctl("ListJobs", "a{sv}", 0))


# -- eject -----------------------------------------------------------------------------


def test_eject_after_unmounts_and_powers_off_once_the_chain_has_finished(
    start_borgd, busctl, session_env, spawn_mock, ns
):
    udisks = spawn_udisks(spawn_mock, ns)
    daemon = start_borgd(wrap=ns.enter)
    wait_until(lambda: prop(busctl, "DiskMonitor") == "active", 10, "DiskMonitor active")
    stick = make_stick(session_env)
    add_repo(busctl, "stick", stick.repo_url, device=stick.uuid, automount=True, eject_after=True)
    source = make_tree(session_env.home.parent / "src-photos", 6)
    add_profile(
        busctl, "photos", "stick", str(source), prune_after=True, keep_daily=1, compact_after=True
    )
    sid = int(
        busctl(
            "AddSchedule",
            "sssa{sv}",
            "photos",
            "backup",
            "on-connect",
            *variant_args({"min_interval": 3600 * S}),
        )
    )

    stick.plug(udisks)
    powered_off = wait_until(lambda: times(udisks, "PowerOff"), 90, "the drive powered off")
    (unmounted,) = times(udisks, "Unmount")
    (mounted_at,) = times(udisks, "Mount")

    work = jobs_of(busctl, sid)  # the backup and its chain (which carries its schedule)
    (backup,) = [j for j in work if j["type"] == "backup"]
    assert all(j["parent_id"] == backup["id"] for j in work if j is not backup), work
    assert sorted(j["type"] for j in work) == ["backup", "compact", "prune"], work
    assert all(j["status"] == "succeeded" for j in work), work
    # Mounted before the backup; unmounted after the whole chain; powered off after that.
    assert mounted_at < backup["started_at"]
    assert unmounted > max(j["finished_at"] for j in work)
    assert powered_off[0] > unmounted
    assert not mounted(ns, stick.mount_point)
    events = log_events(daemon)
    assert events.index("disk.unmounted") < events.index("disk.powered_off")
    assert "disk.gone" in events  # a powered-off drive leaves UDisks2


# -- the reminder ----------------------------------------------------------------------


def test_an_overdue_profile_whose_disk_is_away_gets_one_reminder_per_episode(
    start_borgd, busctl, session_env, spawn_mock, ns
):
    notifications = spawn_mock("notification_daemon", session=True)
    udisks = spawn_udisks(spawn_mock, ns)
    daemon = start_borgd(wrap=ns.enter)
    wait_until(lambda: prop(busctl, "DiskMonitor") == "active", 10, "DiskMonitor active")
    stick = make_stick(session_env)
    add_repo(busctl, "stick", stick.repo_url, device=stick.uuid, automount=True)
    source = make_tree(session_env.home.parent / "src-docs", 6)
    add_profile(busctl, "docs", "stick", str(source), max_age=4 * S)
    busctl("AddSchedule", "sssa{sv}", "docs", "backup", "on-connect", *variant_args({}))

    def summaries() -> list[str]:
        calls = notifications.obj.GetMethodCalls("Notify", dbus_interface=MOCK_IFACE)
        return [str(args[3]) for _ts, args in calls]

    def reminders() -> list[str]:
        return [s for s in summaries() if s.startswith("Connect")]

    def succeeded() -> int:
        jobs = busctl("ListJobs", "a{sv}", 0)
        return len([j for j in jobs if j["status"] == "succeeded"])

    # Seen once (its label is remembered), backed up on connect, then pulled.
    stick.plug(udisks)
    wait_until(lambda: succeeded() == 1, 60, "the on-connect backup")
    stick.pull(udisks)
    wait_until(lambda: _overdue(busctl), 15, "the profile to become overdue")
    wait_until(reminders, 10, "the reminder")
    assert reminders() == [f"Connect {LABEL} to back up docs"]

    # Plugged in and pulled again in the same episode (min_interval: nothing runs): no
    # second reminder.
    gone = log_events(daemon).count("disk.gone")
    stick.plug(udisks)
    wait_until(lambda: log_events(daemon).count("disk.arrived") == 2, 10, "the second arrival")
    stick.pull(udisks)
    wait_until(lambda: log_events(daemon).count("disk.gone") == gone + 1, 10, "gone again")
    assert _overdue(busctl)
    # A barrier: notifications leave in order, so a second reminder queued when the disk
    # left would arrive before the failure of a backup started after that.
    busctl("StartJob", "ssa{sv}", "docs", "backup", 0)
    wait_until(lambda: "Backup of docs failed" in summaries(), 30, "the failure notification")
    assert len(reminders()) == 1, summaries()

    # A backup ends the episode; the next one (pulled, overdue again) reminds again.
    stick.plug(udisks)
    wait_until(lambda: log_events(daemon).count("disk.arrived") == 3, 10, "the third arrival")
    busctl("StartJob", "ssa{sv}", "docs", "backup", 0)
    wait_until(lambda: succeeded() == 2, 60, "the manual backup")
    wait_until(lambda: not _overdue(busctl), 10, "the episode to end")
    stick.pull(udisks)
    wait_until(lambda: len(reminders()) == 2, 15, "the reminder of the next episode")
    assert reminders() == [f"Connect {LABEL} to back up docs"] * 2


def _overdue(busctl: Any) -> bool:
    (profile,) = busctl("ListProfiles")
    return bool(profile["overdue"])
