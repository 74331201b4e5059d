"""Use cases of removable disks: the arrival of a repository's disk, eject, the reminder.

The UDisks2 watcher (`borgd.system.udisks.DiskMonitor`) only reports what is
plugged in; this loop decides, one step per change:

* a repository's filesystem (its ``device`` UUID) appears unmounted and the
  repository has ``automount``: mount it through UDisks2;
* it is seen mounted for the first time in this appearance (its *arrival*,
  handled exactly once): the jobs held back by ``repository-unavailable`` may
  start (the scheduler is poked), and each enabled ``on-connect`` schedule of
  a profile on it whose last success is older than its ``min_interval`` gets a
  `scheduled` row due now, which the scheduler fires like any other
  occurrence (pause, disabled profile, conditions and already-active apply);
* ``eject_after``: once the work the arrival started (those jobs, their
  chained tasks and retries) has ended and no job is queued or running on the
  disk's repositories, unmount it and power its drive off.

It also answers two questions for the rest: which removable disk a new
repository lies on (AddRepository fills in ``device``), and which disk to
name in an overdue profile's reminder ("connect LABEL to back up PROFILE").
UDisks2 failures are logged, never raised.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

import structlog

from borgd.clock import Clock
from borgd.core.disks import (
    Appearance,
    DiskActionFailed,
    Filesystem,
    Inventory,
    eject_due,
    follow,
    on_connect_due,
    released,
)
from borgd.core.jobs import JobStatus, JobType, Trigger
from borgd.core.records import Job, Profile, Repository, Schedule
from borgd.core.schedule import ON_CONNECT
from borgd.events import Events, IgnoresEvents
from borgd.store import Store
from borgd.store.catalog import NotFound
from borgd.store.engine import StoreUnavailable
from borgd.store.jobs import JobFilter, StaleState
from borgd.wakeups import Poke

log = structlog.get_logger(__name__)

LABEL_SETTING = "disk_label:"  # + UUID: the label last seen, for reminders while it is away
SUCCESS = ("succeeded", "warning")


class DiskPort(Protocol):
    """What the use cases need of UDisks2 (`DiskMonitor`)."""

    @property
    def inventory(self) -> Inventory | None: ...
    async def mount(self, fs: Filesystem) -> str: ...
    async def unmount(self, fs: Filesystem) -> None: ...
    async def power_off(self, drive: str) -> None: ...


def is_on_connect(spec: str) -> bool:
    return spec.strip().lower() == ON_CONNECT


class Disks(IgnoresEvents):
    def __init__(
        self,
        *,
        store: Store,
        events: Events,
        clock: Clock,
        disks: DiskPort,
        poke_scheduler: Callable[[], None],
        remind: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self.disks = disks
        self.poke_scheduler = poke_scheduler
        # The alerts look again for overdue profiles whose disk is away.
        self.remind = remind
        self.appearances: dict[str, Appearance] = {}
        self._labels: dict[str, str] = {}
        self._poke = Poke()

    def poke(self) -> None:
        """The disks changed, or a job on a disk's repository moved on: look again."""
        self._poke()

    async def run(self) -> None:
        while True:
            since = self._poke.generation
            try:
                await self.step()
            except StoreUnavailable:
                raise  # the loop is started again once the store is back
            except Exception:  # a fault in one step must not end the loop
                log.exception("disks.step_failed")
            await self._poke.wait(since)

    async def step(self) -> None:
        inventory = self.disks.inventory
        if inventory is None:
            return  # UDisks2 is away: what we knew stays until it is back
        repos = self.store.catalog.repositories()
        self._remember_labels(inventory, repos)
        automount: dict[str, bool] = {}
        for r in repos:
            if r.device:
                automount[r.device] = automount.get(r.device, False) or bool(r.automount)
        steps = follow(self.appearances, inventory, automount)
        self.appearances = dict(steps.appearances)
        for uuid in steps.gone:
            log.info("disk.gone", device=uuid, label=self.label_of(uuid))
        for fs in steps.mount:
            await self._mount(fs)
        for fs in steps.arrive:
            try:
                self._arrive(fs, repos)
            except StoreUnavailable:
                # Not handled: the next step after the outage handles it.
                self.appearances[fs.uuid] = replace(self.appearances[fs.uuid], arrived=False)
                raise
        await self._eject_finished(inventory, repos)
        self.remind()

    # -- arrival -------------------------------------------------------------------

    async def _mount(self, fs: Filesystem) -> None:
        try:
            where = await self.disks.mount(fs)
        except DiskActionFailed as exc:
            log.warning("disk.mount_failed", device=fs.uuid, label=fs.label, error=str(exc))
            return
        log.info("disk.mounted", device=fs.uuid, label=fs.label, mount_point=where)

    def _arrive(self, fs: Filesystem, repos: list[Repository]) -> None:
        now = self.clock()
        lanes = {r.id: r for r in repos if r.device == fs.uuid}
        seeds = released(self.store.jobs.with_status(JobStatus.SCHEDULED), lanes)
        profiles = {p.id: p for p in self.store.catalog.profiles() if p.repository_id in lanes}
        queued: list[int] = []
        for sched in self.store.catalog.schedules():
            prow = profiles.get(sched.profile_id)
            if prow is None or not is_on_connect(sched.spec):
                continue
            if not sched.enabled:
                log.info("disk.on_connect_disabled", schedule_id=sched.id, profile=prow.name)
                continue
            last = self._last_success(prow.name, sched.action)
            if not on_connect_due(last, int(sched.min_interval), now):
                log.info(
                    "disk.on_connect_not_due",
                    schedule_id=sched.id,
                    profile=prow.name,
                    last_success=last,
                    min_interval=sched.min_interval,
                )
                continue
            job_id = self._occurrence(sched, prow, lanes[prow.repository_id], fs, now)
            if job_id:
                queued.append(job_id)
        self.appearances[fs.uuid] = replace(
            self.appearances[fs.uuid], arrived_at=now, work=frozenset([*seeds, *queued])
        )
        log.info(
            "disk.arrived",
            device=fs.uuid,
            label=fs.label,
            mount_points=list(fs.mount_points),
            released=seeds,
            on_connect=queued,
        )
        self.poke_scheduler()

    def _last_success(self, profile: str, action: JobType) -> int:
        if action is JobType.BACKUP:
            last = self.store.jobs.last_success(profile)
            return int(last.finished_at) if last else 0
        done = self.store.jobs.query(
            JobFilter(profiles=(profile,), types=(action.value,), statuses=SUCCESS, limit=1)
        )
        return int(done[0].finished_at) if done else 0

    def _occurrence(
        self, sched: Schedule, prow: Profile, repo: Repository, fs: Filesystem, now: int
    ) -> int:
        """A `scheduled` row due now: the scheduler fires it as any occurrence."""
        values: dict[str, Any] = {
            "type": sched.action.value,
            "status": JobStatus.SCHEDULED.value,
            "trigger": Trigger.SCHEDULE.value,
            "profile": prow.name,
            "repository": repo.name,
            "repository_id": repo.id,
            "schedule_id": sched.id,
            "scheduled_for": now,
            "created_at": now,
            "options": {"occurrence": now, "device": fs.uuid},
            "message": f"{fs.name} was connected",
        }
        try:
            job = self.store.jobs.create(**values)
        except StaleState:
            # Its run from an earlier arrival still waits (held back): that one goes on.
            waiting = [
                j.id
                for j in self.store.jobs.with_status(JobStatus.SCHEDULED)
                if j.schedule_id == sched.id
            ]
            return waiting[0] if waiting else 0
        self.events.job_added(job)
        log.info("disk.on_connect", job_id=job.id, schedule_id=sched.id, device=fs.uuid)
        return int(job.id)

    # -- eject ---------------------------------------------------------------------

    async def _eject_finished(self, inventory: Inventory, repos: list[Repository]) -> None:
        for uuid, seen in list(self.appearances.items()):
            if seen.ejected or not seen.work:
                continue
            lanes = [r for r in repos if r.device == uuid]
            if not any(r.eject_after for r in lanes):
                continue
            fs = inventory.by_uuid(uuid)
            if fs is None:
                continue
            if not eject_due(seen.work, self._rows(seen, lanes), [r.id for r in lanes]):
                continue
            self.appearances[uuid] = replace(seen, ejected=True)
            await self._eject(fs, inventory)

    def _rows(self, seen: Appearance, lanes: list[Repository]) -> list[Job]:
        """The jobs that can tell whether the arrival's work is over: its seeds, what was
        created on the disk's repositories since, and every live job."""
        rows = {j.id: j for j in self.store.jobs.live()}
        flt = JobFilter(repositories=tuple(r.name for r in lanes), since=seen.arrived_at)
        rows.update((j.id, j) for j in self.store.jobs.query(flt))
        for job_id in seen.work - set(rows):
            job = self.store.jobs.find(job_id)
            if job is not None:
                rows[job.id] = job
        return list(rows.values())

    async def _eject(self, fs: Filesystem, inventory: Inventory) -> None:
        if fs.mounted:
            try:
                await self.disks.unmount(fs)
            except DiskActionFailed as exc:
                log.warning("disk.unmount_failed", device=fs.uuid, label=fs.label, error=str(exc))
                return
            log.info("disk.unmounted", device=fs.uuid, label=fs.label)
        drive = inventory.drive_of(fs)
        if drive is None:
            log.info("disk.not_powered_off", device=fs.uuid, why="UDisks2 names no drive")
            return
        try:
            await self.disks.power_off(drive.path)
        except DiskActionFailed as exc:
            log.warning("disk.power_off_failed", device=fs.uuid, drive=drive.path, error=str(exc))
            return
        log.info("disk.powered_off", device=fs.uuid, label=fs.label, drive=drive.path)

    # -- questions from the rest ---------------------------------------------------

    def device_for_path(self, path: str) -> str:
        """The UUID of the removable filesystem ``path`` lies on ('' when none is known)."""
        inventory = self.disks.inventory
        fs = inventory.device_for_path(path) if inventory is not None else None
        if fs is None:
            return ""
        self._remember(fs.uuid, fs.label)
        return fs.uuid

    def connect_label(self, profile: str) -> str | None:
        """The disk to connect for ``profile``: its label (else UUID) when UDisks2 says
        the profile's repository disk is absent; None when present or not known."""
        inventory = self.disks.inventory
        if inventory is None:
            return None
        try:
            prow = self.store.catalog.profile(profile)
            repo = self.store.catalog.repository_by_id(prow.repository_id)
        except NotFound:
            return None
        if not repo.device or inventory.by_uuid(repo.device) is not None:
            return None
        return self.label_of(repo.device)

    def label_of(self, uuid: str) -> str:
        if uuid not in self._labels:
            try:
                self._labels[uuid] = self.store.catalog.setting(LABEL_SETTING + uuid)
            except StoreUnavailable:
                return uuid
        return self._labels[uuid] or uuid

    def _remember_labels(self, inventory: Inventory, repos: list[Repository]) -> None:
        devices = {r.device for r in repos if r.device}
        for fs in inventory.filesystems:
            if fs.uuid in devices and fs.label:
                self._remember(fs.uuid, fs.label)

    def _remember(self, uuid: str, label: str) -> None:
        if not label or self._labels.get(uuid) == label:
            return
        self._labels[uuid] = label
        with contextlib.suppress(StoreUnavailable):  # kept in memory meanwhile
            self.store.catalog.set_setting(LABEL_SETTING + uuid, label)

    # -- Events listener: a job on a disk's repository moved on --------------------

    def job_changed(self, job_id: int, changed: dict[str, Any], job: Job) -> None:
        if "status" in changed and any(
            s.work and not s.ejected for s in self.appearances.values()
        ):
            self.poke()
