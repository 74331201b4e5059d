"""`org.borgd1.Manager` on `/org/borgd1`: converts D-Bus types, nothing more.

Each method unwraps variants, calls the service or the scheduler, and turns
rows into `a{sv}` with fixed signatures (`types.py`).  `guarded` maps every
exception to an `org.borgd1.Error.*`.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from dbus_fast import Variant
from dbus_fast.annotations import DBusSignature
from dbus_fast.constants import PropertyAccess
from dbus_fast.service import (
    ServiceInterface,
    dbus_method,
    dbus_property,
    dbus_signal,
)

from borgd import __version__
from borgd.app.archives import archive_dict
from borgd.app.service import Service
from borgd.core.validation import check_time
from borgd.dbus.errors import guarded
from borgd.dbus.types import (
    ARCHIVE_KEYS,
    DELIVERY_KEYS,
    DIFF_KEYS,
    ENTRY_KEYS,
    JOB_KEYS,
    NOTIFIER_KEYS,
    PROFILE_KEYS,
    REPOSITORY_KEYS,
    SCHEDULE_KEYS,
    STATS_KEYS,
    UPCOMING_KEYS,
    RowsOnce,
    from_variants,
    to_variants,
)

NONE = Annotated[None, DBusSignature("")]
S = Annotated[str, DBusSignature("s")]
T = Annotated[int, DBusSignature("t")]
U = Annotated[int, DBusSignature("u")]
B = Annotated[bool, DBusSignature("b")]
AS = Annotated[list[str], DBusSignature("as")]
ASV = Annotated[dict[str, Variant], DBusSignature("a{sv}")]
AASV = Annotated[list[dict[str, Variant]], DBusSignature("aa{sv}")]
JOB_SIGNAL = Annotated[list[Any], DBusSignature("ta{sv}")]
PROFILE_SIGNAL = Annotated[list[Any], DBusSignature("sa{sv}")]
LOG_PAGE = Annotated[list[Any], DBusSignature("ast")]

MANAGER_INTERFACE = "org.borgd1.Manager"
MANAGER_PATH = "/org/borgd1"


class SchedulesView(Protocol):
    """What the Manager needs of the schedule use cases (`borgd.app.schedules`)."""

    @property
    def paused(self) -> bool: ...
    @property
    def paused_until(self) -> int: ...
    @property
    def next_run(self) -> int: ...

    def add_schedule(self, profile: str, action: str, spec: str, options: Any) -> int: ...
    def update_schedule(self, schedule_id: int, options: Any) -> None: ...
    def remove_schedule(self, schedule_id: int) -> None: ...
    def list_schedules(self) -> list[dict[str, Any]]: ...
    def upcoming(self, start: int, end: int) -> list[dict[str, Any]]: ...
    def pause(self, until: int) -> None: ...
    def resume(self) -> None: ...
    def pause_schedule(self, schedule_id: int, until: int) -> None: ...
    @property
    def blackout(self) -> list[str]: ...
    def set_blackout(self, windows: list[str]) -> None: ...
    def resume_schedule(self, schedule_id: int) -> None: ...


class ConditionsView(Protocol):
    sleep_monitor: str
    disk_monitor: str
    on_battery: bool
    metered: bool


class ManagerInterface(ServiceInterface):
    def __init__(
        self,
        service: Service,
        scheduler: SchedulesView,
        conditions: ConditionsView,
        active_jobs: Any,
        *,
        metrics_file: str = "",
    ) -> None:
        super().__init__(MANAGER_INTERFACE)
        self._service = service
        self._scheduler = scheduler
        self._conditions = conditions
        self._active_jobs = active_jobs
        self._metrics_file = metrics_file
        self._archive_rows = RowsOnce()

    # -- repositories -----------------------------------------------------------

    @dbus_method()
    @guarded
    async def AddRepository(self, name: S, url: S, options: ASV) -> T:
        return await self._service.add_repository(name, url, from_variants(options))

    @dbus_method()
    @guarded
    async def UpdateRepository(self, name: S, options: ASV) -> NONE:
        await self._service.update_repository(name, from_variants(options))

    @dbus_method()
    @guarded
    async def RemoveRepository(self, name: S) -> NONE:
        await self._service.remove_repository(name)

    @dbus_method()
    @guarded
    async def ListRepositories(self) -> AASV:
        rows = await self._service.list_repositories()
        return [to_variants(r, REPOSITORY_KEYS) for r in rows]

    # -- profiles -----------------------------------------------------------

    @dbus_method()
    @guarded
    def AddProfile(self, name: S, repository: S, sources: AS, options: ASV) -> T:
        return self._service.add_profile(name, repository, sources, from_variants(options))

    @dbus_method()
    @guarded
    def UpdateProfile(self, name: S, options: ASV) -> NONE:
        self._service.update_profile(name, from_variants(options))

    @dbus_method()
    @guarded
    def RemoveProfile(self, name: S) -> NONE:
        self._service.remove_profile(name)

    @dbus_method()
    @guarded
    def ListProfiles(self) -> AASV:
        return [to_variants(p, PROFILE_KEYS) for p in self._service.list_profiles()]

    # -- schedules ----------------------------------------------------------

    @dbus_method()
    @guarded
    def AddSchedule(self, profile: S, action: S, spec: S, options: ASV) -> T:
        return self._scheduler.add_schedule(profile, action, spec, from_variants(options))

    @dbus_method()
    @guarded
    def UpdateSchedule(self, schedule_id: T, options: ASV) -> NONE:
        self._scheduler.update_schedule(schedule_id, from_variants(options))

    @dbus_method()
    @guarded
    def RemoveSchedule(self, schedule_id: T) -> NONE:
        self._scheduler.remove_schedule(schedule_id)

    @dbus_method()
    @guarded
    def ListSchedules(self) -> AASV:
        return [to_variants(s, SCHEDULE_KEYS) for s in self._scheduler.list_schedules()]

    @dbus_method()
    @guarded
    def Upcoming(self, start: T, end: T) -> AASV:
        start = check_time("'from'", start, clamp=True)
        end = check_time("'to'", end, clamp=True)
        return [to_variants(u, UPCOMING_KEYS) for u in self._scheduler.upcoming(start, end)]

    @dbus_method()
    @guarded
    def Pause(self, until: T) -> NONE:
        self._scheduler.pause(check_time("'until'", until))

    @dbus_method()
    @guarded
    def Resume(self) -> NONE:
        self._scheduler.resume()

    @dbus_method()
    @guarded
    def SetBlackout(self, windows: AS) -> NONE:
        self._scheduler.set_blackout(windows)

    @dbus_method()
    @guarded
    def PauseSchedule(self, schedule_id: T, until: T) -> NONE:
        self._scheduler.pause_schedule(schedule_id, check_time("'until'", until))

    @dbus_method()
    @guarded
    def ResumeSchedule(self, schedule_id: T) -> NONE:
        self._scheduler.resume_schedule(schedule_id)

    # -- jobs ---------------------------------------------------------------

    @dbus_method()
    @guarded
    def StartJob(self, profile: S, type: S, options: ASV) -> T:
        return self._service.start_job(profile, type, from_variants(options))

    @dbus_method()
    @guarded
    def CancelJob(self, id: T) -> NONE:
        self._service.cancel_job(id)

    @dbus_method()
    @guarded
    def RequeueJob(self, id: T) -> T:
        return self._service.requeue_job(id)

    @dbus_method()
    @guarded
    def GetJob(self, id: T) -> ASV:
        return to_variants(self._service.get_job(id).as_dict(), JOB_KEYS)

    @dbus_method()
    @guarded
    def ListArchives(self, repository: S, filter: ASV) -> AASV:
        archives = self._service.list_archives(repository, from_variants(filter))
        return self._archive_rows.get(
            archives,
            repository,
            lambda: [to_variants(archive_dict(a, repository), ARCHIVE_KEYS) for a in archives],
        )

    @dbus_method()
    @guarded
    def RepositoryStats(self, repository: S, since: T) -> AASV:
        rows = self._service.repository_stats(repository, since)
        return [to_variants(r, STATS_KEYS) for r in rows]

    @dbus_method()
    @guarded
    async def ListArchiveContents(self, repository: S, archive: S, path: S, options: ASV) -> AASV:
        rows = await self._service.list_archive_contents(
            repository, archive, path, from_variants(options)
        )
        return [to_variants(r, ENTRY_KEYS) for r in rows]

    @dbus_method()
    @guarded
    async def DiffArchives(self, repository: S, archive1: S, archive2: S, options: ASV) -> AASV:
        rows = await self._service.diff_archives(
            repository, archive1, archive2, from_variants(options)
        )
        return [to_variants(r, DIFF_KEYS) for r in rows]

    @dbus_method()
    @guarded
    def MountArchive(self, repository: S, archive: S, mountpoint: S, options: ASV) -> T:
        return self._service.mount_archive(repository, archive, mountpoint, from_variants(options))

    @dbus_method()
    @guarded
    def UnmountArchive(self, job_id: T) -> NONE:
        self._service.unmount_archive(job_id)

    # -- notifiers ------------------------------------------------------------------

    @dbus_method()
    @guarded
    async def AddNotifier(self, name: S, url: S, options: ASV) -> T:
        return await self._service.add_notifier(name, url, from_variants(options))

    @dbus_method()
    @guarded
    async def UpdateNotifier(self, name: S, options: ASV) -> NONE:
        await self._service.update_notifier(name, from_variants(options))

    @dbus_method()
    @guarded
    async def RemoveNotifier(self, name: S) -> NONE:
        await self._service.remove_notifier(name)

    @dbus_method()
    @guarded
    def ListNotifiers(self) -> AASV:
        return [to_variants(x, NOTIFIER_KEYS) for x in self._service.list_notifiers()]

    @dbus_method()
    @guarded
    def TestNotifier(self, name: S) -> T:
        return self._service.test_notifier(name)

    @dbus_method()
    @guarded
    def ListDeliveries(self, filter: ASV) -> AASV:
        rows = self._service.list_deliveries(from_variants(filter))
        return [to_variants(d, DELIVERY_KEYS) for d in rows]

    @dbus_method()
    @guarded
    def DeleteArchive(self, repository: S, archive: S, options: ASV) -> T:
        return self._service.delete_archive(repository, archive, from_variants(options))

    @dbus_method()
    @guarded
    def RefreshArchives(self, repository: S) -> T:
        return self._service.refresh_archives(repository)

    @dbus_method()
    @guarded
    def ListJobs(self, filter: ASV) -> AASV:
        return [
            to_variants(j.as_dict(), JOB_KEYS)
            for j in self._service.list_jobs(from_variants(filter))
        ]

    @dbus_method()
    @guarded
    async def GetJobLog(self, id: T, tail: U) -> AS:
        return await self._service.job_log(id, tail)

    @dbus_method()
    @guarded
    async def ReadJobLog(self, id: T, offset: T, max_lines: U) -> LOG_PAGE:
        page = await self._service.read_job_log(id, offset, max_lines)
        return [page.lines, page.next_offset]  # two out args: lines, next_offset

    # -- properties -----------------------------------------------------------

    @dbus_property(access=PropertyAccess.READ)
    def Version(self) -> S:
        return __version__

    @dbus_property(access=PropertyAccess.READ)
    def Paused(self) -> B:
        return self._scheduler.paused

    @dbus_property(access=PropertyAccess.READ)
    def PausedUntil(self) -> T:
        return self._scheduler.paused_until

    @dbus_property(access=PropertyAccess.READ)
    def Blackout(self) -> AS:
        return self._scheduler.blackout

    @dbus_property(access=PropertyAccess.READ)
    def SleepMonitor(self) -> S:
        return self._conditions.sleep_monitor

    @dbus_property(access=PropertyAccess.READ)
    def DiskMonitor(self) -> S:
        return self._conditions.disk_monitor

    @dbus_property(access=PropertyAccess.READ)
    def OnBattery(self) -> B:
        return self._conditions.on_battery

    @dbus_property(access=PropertyAccess.READ)
    def Metered(self) -> B:
        return self._conditions.metered

    @dbus_property(access=PropertyAccess.READ)
    def ActiveJobs(self) -> U:
        return int(self._active_jobs())

    @dbus_property(access=PropertyAccess.READ)
    def NextRun(self) -> T:
        return self._scheduler.next_run

    @dbus_property(access=PropertyAccess.READ)
    def StoreHealth(self) -> S:
        return self._service.store.health.state

    @dbus_property(access=PropertyAccess.READ)
    def MetricsFile(self) -> S:
        return self._metrics_file

    # -- signals ------------------------------------------------------------

    @dbus_signal()
    def JobAdded(self, job_id: int, job: dict[str, Variant]) -> JOB_SIGNAL:
        return [job_id, job]

    @dbus_signal()
    def JobChanged(self, job_id: int, changed: dict[str, Variant]) -> JOB_SIGNAL:
        return [job_id, changed]

    @dbus_signal()
    def ProfileChanged(self, name: str, changed: dict[str, Variant]) -> PROFILE_SIGNAL:
        return [name, changed]
