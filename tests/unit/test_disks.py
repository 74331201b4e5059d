"""The pure rules of removable disks (`borgd.core.disks`) and the reminder's bookkeeping."""

from __future__ import annotations

from typing import Any

import pytest

from borgd.core.disks import (
    BLOCK_IFACE,
    DRIVE_IFACE,
    FILESYSTEM_IFACE,
    Drive,
    Filesystem,
    Inventory,
    eject_due,
    follow,
    inventory_from_objects,
    mount_points,
    on_connect_due,
    released,
    reminder,
    work_of,
)
from borgd.core.jobs import JobStatus, JobType, Trigger
from borgd.core.records import Job
from borgd.scheduling.alerts import Alerts

ROOT = "/org/freedesktop/UDisks2"
STICK = f"{ROOT}/drives/Stick"
SDB1 = f"{ROOT}/block_devices/sdb1"


def ay(path: str) -> bytes:
    return path.encode() + b"\0"


def objects(**extra: Any) -> dict[str, Any]:
    """A USB stick with one mounted partition, an internal disk, a LUKS volume on the stick."""
    base: dict[str, Any] = {
        STICK: {DRIVE_IFACE: {"Removable": True, "ConnectionBus": "usb"}},
        f"{ROOT}/drives/Internal": {DRIVE_IFACE: {"Removable": False, "ConnectionBus": ""}},
        SDB1: {
            BLOCK_IFACE: {"IdUUID": "u-stick", "IdLabel": "Stick", "Drive": STICK},
            FILESYSTEM_IFACE: {"MountPoints": [ay("/media/me/Stick")]},
        },
        f"{ROOT}/block_devices/sda2": {
            BLOCK_IFACE: {"IdUUID": "u-root", "IdLabel": "", "Drive": f"{ROOT}/drives/Internal"},
            FILESYSTEM_IFACE: {"MountPoints": [ay("/")]},
        },
        f"{ROOT}/block_devices/sdb2": {  # LUKS container: no filesystem of its own
            BLOCK_IFACE: {"IdUUID": "u-luks", "Drive": STICK},
        },
        f"{ROOT}/block_devices/dm_2d0": {
            BLOCK_IFACE: {
                "IdUUID": "u-clear",
                "IdLabel": "Vault",
                "Drive": "/",
                "CryptoBackingDevice": f"{ROOT}/block_devices/sdb2",
            },
            FILESYSTEM_IFACE: {"MountPoints": []},
        },
        f"{ROOT}/Manager": {"org.freedesktop.UDisks2.Manager": {"Version": "2.9.4"}},
    }
    base.update(extra)
    return base


def test_inventory_reads_filesystems_drives_and_luks_volumes() -> None:
    inv = inventory_from_objects(objects())
    assert [(f.uuid, f.label, f.mount_points, f.drive) for f in inv.filesystems] == [
        ("u-clear", "Vault", (), STICK),  # a LUKS volume's drive is its backing device's
        ("u-root", "", ("/",), f"{ROOT}/drives/Internal"),
        ("u-stick", "Stick", ("/media/me/Stick",), STICK),
    ]  # in path order; the LUKS container itself has no filesystem
    by = {f.uuid: f for f in inv.filesystems}
    assert by["u-clear"].drive == STICK and by["u-clear"].name == "Vault"
    assert by["u-root"].name == "u-root"  # no label: the UUID names it
    assert inv.removable(by["u-stick"]) and inv.removable(by["u-clear"])
    assert not inv.removable(by["u-root"])


@pytest.mark.parametrize(
    "odd",
    [
        {BLOCK_IFACE: {"IdUUID": 42, "Drive": STICK}, FILESYSTEM_IFACE: {"MountPoints": []}},
        {BLOCK_IFACE: {"IdUUID": "", "Drive": STICK}, FILESYSTEM_IFACE: {"MountPoints": []}},
        {BLOCK_IFACE: "not a dict", FILESYSTEM_IFACE: {}},
        {FILESYSTEM_IFACE: {"MountPoints": [ay("/x")]}},  # no Block
        "not a dict at all",
    ],
)
def test_odd_objects_are_left_out_and_break_nothing(odd: Any) -> None:
    inv = inventory_from_objects(objects(**{f"{ROOT}/block_devices/odd": odd}))
    assert {f.uuid for f in inv.filesystems} == {"u-root", "u-stick", "u-clear"}


