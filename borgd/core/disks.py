"""Removable disks as UDisks2 describes them, and the rules borgd follows for them (pure).

UDisks2 hands out objects (``GetManagedObjects``: path -> interface ->
properties).  :func:`inventory_from_objects` reads the few things borgd needs
from them — per filesystem its UUID, label, mount points and drive; per drive
whether it is removable — and ignores anything odd (a missing property, a wrong
type, a block device without a filesystem), because another program's objects
must never break the daemon.

:func:`follow` turns each new inventory into what to do: mount a repository's
filesystem that appeared unmounted (``automount``), handle an arrival once per
appearance (the first time it is seen mounted), forget what left.
:func:`eject_due` says when the work an arrival started has ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from borgd.core.jobs import JobStatus, SkipReason
from borgd.core.records import Job

BLOCK_IFACE = "org.freedesktop.UDisks2.Block"
FILESYSTEM_IFACE = "org.freedesktop.UDisks2.Filesystem"
DRIVE_IFACE = "org.freedesktop.UDisks2.Drive"
NO_OBJECT = "/"
# Buses on which a drive is pluggable even when it does not say "removable".
HOTPLUG_BUSES = frozenset({"usb", "sdio", "ieee1394"})

Objects = Mapping[str, Mapping[str, Mapping[str, Any]]]


class DiskActionFailed(Exception):
    """A Mount, Unmount or PowerOff that UDisks2 refused or did not answer."""


@dataclass(frozen=True)
class Drive:
    path: str
    removable: bool
    connection_bus: str = ""


@dataclass(frozen=True)
class Filesystem:
    path: str  # the UDisks2 object (block device) that carries it
    uuid: str
    label: str
    mount_points: tuple[str, ...]
    drive: str  # the Drive object's path, or "/" (none)

    @property
    def mounted(self) -> bool:
        return bool(self.mount_points)

    @property
    def name(self) -> str:
        """How people know the disk: its label, else its UUID."""
        return self.label or self.uuid


@dataclass(frozen=True)
class Inventory:
    """Every filesystem with a UUID, and the drives they sit on."""

    filesystems: tuple[Filesystem, ...] = ()
    drives: tuple[Drive, ...] = ()

    def by_uuid(self, uuid: str) -> Filesystem | None:
        return next((fs for fs in self.filesystems if fs.uuid == uuid), None) if uuid else None

    def drive_of(self, fs: Filesystem) -> Drive | None:
        return next((d for d in self.drives if d.path == fs.drive), None)

    def removable(self, fs: Filesystem) -> bool:
        drive = self.drive_of(fs)
        return drive is not None and drive.removable

    def device_for_path(self, path: str) -> Filesystem | None:
        """The removable filesystem ``path`` lies on (the deepest mount point wins), or None."""
        best: tuple[int, Filesystem | None] = (-1, None)
        for fs in self.filesystems:
            for mp in fs.mount_points:
                if under(path, mp) and len(mp) > best[0]:
                    best = (len(mp), fs)
        found = best[1]
        return found if found is not None and self.removable(found) else None


def under(path: str, mount_point: str) -> bool:
    """Whether ``path`` is ``mount_point`` or inside it (by name: no I/O, no symlinks)."""
    base = mount_point.rstrip("/")
    return path in (mount_point, base) or path.startswith(base + "/")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _byte_string(value: Any) -> str | None:
    """A UDisks2 ``ay`` path (NUL-terminated bytes) as text; None when it is not one."""
    if isinstance(value, list) and all(isinstance(b, int) for b in value):
        try:
            value = bytes(value)
        except ValueError:
            return None
    if not isinstance(value, bytes | bytearray):
        return None
    text = bytes(value).rstrip(b"\0").decode("utf-8", "surrogateescape")
    return text or None


def mount_points(value: Any) -> tuple[str, ...]:
    """``MountPoints`` (``aay``) as paths; anything malformed is left out."""
    if not isinstance(value, list | tuple):
        return ()
    return tuple(p for p in (_byte_string(v) for v in value) if p)


def _drive(path: str, props: Mapping[str, Any]) -> Drive:
    bus = _text(props.get("ConnectionBus"))
    removable = (
        props.get("Removable") is True
        or props.get("MediaRemovable") is True
        or bus in HOTPLUG_BUSES
    )
    return Drive(path, removable, bus)


def inventory_from_objects(objects: Objects) -> Inventory:
    """The filesystems (with a UUID) and drives among UDisks2's objects."""
    drives: list[Drive] = []
    blocks: dict[str, Mapping[str, Any]] = {}
    for path, ifaces in objects.items():
        if not isinstance(ifaces, Mapping):
            continue
        drive_props = ifaces.get(DRIVE_IFACE)
        if isinstance(drive_props, Mapping):
            drives.append(_drive(str(path), drive_props))
        block = ifaces.get(BLOCK_IFACE)
        if isinstance(block, Mapping):
            blocks[str(path)] = block
    filesystems: list[Filesystem] = []
    for path, ifaces in objects.items():
        block = blocks.get(str(path))
        fs = ifaces.get(FILESYSTEM_IFACE) if isinstance(ifaces, Mapping) else None
        if block is None or not isinstance(fs, Mapping):
            continue
        uuid = _text(block.get("IdUUID"))
        if not uuid:
            continue
        drive = _text(block.get("Drive")) or NO_OBJECT
        if drive == NO_OBJECT:
            # An unlocked LUKS volume: its drive is its backing device's.
            backing = blocks.get(_text(block.get("CryptoBackingDevice")), {})
            drive = _text(backing.get("Drive")) or NO_OBJECT
        filesystems.append(
            Filesystem(
                path=str(path),
                uuid=uuid,
                label=_text(block.get("IdLabel")),
                mount_points=mount_points(fs.get("MountPoints")),
                drive=drive,
            )
        )
    return Inventory(
        tuple(sorted(filesystems, key=lambda f: f.path)),
        tuple(sorted(drives, key=lambda d: d.path)),
    )


