"""The use cases behind every public method: validate, change the store, tell listeners.

The D-Bus adapter only converts types and maps errors; `borgctl apply` and
the tests reach the same behaviour through D-Bus.  Every method validates
all of its arguments before it changes anything.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import structlog

from borgd import errors
from borgd.clock import Clock
from borgd.core import borg_argv
from borgd.core.config import JobSpec, job_options_from, local_path
from borgd.core.jobs import REQUEUEABLE, TERMINAL, IllegalTransition, JobStatus, JobType, Trigger
from borgd.core.overdue import is_overdue
from borgd.core.records import Job, Profile, Repository
from borgd.core.validation import (
    LIST_FILTER,
    PROFILE_OPTIONS,
    PROFILE_UPDATE_OPTIONS,
    REPOSITORY_OPTIONS,
    START_OPTIONS,
    InvalidArgument,
    Variant,
    check_absolute_path,
    check_id,
    check_job_type,
    check_name,
    check_options,
    check_statuses,
    check_types,
    check_url,
)
from borgd.events import Events
from borgd.execution import joblog
from borgd.execution.executor import Executor
from borgd.store import Store
from borgd.store.catalog import Conflict, NotFound
from borgd.store.jobs import JobFilter, NoSuchJob, StaleState

log = structlog.get_logger(__name__)

DEFAULT_TEMPLATE = "{profile}-{now:%Y-%m-%dT%H:%M:%S}"
MAX_SOURCES = 1000
SecretSetter = Callable[[str, bytes], Awaitable[None]]
SecretDeleter = Callable[[str], Awaitable[None]]
_Read = TypeVar("_Read")


def canonical_url(url: str) -> str:
    """One spelling per repository, so two profiles on it share one lane."""
    if url.startswith("file://"):
        url = url[len("file://") :]
    if url.startswith("/"):
        url = "/" + "/".join(p for p in url.split("/") if p and p != ".")
    return url.rstrip("/") if len(url) > 1 else url


class Service:
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

    # -- repositories ---------------------------------------------------------

    async def add_repository(self, name: str, url: str, options: Mapping[str, Variant]) -> int:
        check_name("repository", name)
        url = canonical_url(check_url(url))
        opts = check_options("repository", REPOSITORY_OPTIONS, options)
        encryption = opts.get("encryption", "repokey-blake2")
        passphrase = opts.get("passphrase")
        passcommand = opts.get("passcommand") or None
        if passphrase is not None and passcommand is not None:
            raise InvalidArgument("give either passphrase or passcommand, not both")
        if passphrase == "":
            raise InvalidArgument("the passphrase must not be empty")
        if opts.get("init") and encryption != "none" and passphrase is None and not passcommand:
            raise InvalidArgument(
                f"encryption {encryption!r} needs a passphrase or a passcommand "
                "(or use encryption 'none')"
            )
        if any(r.name == name or r.url == url for r in self.store.catalog.repositories()):
            raise errors.AlreadyExists(f"a repository named {name!r} or at {url!r} exists already")
        values = {
            "name": name,
            "url": url,
            "encryption": encryption,
            "ssh_command": opts.get("ssh_command") or None,
            "lock_wait": opts.get("lock_wait"),
            "passcommand": passcommand,
            "has_passphrase": passphrase is not None,
            "created_at": self.clock(),
        }
        try:
            repo_id = self.store.catalog.add_repository(values)
        except Conflict as exc:
            raise errors.AlreadyExists(str(exc)) from exc
        if passphrase is not None:
            try:
                await self._set_secret(name, passphrase.encode())
            except Exception as exc:
                self.store.catalog.remove_repository(repo_id)
                raise errors.Unavailable(f"cannot store the passphrase: {exc}") from exc
        log.info("repository.added", repository=name, init=bool(opts.get("init")))
        self.on_repositories_changed()
        if opts.get("init"):
            self._queue(
                JobType.INIT, profile="", repository=name, repository_id=repo_id, options={}
            )
        return repo_id

    async def update_repository(self, name: str, options: Mapping[str, Variant]) -> None:
        check_name("repository", name)
        opts = check_options("repository", REPOSITORY_OPTIONS, options)
        row = self._repository(name)
        if opts.pop("init", False):
            raise InvalidArgument(
                "'init' is only for AddRepository; use StartJob(profile, 'init')"
            )
        passphrase = opts.pop("passphrase", None)
        values: dict[str, Any] = {}
        for key in ("encryption", "ssh_command", "lock_wait"):
            if key in opts:
                values[key] = opts[key] if opts[key] != "" else None
        if "passcommand" in opts:
            values["passcommand"] = opts["passcommand"] or None
        if passphrase is not None:
            if passphrase == "":
                await self._delete_secret(name)
                values["has_passphrase"] = False
            else:
                try:
                    await self._set_secret(name, passphrase.encode())
                except Exception as exc:
                    raise errors.Unavailable(f"cannot store the passphrase: {exc}") from exc
                values["has_passphrase"] = True
        self.store.catalog.update_repository(row.id, values)
        self.on_repositories_changed()

    async def remove_repository(self, name: str) -> None:
        check_name("repository", name)
        row = self._repository(name)
        users = [p.name for p in self.store.catalog.profiles(repository_id=row.id)]
        if users:
            raise errors.InvalidState(
                f"repository {name!r} is used by profile(s) {', '.join(users)}: remove them first"
            )
        if any(j.repository_id == row.id for j in self.store.jobs.live()):
            raise errors.InvalidState(f"repository {name!r} has queued or running jobs")
        self.store.catalog.remove_repository(row.id)
        if row.has_passphrase:
            await self._delete_secret(name)
        self.on_repositories_changed()

    def list_repositories(self) -> list[dict[str, Any]]:
        return [public_repository(r) for r in self.store.catalog.repositories()]

    def _repository(self, name: str) -> Repository:
        try:
            return self.store.catalog.repository(name)
        except NotFound as exc:
            raise errors.NotFound(f"no repository named {name!r}") from exc

    # -- profiles ---------------------------------------------------------

    def _check_sources(self, sources: object) -> list[str]:
        if not isinstance(sources, list) or not sources:
            raise InvalidArgument("a profile needs at least one source path")
        if len(sources) > MAX_SOURCES:
            raise InvalidArgument(f"a profile takes at most {MAX_SOURCES} sources")
        return [check_absolute_path("source path", s) for s in sources]

    def _profile_values(self, opts: dict[str, Any], name: str) -> dict[str, Any]:
        values = dict(opts)
        if "archive_template" in values:
            template = values["archive_template"] or DEFAULT_TEMPLATE
            try:
                borg_argv.validate_archive_template(template)
            except ValueError as exc:
                raise InvalidArgument(f"archive_template: {exc}") from exc
            values["archive_template"] = template
        for key in ("compression", "keep_within", "pre_command", "post_command"):
            if key in values and values[key] == "":
                values[key] = None
        return values

    def add_profile(
        self, name: str, repository: str, sources: list[str], options: Mapping[str, Variant]
    ) -> int:
        check_name("profile", name)
        check_name("repository", repository)
        paths = self._check_sources(sources)
        opts = check_options("profile", PROFILE_OPTIONS, options)
        opts.setdefault("archive_template", DEFAULT_TEMPLATE)
        values = self._profile_values(opts, name)
        repo = self._repository(repository)
        values.update(name=name, repository_id=repo.id, sources=paths, created_at=self.clock())
        values.setdefault("excludes", [])
        try:
            profile_id = self.store.catalog.add_profile(values)
        except Conflict as exc:
            raise errors.AlreadyExists(f"a profile named {name!r} exists already") from exc
        self.on_profiles_changed()
        return profile_id

    def update_profile(self, name: str, options: Mapping[str, Variant]) -> None:
        check_name("profile", name)
        opts = check_options("profile", PROFILE_UPDATE_OPTIONS, options)
        row = self._profile(name)
        if "sources" in opts:
            opts["sources"] = self._check_sources(opts["sources"])
        if "repository" in opts:
            opts["repository_id"] = self._repository(
                check_name("repository", opts.pop("repository"))
            ).id
        values = self._profile_values(opts, name)
        self.store.catalog.update_profile(row.id, values)
        changed = {k: v for k, v in values.items() if k != "repository_id"}
        self.events.profile_changed(name, changed)
        self.on_profiles_changed()

    def remove_profile(self, name: str) -> None:
        check_name("profile", name)
        row = self._profile(name)
        if any(
            j.profile == name and j.status in ("queued", "running") for j in self.store.jobs.live()
        ):
            raise errors.InvalidState(f"profile {name!r} has queued or running jobs; cancel them")
        self.store.catalog.remove_profile(row.id)
        self.on_profiles_changed()

    def list_profiles(self) -> list[dict[str, Any]]:
        repos = {r.id: r.name for r in self.store.catalog.repositories()}
        return [
            self.public_profile(p, repos[p.repository_id]) for p in self.store.catalog.profiles()
        ]

    def public_profile(self, row: Profile, repository: str) -> dict[str, Any]:
        last = self.store.jobs.last_success(row.name)
        last_success = int(last.finished_at) if last else 0
        overdue = is_overdue(int(row.max_age), last_success, row.created_at, self.clock())
        out = {
            k: getattr(row, k)
            for k in (
                "id",
                "name",
                "sources",
                "excludes",
                "compression",
                "archive_template",
                "keep_within",
                "keep_hourly",
                "keep_daily",
                "keep_weekly",
                "keep_monthly",
                "keep_yearly",
                "prune_after",
                "compact_after",
                "check_every",
                "pre_command",
                "post_command",
                "enabled",
                "max_age",
                "inhibit_sleep",
                "one_file_system",
            )
        }
        out.update(repository=repository, last_success=last_success, overdue=overdue)
        return {k: ("" if v is None else v) for k, v in out.items()}

    def _profile(self, name: str) -> Profile:
        try:
            return self.store.catalog.profile(name)
        except NotFound as exc:
            raise errors.NotFound(f"no profile named {name!r}") from exc

    # -- jobs ---------------------------------------------------------------

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

    def start_job(self, profile: str, job_type: str, options: Mapping[str, Variant]) -> int:
        check_name("profile", profile)
        jtype = check_job_type(job_type)
        opts = check_options("StartJob", START_OPTIONS, options)
        allowed_keys = {
            JobType.RESTORE: {"archive", "destination", "paths"},
            JobType.CHECK: {"repository_only", "archives_only", "max_duration", "verify_data"},
        }.get(jtype, set())
        stray = set(opts) - allowed_keys
        if stray:
            raise InvalidArgument(
                f"option(s) {', '.join(sorted(stray))} do not apply to a {jtype.value} job"
            )
        prow = self._profile(profile)
        rrow = self.store.catalog.repository_by_id(prow.repository_id)
        if jtype is JobType.RESTORE:
            if "destination" not in opts:
                raise InvalidArgument("a restore needs 'destination', an absolute folder")
            dest = canonical_url(opts["destination"])
            opts["destination"] = dest
        # Build the command line once now so a bad combination fails here, not later.
        spec = JobSpec(
            type=jtype,
            repo=rrow.config(),
            profile=prow.config(rrow.name),
            options=job_options_from(opts),
            archive_name="check" if jtype is JobType.BACKUP else None,
        )
        if jtype is JobType.RESTORE and not spec.options.archive:
            spec = JobSpec(
                type=spec.type,
                repo=spec.repo,
                profile=spec.profile,
                options=job_options_from({**opts, "archive": "latest"}),
            )
        try:
            borg_argv.build_argv(spec)
            if jtype is JobType.RESTORE:
                borg_argv.extract_cwd(spec)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        job = self._queue(
            jtype,
            profile=profile,
            repository=rrow.name,
            repository_id=rrow.id,
            options=opts,
        )
        return int(job.id)

    def cancel_job(self, job_id: int) -> None:
        check_id("job id", job_id)
        row = self._job(job_id)
        status = JobStatus(row.status)
        if status in (JobStatus.SCHEDULED, JobStatus.QUEUED):
            try:
                new = self.store.jobs.transition(
                    job_id,
                    JobStatus.CANCELLED,
                    expect=[status],
                    finished_at=self.clock(),
                    message="cancelled by request",
                )
            except (StaleState, IllegalTransition):
                return self.cancel_job(job_id)  # it moved on meanwhile: cancel what it is now
            self.events.job_changed(
                job_id, {"status": "cancelled", "finished_at": new.finished_at}, new
            )
            return None
        if status is JobStatus.RUNNING:
            if not self.executor.cancel_running(job_id):
                raise errors.InvalidState(f"job {job_id} is finishing; try again")
            return None
        raise errors.InvalidState(f"job {job_id} is {status.value} and cannot be cancelled")

    def requeue_job(self, job_id: int) -> int:
        check_id("job id", job_id)
        row = self._job(job_id)
        if JobStatus(row.status) not in REQUEUEABLE:
            raise errors.InvalidState(
                f"job {job_id} is {row.status}; only failed, cancelled, interrupted or "
                "skipped jobs can be requeued"
            )
        if row.profile:
            self._profile(row.profile)
        try:
            repo = self.store.catalog.repository_by_id(row.repository_id)
        except NotFound as exc:
            raise errors.NotFound(f"the repository of job {job_id} no longer exists") from exc
        job = self._queue(
            JobType(row.type),
            profile=row.profile,
            repository=repo.name,
            repository_id=repo.id,
            options=row.options,
            trigger=Trigger.REQUEUE,
            requeued_from=job_id,
            schedule_id=row.schedule_id,
        )
        return int(job.id)

    def get_job(self, job_id: int) -> Job:
        check_id("job id", job_id)
        return self._job(job_id)

    def _job(self, job_id: int) -> Job:
        try:
            return self.store.jobs.get(job_id)
        except NoSuchJob as exc:
            raise errors.NotFound(f"no job with id {job_id}") from exc

    def list_jobs(self, flt: Mapping[str, Variant]) -> list[Job]:
        opts = check_options("ListJobs filter", LIST_FILTER, flt)
        return self.store.jobs.query(
            JobFilter(
                profiles=tuple(opts.get("profile", ())),
                repositories=tuple(opts.get("repository", ())),
                types=tuple(check_types(opts.get("type", []))),
                statuses=tuple(check_statuses(opts.get("status", []))),
                since=opts.get("since", 0),
                until=opts.get("until", 0),
                limit=opts.get("limit", 0),
                offset=opts.get("offset", 0),
            )
        )

    # -- job logs: bounded per call, read off the event loop ------------------

    async def job_log(self, job_id: int, tail: int) -> list[str]:
        """The last `tail` lines; 0 or more than joblog.MAX_LINES give the last MAX_LINES."""
        row = self.get_job(job_id)
        if not row.log_path:
            return []  # never ran
        finished = row.status in TERMINAL
        read = functools.partial(joblog.tail, Path(row.log_path), tail, finished=finished)
        return await _read_log(job_id, read)

    async def read_job_log(self, job_id: int, offset: int, max_lines: int) -> joblog.Page:
        """Whole lines from byte `offset`, and where to go on (joblog.read_page).

        A finished job's log is complete: the executor writes its last line before
        it records the outcome, and closes (flushes) the log in the same event-loop
        step, before any call can see the new status.  So the last line is handed
        out even without a newline, and a client that saw the job finished and
        reads on to the end has every line.
        """
        row = self.get_job(job_id)
        if not row.log_path:
            return joblog.Page([], 0)
        finished = row.status in TERMINAL
        read = functools.partial(
            joblog.read_page, Path(row.log_path), offset, max_lines, finished=finished
        )
        return await _read_log(job_id, read)


async def _read_log(job_id: int, read: Callable[[], _Read]) -> _Read:
    try:
        return await anyio.to_thread.run_sync(read)
    except OSError as exc:
        raise errors.Unavailable(f"the log of job {job_id} cannot be read: {exc}") from exc


def public_repository(row: Repository) -> dict[str, Any]:
    """A repository as clients see it: never a secret, not even the passcommand's text."""
    return {
        "id": row.id,
        "name": row.name,
        "url": row.url,
        "encryption": row.encryption,
        "ssh_command": row.ssh_command or "",
        "lock_wait": row.lock_wait or 0,
        "has_passphrase": bool(row.has_passphrase),
        "has_passcommand": bool(row.passcommand),
        "remote": local_path(row.url) is None,
    }
