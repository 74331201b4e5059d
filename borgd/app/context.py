"""What every use case shares: the store, the events, the clock, the executor, and
the look-ups that turn a name into a record or a clear `NotFound`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from borgd import errors
from borgd.clock import Clock
from borgd.core.jobs import JobType, Trigger
from borgd.core.records import Job, Profile, Repository
from borgd.events import Events
from borgd.execution.archive_reader import ArchiveReader
from borgd.execution.executor import Executor
from borgd.store import Store
from borgd.store.catalog import NotFound
from borgd.store.jobs import NoSuchJob
from borgd.system.disk_usage import DiskUsage

SecretSetter = Callable[[str, bytes], Awaitable[None]]
SecretDeleter = Callable[[str], Awaitable[None]]


class UseCaseContext:
    """State and look-ups; the use-case classes extend it, `Service` joins them."""

    def __init__(
        self,
        *,
        store: Store,
        events: Events,
        clock: Clock,
        executor: Executor,
        logs_dir: Path,
        set_secret: SecretSetter,
        delete_secret: SecretDeleter,
        profiles_changed: Callable[[], None] = lambda: None,
        repositories_changed: Callable[[], None] = lambda: None,
        disk_usage: DiskUsage | None = None,
        archive_reader: ArchiveReader | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self.executor = executor
        self.logs_dir = logs_dir
        self._set_secret = set_secret
        self._delete_secret = delete_secret
        # Schedules follow their profiles (the scheduler reconciles).
        self.on_profiles_changed = profiles_changed
        # Passphrases came or went: the keyring watcher re-checks what is locked.
        self.on_repositories_changed = repositories_changed
        # Local repositories' size on disk, measured off the loop (ListRepositories).
        self.disk_usage = disk_usage or DiskUsage()
        # borg's read-only archive commands (ListArchiveContents, DiffArchives).
        self.archive_reader = archive_reader

    def _repository(self, name: str) -> Repository:
        try:
            return self.store.catalog.repository(name)
        except NotFound as exc:
            raise errors.NotFound(f"no repository named {name!r}") from exc

    def _profile(self, name: str) -> Profile:
        try:
            return self.store.catalog.profile(name)
        except NotFound as exc:
            raise errors.NotFound(f"no profile named {name!r}") from exc

    def _job(self, job_id: int) -> Job:
        try:
            return self.store.jobs.get(job_id)
        except NoSuchJob as exc:
            raise errors.NotFound(f"no job with id {job_id}") from exc

    def _queue(
        self,
        job_type: JobType,
        *,
        profile: str,
        repository: str,
        repository_id: int,
        options: dict[str, Any],
        trigger: Trigger = Trigger.MANUAL,
        **extra: Any,
    ) -> Job:
        job = self.store.jobs.queue(
            now=self.clock(),
            type=job_type.value,
            trigger=trigger.value,
            profile=profile,
            repository=repository,
            repository_id=repository_id,
            options=options,
            **extra,
        )
        self.events.job_added(job)
        self.executor.wake()
        return job