# -- appearances: what to do when a repository's disk comes and goes -------------------


@dataclass(frozen=True)
class Appearance:
    """One stay of a filesystem, from the moment it is seen until it leaves."""

    uuid: str
    mount_tried: bool = False
    arrived: bool = False  # seen mounted: its arrival was handled (once)
    arrived_at: int = 0
    work: frozenset[int] = frozenset()  # jobs the arrival queued or released
    ejected: bool = False


@dataclass(frozen=True)
class Steps:
    mount: tuple[Filesystem, ...] = ()  # appeared unmounted, with automount
    arrive: tuple[Filesystem, ...] = ()  # mounted for the first time in this appearance
    gone: tuple[str, ...] = ()  # UUIDs that left
    appearances: Mapping[str, Appearance] = field(default_factory=dict)


def follow(
    appearances: Mapping[str, Appearance], inventory: Inventory, automount: Mapping[str, bool]
) -> Steps:
    """The next steps for the filesystems of repositories (``automount``: UUID -> option).

    A filesystem still present keeps its appearance (a UDisks2 restart is no new
    arrival); one that left is forgotten, so its next appearance counts again.
    """
    present = {fs.uuid: fs for fs in inventory.filesystems if fs.uuid in automount}
    nxt: dict[str, Appearance] = {}
    mount: list[Filesystem] = []
    arrive: list[Filesystem] = []
    for uuid, fs in sorted(present.items()):
        seen = appearances.get(uuid) or Appearance(uuid)
        if not fs.mounted:
            if automount[uuid] and not seen.mount_tried and not seen.arrived:
                mount.append(fs)
                seen = replace(seen, mount_tried=True)
        elif not seen.arrived:
            arrive.append(fs)
            seen = replace(seen, arrived=True)
        nxt[uuid] = seen
    gone = tuple(sorted(set(appearances) - set(present)))
    return Steps(tuple(mount), tuple(arrive), gone, nxt)


def on_connect_due(last_success: int, min_interval: int, now: int) -> bool:
    """Whether an ``on-connect`` schedule runs: its last success is older than
    ``min_interval`` (or there is none)."""
    return not last_success or now - last_success > min_interval


def work_of(seeds: Iterable[int], jobs: Iterable[Job]) -> set[int]:
    """``seeds`` and every job that follows from them: chained tasks (``parent_id``)
    and retries (``requeued_from``), transitively."""
    work = set(seeds)
    rows = list(jobs)
    grew = True
    while grew:
        grew = False
        for job in rows:
            if job.id not in work and (job.parent_id in work or job.requeued_from in work):
                work.add(job.id)
                grew = True
    return work


def eject_due(seeds: Iterable[int], jobs: Iterable[Job], lanes: Iterable[int]) -> bool:
    """True when the arrival started some work, all of it (with its chains and retries)
    has ended, and no job is queued or running in the disk's lanes (``lanes``:
    repository ids) — a mount of an archive included."""
    seeds = set(seeds)
    if not seeds:
        return False
    rows = list(jobs)
    work = work_of(seeds, rows)
    by_id = {j.id: j for j in rows}
    if any(i not in by_id or by_id[i].live for i in work):
        return False
    busy = (JobStatus.QUEUED, JobStatus.RUNNING)
    lane_ids = set(lanes)
    return not any(j.repository_id in lane_ids and j.status in busy for j in rows)


def released(intents: Iterable[Job], lanes: Iterable[int]) -> list[int]:
    """The intents of these lanes held back because the disk was missing."""
    lane_ids = set(lanes)
    return [
        j.id
        for j in intents
        if j.status is JobStatus.SCHEDULED
        and j.repository_id in lane_ids
        and j.blocked_by == SkipReason.REPOSITORY_UNAVAILABLE.value
    ]


def reminder(label: str, profile: str) -> str:
    """The reminder's summary (DESIGN: "connect … to back up …")."""
    return f"Connect {label} to back up {profile}"
