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
from borgd.notify.outbox import Outbox
from borgd.store import Store
from borgd.store.catalog import NotFound
from borgd.store.jobs import NoSuchJob
from borgd.system.disk_usage import DiskUsage

SecretSetter = Callable[[str, bytes], Awaitable[None]]
SecretDeleter = Callable[[str], Awaitable[None]]


async def _no_secrets(name: str, value: bytes) -> None:
    raise errors.Unavailable("this borgd keeps no notifier URLs")


async def _forget_nothing(name: str) -> None:
    return None


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
        outbox: Outbox | None = None,
        set_notifier_url: SecretSetter | None = None,
        delete_notifier_url: SecretDeleter | None = None,
        removable_device: Callable[[str], str] = lambda path: "",
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
        # Notifications: the outbox, and where notifier URLs (secrets) are kept.
        self.outbox = outbox
        self._set_notifier_url = set_notifier_url or _no_secrets
        self._delete_notifier_url = delete_notifier_url or _forget_nothing
        # The UUID of the removable disk (known to UDisks2) a local path lies on, or ''.
        self.removable_device = removable_device

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