def test_odd_properties_count_as_absent() -> None:
    inv = inventory_from_objects(
        {
            "/d": {DRIVE_IFACE: {"Removable": "yes", "ConnectionBus": 7}},
            "/b": {
                BLOCK_IFACE: {"IdUUID": "u", "IdLabel": 3, "Drive": ["/d"]},
                FILESYSTEM_IFACE: {"MountPoints": "/mnt"},
            },
        }
    )
    (fs,) = inv.filesystems
    assert (fs.label, fs.mount_points, fs.drive) == ("", (), "/")
    assert inv.drives == (Drive("/d", False, ""),)
    assert not inv.removable(fs)


def test_mount_points_are_nul_terminated_byte_strings() -> None:
    assert mount_points([ay("/media/a"), b"/media/b", [47, 109, 0], b"", "x", None]) == (
        "/media/a",
        "/media/b",
        "/m",
    )
    assert mount_points(None) == ()
    # Not UTF-8: kept as the file system's bytes (os.fsdecode's spelling).
    assert mount_points([b"/media/caf\xe9\0"]) == ("/media/caf\udce9",)


def test_removable_by_bus_even_without_the_removable_hint() -> None:
    inv = inventory_from_objects(
        {
            "/d": {
                DRIVE_IFACE: {"Removable": False, "MediaRemovable": False, "ConnectionBus": "usb"}
            },
            "/b": {BLOCK_IFACE: {"IdUUID": "u", "Drive": "/d"}, FILESYSTEM_IFACE: {}},
        }
    )
    assert inv.removable(inv.filesystems[0])


@pytest.mark.parametrize(
    ("path", "uuid"),
    [
        ("/media/me/Stick/borg", "u-stick"),
        ("/media/me/Stick", "u-stick"),
        ("/media/me/Stick2/borg", None),  # a name that only starts alike
        ("/home/me/borg", None),  # on the internal disk
        ("/media/me/Stick/inner/borg", None),  # the deepest mount point wins: internal
    ],
)
def test_device_for_path(path: str, uuid: str | None) -> None:
    inner = {
        f"{ROOT}/block_devices/sda3": {
            BLOCK_IFACE: {"IdUUID": "u-inner", "Drive": f"{ROOT}/drives/Internal"},
            FILESYSTEM_IFACE: {"MountPoints": [ay("/media/me/Stick/inner")]},
        }
    }
    inv = inventory_from_objects(objects(**inner))
    found = inv.device_for_path(path)
    assert (found.uuid if found else None) == uuid


def fs(uuid: str = "u", mounted: bool = False) -> Filesystem:
    return Filesystem(f"/b/{uuid}", uuid, "L", ("/m",) if mounted else (), "/d")


def inv(*filesystems: Filesystem) -> Inventory:
    return Inventory(tuple(filesystems), (Drive("/d", True),))


def test_an_appearance_mounts_once_arrives_once_and_ends_when_gone() -> None:
    steps = follow({}, inv(fs()), {"u": True})
    assert [f.uuid for f in steps.mount] == ["u"] and not steps.arrive
    again = follow(steps.appearances, inv(fs()), {"u": True})
    assert not again.mount and not again.arrive  # Mount is asked once per appearance
    up = follow(again.appearances, inv(fs(mounted=True)), {"u": True})
    assert [f.uuid for f in up.arrive] == ["u"] and not up.mount
    # Unmounted and mounted again (eject that failed to power off, a manual mount): no
    # second arrival, no second Mount.
    down = follow(up.appearances, inv(fs()), {"u": True})
    back = follow(down.appearances, inv(fs(mounted=True)), {"u": True})
    assert not down.mount and not back.arrive
    gone = follow(back.appearances, inv(), {"u": True})
    assert gone.gone == ("u",) and gone.appearances == {}
    new = follow(gone.appearances, inv(fs(mounted=True)), {"u": True})
    assert [f.uuid for f in new.arrive] == ["u"]


