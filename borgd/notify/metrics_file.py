"""The metrics file (`borgd --metrics-file`): borgd's state for Prometheus, through
node_exporter's textfile collector.

A listener of the engine's events: a change only marks the file stale, and one
task writes it, at most once a second (a burst of changes is one write; the
last change is in the file about a second later at most).  The snapshot is
read from the store on the loop (bounded store calls); the file is written in
a thread with a time limit, so a path on a hung mount never stalls borgd, and
atomically (a temporary file in the same folder, fsync, rename), so a reader
never sees half a file.  A failed write is logged and tried again at the next
change (the end of a store outage is one); it never stops borgd.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import anyio
import structlog

from borgd import __version__
from borgd.clock import Clock
from borgd.core import metrics
from borgd.core.jobs import JobStatus, JobType
from borgd.core.overdue import is_overdue
from borgd.core.records import Job
from borgd.events import IgnoresEvents
from borgd.offloop import call_with_timeout
from borgd.store import Store
from borgd.store.health import OK
from borgd.system.disk_usage import DiskUsage

log = structlog.get_logger(__name__)

MIN_INTERVAL_S = 1.0
WRITE_TIMEOUT_S = 5.0
# What a job change must touch to change a metric: progress (several a second) does not.
JOB_KEYS = frozenset({"status", "scheduled_for", "finished_at"})
MODE = 0o644  # node_exporter reads it as another user; nothing in it is secret


def write_atomic(path: Path, text: str) -> None:
    """`text` as `path`, all or nothing: a reader sees the old file or the new one.

    The temporary name is random and created exclusively (the folder may be
    shared, like node_exporter's), and does not end in `.prom`: the collector
    never reads it.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), MODE)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename survives a crash once the folder is synced
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


class MetricsFile(IgnoresEvents):
    """An `Events` listener, and the task (`run`) that keeps the file current."""

    def __init__(
        self,
        *,
        path: Path,
        store: Store,
        clock: Clock,
        disk_usage: DiskUsage,
        version: str = __version__,
        min_interval: float = MIN_INTERVAL_S,
        write_timeout: float = WRITE_TIMEOUT_S,
    ) -> None:
        self.path = path
        self.store = store
        self.clock = clock
        self.disk_usage = disk_usage
        self.version = version
        self.min_interval = min_interval
        self.write_timeout = write_timeout
        self._stale = True  # the first write, at start-up
        self._wake: anyio.Event | None = None
        self._last_write = -min_interval
        self._writing = False  # a write's thread has not returned (a hung mount)
        self.writes = 0
        # A snapshot the store could not give is taken again once it is back.
        store.health.subscribe(lambda state: self.mark() if state == OK else None)

    def mark(self) -> None:
        """Something changed: write the file soon.  Never blocks."""
        self._stale = True
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        while True:
            if not self._stale:
                self._wake = anyio.Event()
                await self._wake.wait()
                self._wake = None
            delay = self._last_write + self.min_interval - anyio.current_time()
            if delay > 0:
                await anyio.sleep(delay)  # changes meanwhile go into this write
            self._stale = False
            await self.write()
            self._last_write = anyio.current_time()  # the interval counts from its end

    async def write(self) -> bool:
        """One snapshot into the file; False (and a warning) when that failed."""
        try:
            text = metrics.render(await self.snapshot())
        except Exception as exc:  # the store unavailable, say
            self._failed("metrics.snapshot_failed", exc)
            return False
        if self._writing:
            log.warning(
                "metrics.write_failed",
                path=str(self.path),
                reason="the previous write has not returned yet",
            )
            return False
        self._writing = True

        def work() -> None:
            try:
                write_atomic(self.path, text)
            finally:
                self._writing = False

        try:
            await call_with_timeout(work, self.write_timeout, "metrics-file")
        except Exception as exc:
            self._failed("metrics.write_failed", exc)
            return False
        self.writes += 1
        return True

    def _failed(self, event: str, exc: Exception) -> None:
        log.warning(event, path=str(self.path), reason=str(exc) or type(exc).__name__)

    async def snapshot(self) -> metrics.Snapshot:
        store, now = self.store, self.clock()
        repos = store.catalog.repositories()
        names = {r.id: r.name for r in repos}
        next_runs: dict[str, int] = {}
        for intent in store.jobs.with_status(JobStatus.SCHEDULED):
            when = next_runs.get(intent.profile)
            if intent.type is JobType.BACKUP and (when is None or intent.scheduled_for < when):
                next_runs[intent.profile] = intent.scheduled_for
        profiles = []
        newest: dict[int, Job] = {}  # per repository: the newest last success of its profiles
        successes = store.jobs.last_successes()
        for row in store.catalog.profiles():
            last = successes.get(row.name)
            last_success = last.finished_at if last else 0
            if last is not None:
                seen = newest.get(last.repository_id)
                if seen is None or last.finished_at > seen.finished_at:
                    newest[last.repository_id] = last
            profiles.append(
                metrics.ProfileState(
                    name=row.name,
                    repository=names.get(row.repository_id, ""),
                    overdue=is_overdue(int(row.max_age), last_success, row.created_at, now),
                    next_run=next_runs.get(row.name, 0),
                    last_backup=None if last is None else _last_backup(last),
                )
            )
        repositories = []
        for repo in repos:
            size = await self._size(repo.id, repo.url)
            if not size and repo.id in newest:  # remote, or not measured yet: borg's figure
                size = newest[repo.id].repository_size
            repositories.append(
                metrics.RepositoryState(
                    name=repo.name, size=size, archives=store.archives.count(repo.id)
                )
            )
        jobs = tuple(
            metrics.JobCount(type=t, status=s, count=n)
            for (t, s), n in store.jobs.counts().items()
        )
        return metrics.Snapshot(
            version=self.version,
            profiles=tuple(profiles),
            repositories=tuple(repositories),
            jobs=jobs,
        )

    async def _size(self, repository_id: int, url: str) -> int:
        """A local repository's size on disk, as ListRepositories measures it."""
        as_of = max(self.store.jobs.last_finished(repository_id).values())
        return await self.disk_usage.repository(url, as_of)

    # -- Events listener ------------------------------------------------------------

    def job_added(self, job: Job) -> None:
        self.mark()

    def job_changed(self, job_id: int, changed: dict[str, Any], job: Job) -> None:
        if JOB_KEYS & changed.keys():
            self.mark()

    def job_removed(self, job_id: int) -> None:
        self.mark()

    def profile_changed(self, name: str, changed: dict[str, Any]) -> None:
        self.mark()  # overdue flipped, or the profile was edited


def _last_backup(job: Job) -> metrics.LastBackup:
    return metrics.LastBackup(
        finished_at=job.finished_at,
        duration=job.duration,
        original_size=job.original_size,
        compressed_size=job.compressed_size,
        deduplicated_size=job.deduplicated_size,
        nfiles=job.nfiles,
    )
