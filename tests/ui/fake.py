"""A borgd stand-in for the view: fixed data, a fixed clock, no bus.

It answers the calls the view makes from plain lists, records them, and lets a
test send signals.  The snapshot tests draw each tab from it, so the pictures
depend on nothing but this file.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from borgd.cli.client import CallFailed, Unreachable, plain
from borgd.ui.source import Event, Reply, Sink

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # a Tuesday


def us(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)


def at(**delta: float) -> int:
    return us(NOW + timedelta(**delta))


def clock() -> datetime:
    return NOW


JOB_DEFAULTS: dict[str, Any] = {
    "type": "backup",
    "status": "succeeded",
    "trigger": "schedule",
    "profile": "home",
    "repository": "local",
    "schedule_id": 0,
    "parent_id": 0,
    "requeued_from": 0,
    "scheduled_for": 0,
    "created_at": 0,
    "queued_at": 0,
    "started_at": 0,
    "finished_at": 0,
    "skip_reason": "",
    "blocked_by": "",
    "message": "",
    "exit_code": -1,
    "archive": "",
    "progress": -1.0,
    "progress_message": "",
    "current_file": "",
    "nfiles": 0,
    "original_size": 0,
    "compressed_size": 0,
    "deduplicated_size": 0,
    "rate": 0.0,
    "eta": 0,
    "duration": 0.0,
}


def job(job_id: int, **fields: Any) -> dict[str, Any]:
    return {**JOB_DEFAULTS, "id": job_id, "created_at": at(hours=-30 + job_id), **fields}


def fixed_jobs() -> list[dict[str, Any]]:
    return [
        job(1, status="scheduled", schedule_id=1, scheduled_for=at(hours=2)),
        job(2, status="scheduled", type="check", schedule_id=2, scheduled_for=at(hours=17)),
        job(
            3,
            status="scheduled",
            profile="media",
            repository="nas",
            schedule_id=4,
            scheduled_for=at(minutes=-30),
            blocked_by="on-battery",
        ),
        job(
            4,
            status="running",
            profile="work",
            repository="usb",
            trigger="manual",
            started_at=at(minutes=-3),
            progress=0.42,
            progress_message="Backing up files",
            original_size=2_100_000_000,
            nfiles=1234,
            rate=12_500_000.0,
            eta=35_000_000,
        ),
        job(
            5,
            status="queued",
            type="prune",
            profile="work",
            repository="usb",
            trigger="chain",
            parent_id=4,
            queued_at=at(minutes=-3),
        ),
        job(
            6,
            started_at=at(hours=-2, minutes=-5),
            finished_at=at(hours=-2),
            archive="home-2026-12-01T08:00:00",
            nfiles=5000,
            original_size=51_000_000,
            deduplicated_size=1_200_000,
        ),
        job(
            7,
            status="failed",
            profile="media",
            repository="nas",
            finished_at=at(hours=-12),
            exit_code=13,
            message="Repository /srv/nas/borg does not exist (exit 13)",
        ),
        job(
            8,
            status="skipped",
            finished_at=at(hours=-26),
            skip_reason="paused",
            message="borgd was paused",
        ),
        job(
            9,
            status="cancelled",
            type="check",
            profile="work",
            repository="usb",
            trigger="manual",
            finished_at=at(hours=-27),
            message="cancelled by request (SIGTERM)",
        ),
        job(
            10,
            status="warning",
            profile="work",
            repository="usb",
            finished_at=at(hours=-28),
            archive="work-2026-11-30T06:00:00",
            message="source /home/me/gone is missing",
        ),
    ]


PROFILES = [
    {"name": "home", "repository": "local", "enabled": True, "overdue": False},
    {"name": "media", "repository": "nas", "enabled": True, "overdue": True},
    {"name": "work", "repository": "usb", "enabled": True, "overdue": False},
]
LAST_SUCCESS = {"home": at(hours=-2), "media": at(days=-10), "work": at(hours=-28)}

SCHEDULES = [
    {"id": 1, "profile": "home", "action": "backup", "enabled": True, "next_run": at(hours=2)},
    {"id": 2, "profile": "home", "action": "check", "enabled": True, "next_run": at(hours=17)},
    {"id": 3, "profile": "work", "action": "backup", "enabled": True, "next_run": at(hours=3)},
    {"id": 4, "profile": "media", "action": "backup", "enabled": True, "next_run": at(hours=16)},
]

REPOSITORIES = [
    {"name": "local", "url": "/srv/backup/local", "archives": 3, "size": 1_234_000_000},
    {"name": "nas", "url": "ssh://nas/./borg", "archives": 0, "size": 0},
    {"name": "usb", "url": "/media/usb/borg", "archives": 1, "size": 0},
]


def stats() -> dict[str, list[dict[str, Any]]]:
    sizes = [3_000_000, 1_100_000, 900_000, 15_000_000, 1_200_000, 800_000, 2_500_000, 1_200_000]
    home = [
        {
            "finished_at": at(days=-(len(sizes) - i) + 0.1, hours=-2),
            "archive": f"home-{i}",
            "profile": "home",
            "nfiles": 5000,
            "original_size": 51_000_000,
            "deduplicated_size": size,
            "duration": 1.5,
            "repository_size": 0,
        }
        for i, size in enumerate(sizes)
    ]
    work = [
        {
            "finished_at": at(hours=-28),
            "archive": "work-2026-11-30T06:00:00",
            "profile": "work",
            "nfiles": 80,
            "original_size": 9_000_000,
            "deduplicated_size": 4_000_000,
            "duration": 0.8,
            "repository_size": 456_000_000,
        }
    ]
    return {"local": home, "usb": work, "nas": []}


def upcoming(start: int, end: int) -> list[dict[str, Any]]:
    """home daily 12:00, work every 3 h, media daily 02:00 — held by a weekend blackout."""
    runs = []
    day0 = NOW.replace(hour=0)
    for d in range(32):
        day = day0 + timedelta(days=d)
        runs.append((us(day.replace(hour=12)), 1, "home", "backup", 0, ""))
        if d % 7 == 6:
            runs.append((us(day.replace(hour=3)), 2, "home", "check", 0, ""))
        if day.weekday() < 5:
            for h in range(0, 24, 3):
                runs.append((us(day.replace(hour=h)), 3, "work", "backup", 0, ""))
        deferred = us(day.replace(hour=8)) if day.weekday() >= 5 else 0
        runs.append(
            (us(day.replace(hour=2)), 4, "media", "backup", deferred, "blackout" * bool(deferred))
        )
    return [
        {
            "schedule_id": sid,
            "profile": profile,
            "action": action,
            "scheduled_for": when,
            "deferred_to": deferred,
            "blocked_by": blocked,
        }
        for when, sid, profile, action, deferred, blocked in sorted(runs)
        if start <= when < end
    ]


def archive(day: int, dedup: int, job_id: int) -> dict[str, Any]:
    start = datetime(2026, 11, 28, 8, 0, tzinfo=UTC) + timedelta(days=day)
    return {
        "name": f"home-{start:%Y-%m-%dT%H:%M:%S}",
        "id": f"{day:064x}",
        "repository": "local",
        "profile": "home",
        "start": us(start),
        "end": us(start + timedelta(minutes=2)),
        "nfiles": 5000,
        "original_size": 51_000_000,
        "compressed_size": 20_000_000,
        "deduplicated_size": dedup,
        "comment": "",
        "job_id": job_id,
        "checkpoint": False,
    }


ARCHIVES = {
    "local": [archive(3, 1_200_000, 6), archive(2, 2_500_000, 0), archive(1, 48_000_000, 0)],
    "usb": [],
    "nas": [],
}


def entry(path: str, kind: str = "-", size: int = 0) -> dict[str, Any]:
    return {
        "path": path,
        "type": kind,
        "size": size,
        "mtime": at(days=-3),
        "mode": 0o40755 if kind == "d" else 0o100644,
        "user": "me",
        "group": "me",
        "target": "",
    }


CONTENTS = {
    "": [entry("home", "d")],
    "home": [entry("home/me", "d")],
    "home/me": [
        entry("home/me/Documents", "d"),
        entry("home/me/notes.txt", size=2_048),
        entry("home/me/photo.jpg", size=3_400_000),
    ],
    "home/me/Documents": [entry("home/me/Documents/tax-2025.pdf", size=120_000)],
}

LOGS = {
    4: [
        "borgd: running borg create --log-json --progress --json /srv/backup/local::work-{now}",
        '{"type": "log_message", "levelname": "INFO", "name": "borg", "message": "Creating"}',
        '{"type": "archive_progress", "original_size": 100, "finished": false}',
        '{"type": "log_message", "levelname": "WARNING", "message": "x: [Errno 13]"}',
    ],
}


@dataclass
class FakeSource:
    """Answers like borgd from the lists above; `calls` records what the view asked."""

    jobs: list[dict[str, Any]] = field(default_factory=fixed_jobs)
    props: dict[str, Any] = field(
        default_factory=lambda: {
            "Version": "0.1.0",
            "Paused": False,
            "PausedUntil": 0,
            "ActiveJobs": 1,
            "NextRun": at(hours=2),
            "OnBattery": True,
            "Metered": False,
            "StoreHealth": "ok",
        }
    )
    logs: dict[int, list[str]] = field(default_factory=lambda: deepcopy(LOGS))
    calls: list[tuple[str, Any]] = field(default_factory=list)
    sink: Sink | None = None
    present: bool = True
    _closed: asyncio.Event | None = None

    async def open(self, sink: Sink) -> None:
        self.sink = sink
        self._closed = asyncio.Event()

    def emit(self, event: Event) -> None:
        assert self.sink is not None
        self.sink(event)

    async def call(
        self, member: str, signature: str = "", *args: Any, interface: str = "", tag: str = ""
    ) -> Any:
        values = [plain(a) for a in args]
        self.calls.append((member, values))
        if not self.present:
            raise Unreachable("borgd is not running")
        value = deepcopy(self.answer(member, values))
        if tag and self.sink is not None:
            self.sink(Reply(tag, deepcopy(value)))
        return value

    async def closed(self) -> None:
        assert self._closed is not None
        await self._closed.wait()

    def close(self) -> None:
        if self._closed is not None:
            self._closed.set()

    # -- answers --

    def answer(self, member: str, args: list[Any]) -> Any:
        handler: Callable[..., Any] | None = getattr(self, f"_{member}", None)
        if handler is None:
            raise CallFailed("org.freedesktop.DBus.Error.UnknownMethod", member)
        return handler(*args)

    def _GetAll(self, interface: str) -> dict[str, Any]:
        return self.props

    def _ListJobs(self, flt: dict[str, Any]) -> list[dict[str, Any]]:
        found = [
            j
            for j in self.jobs
            if all(
                not flt.get(k) or j[k] in ([flt[k]] if isinstance(flt[k], str) else flt[k])
                for k in ("profile", "repository", "type", "status")
            )
        ]
        found.sort(key=lambda j: -j["id"])
        return found[: flt["limit"]] if flt.get("limit") else found

    def _job(self, job_id: int) -> dict[str, Any]:
        for j in self.jobs:
            if j["id"] == job_id:
                return j
        raise CallFailed("org.borgd1.Error.NotFound", f"no job {job_id}")

    def _GetJob(self, job_id: int) -> dict[str, Any]:
        return self._job(job_id)

    def _CancelJob(self, job_id: int) -> None:
        j = self._job(job_id)
        if j["status"] not in ("scheduled", "queued", "running"):
            raise CallFailed("org.borgd1.Error.InvalidState", f"job {job_id} is {j['status']}")

    def _RequeueJob(self, job_id: int) -> int:
        j = self._job(job_id)
        if j["status"] not in ("failed", "cancelled", "interrupted", "skipped"):
            raise CallFailed("org.borgd1.Error.InvalidState", f"job {job_id} is {j['status']}")
        return 100

    def _StartJob(self, profile: str, kind: str, options: dict[str, Any]) -> int:
        return 101

    def _Pause(self, until: int) -> None:
        return None

    def _Resume(self) -> None:
        return None

    def _ReadJobLog(self, job_id: int, offset: int, max_lines: int) -> list[Any]:
        lines = self.logs.get(job_id, [])
        if offset >= len(lines):
            return [[], len(lines)]
        page = lines[offset : offset + max_lines]
        return [page, offset + len(page)]

    def _GetJobLog(self, job_id: int, tail: int) -> list[str]:
        return self.logs.get(job_id, [])[-tail:]

    def _ListProfiles(self) -> list[dict[str, Any]]:
        return [{**p, "last_success": LAST_SUCCESS[p["name"]]} for p in PROFILES]

    def _ListSchedules(self) -> list[dict[str, Any]]:
        return SCHEDULES

    def _ListRepositories(self) -> list[dict[str, Any]]:
        return [{**r, "last_backup": at(hours=-2)} for r in REPOSITORIES]

    def _RepositoryStats(self, repository: str, since: int) -> list[dict[str, Any]]:
        return [s for s in stats().get(repository, []) if s["finished_at"] >= since]

    def _Upcoming(self, start: int, end: int) -> list[dict[str, Any]]:
        return upcoming(start, end)

    def _ListArchives(self, repository: str, flt: dict[str, Any]) -> list[dict[str, Any]]:
        return ARCHIVES[repository]

    def _ListArchiveContents(
        self, repository: str, archive: str, path: str, options: dict[str, Any]
    ) -> list[dict[str, Any]]:
        found = CONTENTS.get(path, [])
        if options.get("pattern"):
            found = [e for e in found if fnmatch.fnmatch(e["path"], options["pattern"])]
        offset = options.get("offset", 0)
        return found[offset : offset + options.get("limit", 1000)]

    def _MountArchive(
        self, repository: str, archive: str, mountpoint: str, options: dict[str, Any]
    ) -> int:
        return 102

    def _UnmountArchive(self, job_id: int) -> None:
        return None

    def _DiffArchives(
        self, repository: str, a: str, b: str, options: dict[str, Any]
    ) -> list[dict[str, Any]]:
        return [
            {"path": "home/me/notes.txt", "changes": ["modified"], "size_delta": 120},
            {"path": "home/me/old.txt", "changes": ["removed"], "size_delta": -4000},
        ]