def test_without_automount_an_unmounted_disk_waits_for_someone_to_mount_it() -> None:
    steps = follow({}, inv(fs()), {"u": False})
    assert not steps.mount and not steps.arrive and "u" in steps.appearances
    assert [
        f.uuid for f in follow(steps.appearances, inv(fs(mounted=True)), {"u": False}).arrive
    ] == ["u"]


def test_only_repositories_disks_are_followed() -> None:
    steps = follow({}, inv(fs("other", mounted=True)), {"u": True})
    assert not steps.arrive and steps.appearances == {}


@pytest.mark.parametrize(
    ("last", "now", "due"),
    [(0, 100, True), (40, 100, True), (49, 100, True), (50, 100, False), (60, 100, False)],
)
def test_on_connect_runs_when_the_last_success_is_older_than_min_interval(
    last: int, now: int, due: bool
) -> None:
    assert on_connect_due(last, 50, now) is due


def job(
    job_id: int,
    status: JobStatus,
    *,
    repo: int = 1,
    parent: int = 0,
    requeued_from: int = 0,
    blocked_by: str = "",
) -> Job:
    return Job(
        id=job_id,
        type=JobType.BACKUP,
        status=status,
        trigger=Trigger.SCHEDULE,
        profile="p",
        repository="r",
        repository_id=repo,
        schedule_id=1,
        parent_id=parent,
        requeued_from=requeued_from,
        scheduled_for=0,
        created_at=0,
        queued_at=0,
        started_at=0,
        finished_at=0,
        skip_reason=None,
        blocked_by=blocked_by,
        message="",
        exit_code=0,
        archive="",
        progress=0.0,
        progress_message="",
        current_file="",
        nfiles=0,
        original_size=0,
        compressed_size=0,
        deduplicated_size=0,
        rate=0.0,
        eta=0,
        duration=0.0,
        options={},
        pid=0,
        pid_start_time=0,
        log_path="",
        repository_size=0,
    )


DONE, RUN, QUEUED, SCHED = (
    JobStatus.SUCCEEDED,
    JobStatus.RUNNING,
    JobStatus.QUEUED,
    JobStatus.SCHEDULED,
)


def test_work_follows_chains_and_retries_transitively() -> None:
    jobs = [
        job(1, DONE),
        job(2, DONE, parent=1),
        job(3, JobStatus.FAILED, parent=1),
        job(4, SCHED, requeued_from=3),
        job(5, DONE),
    ]
    assert work_of({1}, jobs) == {1, 2, 3, 4}


@pytest.mark.parametrize(
    ("jobs", "due"),
    [
        ([job(1, DONE)], True),
        ([job(1, RUN)], False),
        ([job(1, DONE), job(2, QUEUED, parent=1)], False),  # the chain is still to run
        ([job(1, DONE), job(2, DONE, parent=1)], True),
        ([job(1, JobStatus.FAILED), job(2, SCHED, requeued_from=1)], False),  # a retry waits
        ([job(1, DONE), job(9, RUN)], False),  # another job (a mount, say) in the lane
        ([job(1, DONE), job(9, QUEUED)], False),
        ([job(1, DONE), job(9, RUN, repo=2)], True),  # another repository's lane
        ([job(1, DONE), job(9, SCHED)], True),  # a future occurrence does not hold the disk
        ([job(1, SCHED, blocked_by="on-battery")], False),  # released, still held back
        ([], False),  # the seed is unknown (expired?): keep the disk
    ],
)
def test_eject_is_due_when_the_work_and_the_lane_are_done(jobs: list[Job], due: bool) -> None:
    assert eject_due({1}, jobs, [1]) is due


def test_no_work_no_eject() -> None:
    assert not eject_due(set(), [job(1, DONE)], [1])


def test_released_are_the_lanes_intents_held_for_the_missing_disk() -> None:
    jobs = [
        job(1, SCHED, blocked_by="repository-unavailable"),
        job(2, SCHED, blocked_by="on-battery"),
        job(3, SCHED, blocked_by="repository-unavailable", repo=2),
        job(4, QUEUED, blocked_by="repository-unavailable"),
        job(5, SCHED),
    ]
    assert released(jobs, [1]) == [1]


# -- the reminder's bookkeeping in the alerts ---------------------------------------


class Recorder:
    enabled = frozenset({"overdue"})

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.episodes: set[str] = set()

    async def notify(self, key: str, summary: str, body: str) -> bool:
        if key in self.episodes:
            return False
        self.episodes.add(key)
        self.sent.append((key, summary))
        return True

    def clear(self, key: str) -> None:
        self.episodes.discard(key)


def alerts_with(labels: dict[str, str | None]) -> tuple[Alerts, Recorder]:
    rec = Recorder()
    alerts = Alerts(notifier=rec, store=None, clock=lambda: 0, timer=None)  # type: ignore[arg-type]
    alerts.connect_label = labels.get
    return alerts, rec


@pytest.mark.anyio
async def test_the_overdue_notification_is_the_reminder_when_the_disk_is_away() -> None:
    labels: dict[str, str | None] = {"docs": "Stick"}
    alerts, rec = alerts_with(labels)
    alerts.overdue("docs", True, {"last_success": 0, "max_age": 60_000_000})
    alerts.remind_absent_disks()  # the disk left again: already reminded
    await alerts.flush()
    assert rec.sent == [("overdue:docs", reminder("Stick", "docs"))]
    assert reminder("Stick", "docs") == "Connect Stick to back up docs"


@pytest.mark.anyio
async def test_a_disk_that_leaves_during_an_episode_is_reminded_of_once() -> None:
    labels: dict[str, str | None] = {"docs": None}  # present when the episode began
    alerts, rec = alerts_with(labels)
    alerts.overdue("docs", True, {"last_success": 0, "max_age": 1})
    alerts.remind_absent_disks()
    labels["docs"] = "Stick"  # then it left
    alerts.remind_absent_disks()
    alerts.remind_absent_disks()
    await alerts.flush()
    assert rec.sent == [
        ("overdue:docs", "Backups of docs are overdue"),
        ("overdue:docs/disk", "Connect Stick to back up docs"),
    ]
    # The episode ends; the next one reminds again.
    alerts.overdue("docs", False, {})
    alerts.remind_absent_disks()  # not overdue: nothing
    alerts.overdue("docs", True, {"last_success": 0, "max_age": 1})
    await alerts.flush()
    assert rec.sent[2:] == [("overdue:docs", "Connect Stick to back up docs")]


@pytest.mark.anyio
async def test_a_failing_label_lookup_costs_the_reminder_not_the_alert() -> None:
    alerts, rec = alerts_with({})

    def broken(profile: str) -> str | None:
        raise RuntimeError("store gone")

    alerts.connect_label = broken
    alerts.overdue("docs", True, {"last_success": 0, "max_age": 1})
    alerts.remind_absent_disks()
    await alerts.flush()
    assert rec.sent == [("overdue:docs", "Backups of docs are overdue")]


# -- borgd.toml: the disk keys -------------------------------------------------------


def test_borgd_toml_carries_the_disk_options_both_ways() -> None:
    from borgd.cli.config_file import parse, plan, render

    repo = {
        "name": "stick",
        "url": "/media/me/Stick/borg",
        "encryption": "none",
        "device": "u-stick",
        "automount": True,
        "eject_after": True,
        "has_passphrase": False,
        "has_passcommand": False,
    }
    schedule = {"profile": "docs", "action": "backup", "spec": "on-connect"}
    text = render([repo], [], [{**schedule, "min_interval": 12 * 3600 * 10**6}])
    desired = parse(text)
    assert desired.repositories["stick"] == {
        "url": "/media/me/Stick/borg",
        "encryption": "none",
        "device": "u-stick",
        "automount": True,
        "eject_after": True,
    }
    assert 'min_interval = "12h"' in text
    assert desired.schedules == [{**schedule, "min_interval": 12 * 3600 * 10**6}]

    # Applied to a borgd that has it already: no repository call; one option changed: one.
    def repository_calls(have: dict[str, Any]) -> list[tuple[str, Any]]:
        actions = plan(desired, [have], [], [])
        return [(a.member, a.args[1]) for a in actions if "Repository" in a.member]

    assert repository_calls(repo) == []
    assert repository_calls({**repo, "eject_after": False}) == [
        ("UpdateRepository", {"eject_after": ("b", True)})
    ]
