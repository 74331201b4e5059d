"""Lanes: one per repository, run in parallel up to a global limit.

The executor takes `queued` rows from the store in lane order (chain jobs
first, then by queue time), moves each to `running` with a compare-and-set
(the store's unique index makes a second running job per repository
impossible), runs hooks and borg through the runner, and writes the outcome.
It never decides *when* something is due: the scheduler queues jobs.

A lane is keyed by the repository's row, and a repository row by its
canonical URL (`service.canonical_url`): two profiles on one repository
share one lane.

One job, in order:

1. ``running`` (compare-and-set; a lost race means someone else moved it);
2. a backup's ``pre_command`` (exit 75: ``skipped/precondition``; any other
   failure: ``failed`` without running borg);
3. a backup's post-backup tasks (prune, compact, check every N backups) are
   queued as ``chain`` jobs, so they show while the backup runs;
4. borg, with progress published at most once a second and stored at most
   every two seconds;
5. the ``post_command``, after every outcome, with that outcome in its
   environment (its failure is added to the job's message); only then the job
   leaves ``running``, so a client that sees the final status sees all of it;
6. the chain is settled: it stays queued after a succeeded or warning backup
   and runs next in the lane, it is ``skipped/parent-failed`` after a failed or
   interrupted one and ``cancelled`` with a cancelled one.

Stopping (cancel, shutdown) signals the process that runs (borg gets SIGINT
for ``create``, which writes a checkpoint, SIGTERM otherwise; SIGKILL follows
after bounded waits) and lets the run end normally, so every line borg prints
on its way out reaches the log.  Between processes the job's cancel scope is
cancelled instead.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shlex
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
import anyio.abc
import structlog

from borgd.clock import Clock
from borgd.core import archives, borg_argv, borg_output, exit_codes
from borgd.core.config import JobSpec, ProfileConfig, RepoConfig, job_options_from
from borgd.core.jobs import IllegalTransition, JobStatus, JobType, SkipReason
from borgd.core.progress import check_phases
from borgd.core.records import Job, Profile
from borgd.events import Events
from borgd.execution import joblog
from borgd.execution.borg_tool import BorgNotFound, BorgTool, FixedBorg
from borgd.execution.output import BorgOutput, progress_fields
from borgd.execution.runner import (
    RunningProcess,
    RunResult,
    StopPolicy,
    request_stop,
    run_process,
    stop_process,
)
from borgd.offloop import call_with_timeout
from borgd.store import Store
from borgd.store.catalog import NotFound as CatalogNotFound
from borgd.store.engine import StoreUnavailable, store_cause
from borgd.store.jobs import NoSuchJob, StaleState

log = structlog.get_logger(__name__)

SOURCES_TIMEOUT_S = 5.0  # looking whether a backup's sources exist
FQDN_TIMEOUT_S = 5.0  # a DNS lookup for {fqdn} in an archive name
HOOK_TIMEOUT = 600.0  # seconds a pre_command or post_command may run
SHUTDOWN_HOOK_TIMEOUT = 10.0  # a post_command while borgd stops
SHUTDOWN_WAIT = 25.0
PRECONDITION_NOT_NOW = 75  # borgmatic's and sysexits' EX_TEMPFAIL: "not now"
TICK = 0.25  # seconds between looks at a running job's progress

T = TypeVar("T")
PassphraseSource = Callable[[RepoConfig], Awaitable[bytes | None]]
SleepBlocker = Callable[[str], Any]  # an async context manager factory

CANCEL = "cancel"
SHUTDOWN = "shutdown"
# Someone else settled the job first (a cancel, a race): the write is moot, not an error.
LOST_RACE = (StaleState, IllegalTransition, NoSuchJob)


@dataclass
class ActiveRun:
    job_id: int
    repository_id: int
    job_type: JobType
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    handle: RunningProcess | None = None  # the hook or borg process running now
    last: RunningProcess | None = None  # the last process started (what a stop signalled)
    # A process is being started: a stop now is served by `on_started` (it signals the
    # process) instead of cancelling the job's scope, so the outcome has its exit code.
    starting: bool = False
    phase: str = "start"  # start | pre | borg | post
    stop_reason: str | None = None  # CANCEL | SHUTDOWN
    chain: list[int] = field(default_factory=list)  # chain jobs queued by this backup
    check_due: bool = False  # this backup queued the "check every N backups" job
    # What the job learnt about the repository's archives, for the archive cache:
    listed: list[archives.ArchiveInfo] | None = None  # a `list` job's archive set
    made: archives.ArchiveInfo | None = None  # the archive a backup made
    checkpoint: bool = False  # a stopped backup left a checkpoint archive


@dataclass(frozen=True)
class Final:
    """A job's outcome, written when everything (post_command included) is done."""

    status: JobStatus
    fields: dict[str, Any]


PHASE_NAMES = {
    "start": "before borg started",
    "pre": "during the pre_command",
    "borg": "while borg ran",
}


def stop_message(run: ActiveRun, exit_code: int | None) -> str:
    """Who stopped the job and how: "cancelled by request while borg ran (sent SIGINT;
    borg exited 2)".  borg's own last words stay in the log, never in the reason."""
    who = "interrupted: borgd stopped" if run.stop_reason == SHUTDOWN else "cancelled by request"
    phase = run.phase
    process = run.last
    if phase == "borg" and (process is None or not process.signals):
        phase = "start"  # stopped between processes, before borg was started
    text = f"{who} {PHASE_NAMES.get(phase, 'while it ran')}"
    if process is not None and process.signals and phase in ("pre", "borg"):
        what = "borg" if phase == "borg" else "the pre_command"
        how = f"sent {', then '.join(dict.fromkeys(process.signals))}"
        if exit_code is not None:
            how += f"; {what} exited {exit_code}"
        text += f" ({how})"
    if phase in ("start", "pre"):
        text += "; borg did not run"
    return text


def _failed(message: str, **fields: Any) -> Final:
    return Final(JobStatus.FAILED, {"message": message, **fields})


class BorgFinder(Protocol):
    async def find(self) -> BorgTool: ...


class ChainPolicy(Protocol):
    """What a backup chains and what becomes of it (`borgd.app.chains.Chains`)."""

    def enqueue(
        self, backup: Job, profile: ProfileConfig, prow: Profile, queued: list[int]
    ) -> bool: ...

    def settle(
        self,
        backup: Job,
        profile: ProfileConfig,
        status: JobStatus,
        queued: list[int],
        check_due: bool,
    ) -> None: ...


class ArchivePolicy(Protocol):
    """What a job's end means for the archive cache (`borgd.app.archive_cache`)."""

    def settle(self, job: Job, status: JobStatus, run: ActiveRun) -> None: ...


class _NoArchiveCache:
    def settle(self, job: Job, status: JobStatus, run: ActiveRun) -> None:
        return None


class Executor:
    def __init__(
        self,
        *,
        store: Store,
        events: Events,
        clock: Clock,
        borg: BorgFinder | BorgTool,
        chains: ChainPolicy,
        logs_dir: Path,
        passphrase: PassphraseSource,
        max_parallel: int = 2,
        block_sleep: SleepBlocker | None = None,
        base_env: dict[str, str] | None = None,
        hook_timeout: float = HOOK_TIMEOUT,
        after_job: Callable[[], None] = lambda: None,
        active_changed: Callable[[int], None] = lambda n: None,
        archive_cache: ArchivePolicy | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self.chains = chains
        self.archive_cache: ArchivePolicy = archive_cache or _NoArchiveCache()
        # Looked up for every job (installed or upgraded after start: no restart).
        self.borg: BorgFinder = FixedBorg(borg) if isinstance(borg, BorgTool) else borg
        self.logs_dir = logs_dir
        self.passphrase = passphrase
        self.max_parallel = max_parallel
        self.block_sleep = block_sleep
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.hook_timeout = hook_timeout
        self.after_job = after_job  # retention: --keep-jobs holds after every job
        self.active: dict[int, ActiveRun] = {}
        self._wake = anyio.Event()
        self._tg: anyio.abc.TaskGroup | None = None
        self._accepting = True
        self.on_active_changed = active_changed  # the ActiveJobs property

    # -- control ------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            while True:
                try:
                    self._dispatch(tg)
                except StoreUnavailable:  # locked elsewhere, disk full: the store's health tells
                    tg.start_soon(self._wake_when_store_recovers)
                await self._wake.wait()
                self._wake = anyio.Event()

    async def _wake_when_store_recovers(self) -> None:
        await self.store.health.wait_recovered()
        self.wake()

    async def _retrying(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` (a store step before or after borg), again whenever the store
        was unavailable, once it recovers: a job waits for its store, it never fails
        for it.  A cancel or shutdown ends the wait through the job's scope."""
        while True:
            try:
                return fn(*args)
            except StoreUnavailable:
                await self.store.health.wait_recovered()

    def _dispatch(self, tg: anyio.abc.TaskGroup) -> None:
        if not self._accepting:
            return
        busy = {run.repository_id: run.job_type for run in self.active.values()}
        for row in self.store.jobs.queued_in_lane_order():
            # A mount holds its lane for as long as it is mounted, not a global slot.
            working = [r for r in self.active.values() if r.job_type is not JobType.MOUNT]
            if len(working) >= self.max_parallel:
                break
            if row.repository_id in busy:
                if busy[row.repository_id] is JobType.MOUNT:
                    self._blocked(row, "archives-mounted")
                continue
            busy[row.repository_id] = JobType(row.type)
            run = ActiveRun(row.id, row.repository_id, JobType(row.type))
            self.active[row.id] = run
            tg.start_soon(self._run, row, run)
        self.on_active_changed(len(self.active))

    def _blocked(self, row: Job, reason: str) -> None:
        """Say why a queued job waits (once)."""
        if row.blocked_by == reason:
            return
        self.store.jobs.update_fields(row.id, blocked_by=reason)
        self.events.job_changed(row.id, {"blocked_by": reason}, row.but(blocked_by=reason))

    def cancel_running(self, job_id: int) -> bool:
        """Ask a running job to stop; returns False when it is not running here."""
        run = self.active.get(job_id)
        if run is None:
            return False
        self._stop(run, CANCEL)
        return True

    def _stop(self, run: ActiveRun, reason: str) -> None:
        if run.phase == "post":
            # borg is done and its outcome known: only the post_command runs, then the
            # outcome is written.  A cancel stops the hook (the outcome stays borg's, the
            # message says so); a shutdown gives it a bounded time.
            if run.handle is not None and self._tg is not None:
                if reason == CANCEL:
                    request_stop(run.handle, self._tg)
                else:
                    self._tg.start_soon(_stop_later, run.handle, SHUTDOWN_HOOK_TIMEOUT)
            if reason == SHUTDOWN:
                run.stop_reason = run.stop_reason or reason
            return
        run.stop_reason = run.stop_reason or reason
        if run.handle is not None and self._tg is not None:
            request_stop(run.handle, self._tg)
        elif not run.starting:
            run.scope.cancel()

    def kill_now(self) -> None:
        """A second SIGTERM while stopping: SIGKILL every running process at once.
        The jobs are still recorded ``interrupted``."""
        for run in list(self.active.values()):
            run.stop_reason = run.stop_reason or SHUTDOWN
            if run.handle is not None:
                run.handle.stop_requested = True
                run.handle.send(signal.SIGKILL)
            else:
                run.scope.cancel()

    async def shutdown(self) -> None:
        """Stop taking work; interrupt running borg (a create writes a checkpoint)."""
        self._accepting = False
        for run in list(self.active.values()):
            self._stop(run, SHUTDOWN)
        with anyio.move_on_after(SHUTDOWN_WAIT):
            while self.active:
                await anyio.sleep(0.05)

    # -- one job ------------------------------------------------------------

    def _change(self, job_id: int, dst: JobStatus, **fields: Any) -> Job:
        row = self.store.jobs.transition(job_id, dst, **fields)
        changed = {"status": dst.value, **fields}
        self.events.job_changed(job_id, changed, row)
        return row

    def _update(self, job_id: int, row: Job, **fields: Any) -> None:
        self.store.jobs.update_fields(job_id, **fields)
        self.events.job_changed(job_id, fields, row.but(**fields))

    async def _run(self, row: Job, run: ActiveRun) -> None:
        job_id = row.id
        structlog.contextvars.bind_contextvars(job_id=job_id)
        try:
            await self._execute(row, run)
        except Exception as exc:
            log.exception("job.internal_error")
            try:
                self._change(
                    job_id,
                    JobStatus.FAILED,
                    finished_at=self.clock(),
                    message=f"internal error in borgd: {exc}",
                )
            except LOST_RACE:
                pass
            except Exception:
                log.exception("job.cannot_record_failure")
        finally:
            structlog.contextvars.unbind_contextvars("job_id")
            self.active.pop(job_id, None)
            self.on_active_changed(len(self.active))
            self.after_job()
            self.wake()

    def _configs(self, row: Job) -> tuple[RepoConfig, ProfileConfig | None, Profile | None]:
        repo = self.store.catalog.repository_by_id(row.repository_id).config()
        if not row.profile:
            return repo, None, None
        profile = self.store.catalog.profile(row.profile)
        return repo, profile.config(repo.name), profile

    async def _execute(self, row: Job, run: ActiveRun) -> None:
        job_id = row.id
        job_type = JobType(row.type)
        path = joblog.log_path(self.logs_dir, job_id)
        try:
            repo, profile, prow = self._configs(row)
        except CatalogNotFound as exc:
            self._change(
                job_id,
                JobStatus.FAILED,
                expect=[JobStatus.QUEUED],
                finished_at=self.clock(),
                message=f"cannot run: {exc.args[0]}",
            )
            return
        try:
            row = self._change(
                job_id,
                JobStatus.RUNNING,
                started_at=self.clock(),
                log_path=str(path),
                **({"blocked_by": ""} if row.blocked_by else {}),
            )
        except LOST_RACE:
            return  # cancelled meanwhile, or the repository is busy: nothing runs twice
        except StoreUnavailable:
            # The store cannot take the change (locked, disk full): the job stays queued
            # and is tried again once the store takes writes again.
            await self.store.health.wait_recovered()
            return
        log.info("job.started", type=job_type.value, profile=row.profile, repository=repo.name)
        jlog = joblog.JobLog(path)
        try:
            with run.scope:
                await self._execute_running(row, run, repo, profile, prow, jlog)
        finally:
            jlog.close()

    async def _execute_running(
        self,
        row: Job,
        run: ActiveRun,
        repo: RepoConfig,
        profile: ProfileConfig | None,
        prow: Profile | None,
        jlog: joblog.JobLog,
    ) -> None:
        hooks = profile is not None and run.job_type is JobType.BACKUP
        final: Final | None = None
        try:
            final = await self._body(row, run, repo, profile, prow, jlog)
        except StoreUnavailable as exc:  # a store step outside `_retrying`
            final = _failed(f"borgd could not record the job in its store: {store_cause(exc)}")
        except Exception as exc:
            log.exception("job.internal_error")
            final = _failed(f"internal error in borgd: {exc}")
        finally:
            with anyio.CancelScope(shield=True):
                if final is None:  # cancelled between processes
                    final = self._stopped(run)
                run.phase = "post"
                run.handle = None
                status = JobStatus.FAILED if final is None else final.status
                if hooks and profile is not None and profile.post_command:
                    try:
                        await self._post_hook(row, run, profile.post_command, final, jlog)
                    except Exception:  # never at the cost of recording the outcome
                        log.exception("hook.post_command_error")
                if final is not None:
                    jlog.write(
                        f"{final.status.value}: {final.fields.get('message', '')}",
                        prefix="borgd: ",
                    )
                    jlog.flush()  # whoever sees the final status can read the whole log
                    await self._record(row.id, final)
                if run.job_type is JobType.BACKUP and profile is not None and prow is not None:
                    await self._until_stored(
                        "chain",
                        lambda: self.chains.settle(row, profile, status, run.chain, run.check_due),
                    )
                await self._until_stored(
                    "archives", lambda: self.archive_cache.settle(row, status, run)
                )

    async def _body(
        self,
        row: Job,
        run: ActiveRun,
        repo: RepoConfig,
        profile: ProfileConfig | None,
        prow: Profile | None,
        jlog: joblog.JobLog,
    ) -> Final:
        if run.job_type is JobType.BACKUP and profile is not None and profile.pre_command:
            run.phase = "pre"
            result = await self._hook("pre_command", profile.pre_command, row, jlog, run=run)
            rc = result.returncode
            stopped = self._stopped(run, rc) if result.stopped else None
            if stopped is not None:
                return stopped
            if result.timed_out:
                return _failed(
                    f"pre_command timed out after {self.hook_timeout:g} s and was stopped; "
                    "borg did not run",
                    exit_code=rc,
                )
            if rc == PRECONDITION_NOT_NOW:
                return Final(
                    JobStatus.SKIPPED,
                    {
                        "exit_code": rc,
                        "skip_reason": SkipReason.PRECONDITION.value,
                        "message": "pre_command exited 75: not now",
                    },
                )
            if rc != 0:
                return _failed(
                    f"pre_command failed with exit code {rc}; borg did not run", exit_code=rc
                )
        stopped = self._stopped(run)
        if stopped is not None:
            return stopped
        run.phase = "borg"
        return await self._run_borg(row, run, repo, profile, prow, jlog)

    def _stopped(self, run: ActiveRun, exit_code: int | None = None) -> Final | None:
        """The outcome of a stop that was asked for; None when none was asked."""
        if run.stop_reason is None:
            return None
        status = JobStatus.INTERRUPTED if run.stop_reason == SHUTDOWN else JobStatus.CANCELLED
        fields: dict[str, Any] = {"message": stop_message(run, exit_code)}
        if exit_code is not None:
            fields["exit_code"] = exit_code
        if run.job_type is JobType.BACKUP:
            fields["archive"] = ""  # no archive (`_record_outcome` names a checkpoint)
        return Final(status, fields)

    async def _record(self, job_id: int, final: Final) -> None:
        """Write the outcome: the job leaves `running` only when everything is done.

        When the store cannot take it (its disk is full, another process locks it),
        the outcome waits until it can, so the job never stays `running` for good;
        the message then says so.  While borgd stops it gives up after a few
        attempts: the row stays `running` and crash recovery settles it at the next
        start.
        """
        noted = False

        def write() -> None:
            nonlocal noted
            try:
                self._change(job_id, final.status, finished_at=self.clock(), pid=0, **final.fields)
            except LOST_RACE:
                return
            except StoreUnavailable as exc:
                if not noted:
                    noted = True
                    note = f"(its outcome could not be stored at first: {store_cause(exc)})"
                    message = final.fields.get("message") or ""
                    final.fields["message"] = f"{message} {note}" if message else note
                raise
            log.info(
                "job.finished", status=final.status.value, exit_code=final.fields.get("exit_code")
            )

        await self._until_stored("outcome", write)

    async def _until_stored(self, what: str, write: Callable[[], None]) -> None:
        """Run a store write until it commits; give up after three tries while borgd stops."""
        attempts = 0
        while True:
            try:
                write()
                return
            except StoreUnavailable as exc:
                attempts += 1
                if not self._accepting and attempts >= 3:
                    log.error("job.not_stored", what=what, error=store_cause(exc))
                    return
            if self._accepting:
                await self.store.health.wait_recovered()
            else:
                await anyio.sleep(0.5)

    def _spec(
        self, row: Job, repo: RepoConfig, profile: ProfileConfig | None, fqdn: str
    ) -> tuple[JobSpec, int] | str:
        """The job's borg spec and the expected size (backup); a message when it cannot run."""
        job_type = JobType(row.type)
        options = job_options_from(row.options or {})
        archive_name = None
        expected = 0
        if job_type is JobType.BACKUP and profile is not None:
            try:
                archive_name = borg_argv.render_archive_name(
                    profile.archive_template,
                    profile=profile.name,
                    hostname=_host.short,
                    fqdn=fqdn,
                    user=_user(),
                    now=datetime.now().astimezone(),
                    uuid4=str(uuid.uuid4()),
                    taken=_taken(self.store.jobs.archives_of_repository(row.repository_id)),
                )
            except ValueError as exc:
                return str(exc)
            self._update(row.id, row, archive=archive_name)
            last = self.store.jobs.last_success(profile.name)
            expected = int(last.original_size) if last else 0
        if job_type is JobType.RESTORE:
            opts = dict(row.options or {})
            if profile is not None and not options.archive:
                last = self.store.jobs.last_success(profile.name)
                if last is None or not last.archive:
                    return "no archive to restore: this profile has no backup yet"
                opts["archive"] = last.archive
            if options.destination:
                # Judge the folder borg will really write into, not a symlink's name.
                opts["destination"] = os.path.realpath(options.destination)
            options = job_options_from(opts)
        spec = JobSpec(
            type=job_type, repo=repo, profile=profile, options=options, archive_name=archive_name
        )
        return spec, expected

    async def _run_borg(
        self,
        row: Job,
        run: ActiveRun,
        repo: RepoConfig,
        profile: ProfileConfig | None,
        prow: Profile | None,
        jlog: joblog.JobLog,
    ) -> Final:
        job_id = row.id
        job_type = run.job_type
        if job_type is JobType.BACKUP and profile is not None and prow is not None:
            run.check_due = await self._retrying(
                self.chains.enqueue, row, profile, prow, run.chain
            )
        try:
            borg = await self.borg.find()
        except BorgNotFound as exc:
            return _failed(str(exc))
        if job_type is JobType.BACKUP and profile is not None:
            missing = await _missing(profile.sources)
            if missing is not None and len(missing) == len(profile.sources):
                # borg would make an empty archive and only warn: that is no backup.
                return _failed(
                    f"none of the sources exists ({', '.join(missing)}); borg did not run"
                )
        uses_fqdn = profile is not None and "{fqdn" in profile.archive_template
        fqdn = await _host.fqdn() if uses_fqdn else _host.short
        built = await self._retrying(self._spec, row, repo, profile, fqdn)
        if isinstance(built, str):
            return _failed(built)
        spec, expected = built
        try:
            argv = borg_argv.build_argv(spec, borg=borg.path, version=borg.version)
            cwd = borg_argv.extract_cwd(spec) if job_type is JobType.RESTORE else None
        except ValueError as exc:
            return _failed(str(exc))
        mountpoint = spec.options.destination if job_type is JobType.MOUNT else None
        if mountpoint is not None:
            problem = await _prepare_mountpoint(mountpoint)
            if problem:
                return _failed(problem)
        if cwd is not None:
            try:
                os.makedirs(cwd, exist_ok=True)
            except OSError as exc:
                return _failed(f"cannot create the destination {cwd}: {exc}")
        passphrase = None
        if repo.has_passphrase:
            try:
                passphrase = await self.passphrase(repo)
            except Exception as exc:
                return _failed(f"the passphrase is unavailable: {exc}")
            if passphrase is None:
                return _failed(f"no passphrase stored for repository {repo.name}; set it again")
        env = borg_argv.borg_env(repo, self.base_env)
        phases = None
        if job_type is JobType.CHECK:
            o = spec.options
            phases = check_phases(
                repository_only=o.repository_only,
                archives_only=o.archives_only,
                verify_data=o.verify_data,
            )
        out = BorgOutput(
            job_type, jlog, expected_size=expected, phases=phases, clock=time.monotonic
        )
        jlog.write(shlex.join(argv) + (f"  (in {cwd})" if cwd else ""), prefix="borgd: running ")

        def on_started(handle: RunningProcess) -> None:
            run.handle, run.last, run.starting = handle, handle, False
            try:
                self.store.jobs.update_fields(
                    job_id, pid=handle.pid, pid_start_time=handle.start_time
                )
            except StoreUnavailable as exc:  # crash recovery will not find it; borg runs on
                log.warning("job.pid_not_stored", error=store_cause(exc))
            if run.stop_reason and self._tg is not None:
                request_stop(handle, self._tg)  # the stop came while borg was starting

        first = signal.SIGINT if job_type is JobType.BACKUP else signal.SIGTERM
        result: RunResult | None = None
        spawn_error: OSError | None = None
        async with self._sleep_block(job_type, profile), anyio.create_task_group() as tg:
            tg.start_soon(self._publish_progress, row, out, jlog)
            try:
                run.starting = True
                result = await run_process(
                    argv,
                    env=env,
                    cwd=cwd,
                    passphrase=passphrase,
                    on_stderr=out.stderr,
                    on_stdout=jlog.write,
                    policy=StopPolicy(first=first, unmount=mountpoint),
                    on_started=on_started,
                )
            except OSError as exc:  # borg vanished or is not executable: it never started
                spawn_error = exc
            finally:
                run.handle, run.starting = None, False
                tg.cancel_scope.cancel()
        if result is None:
            return _failed(f"cannot run borg ({borg.path}): {spawn_error}")
        return self._record_outcome(row, run, spec, result, out, jlog)

    def _record_outcome(
        self,
        row: Job,
        run: ActiveRun,
        spec: JobSpec,
        result: RunResult,
        out: BorgOutput,
        jlog: joblog.JobLog,
    ) -> Final:
        job_type = spec.type
        outcome = exit_codes.interpret_exit(
            result.returncode,
            msgids=out.msgids,
            last_error=out.last_error,
            job_type=job_type,
        )
        status, message = outcome.status, outcome.message
        stopped = self._stopped(run, result.returncode) if result.stopped else None
        if stopped is not None and result.returncode != 0:
            # What borg printed on its way out (a self test cut short, "Got Ctrl-C") is in
            # the log; the reason is the stop, said with the signal it got.
            status, message = stopped.status, stopped.fields["message"]
            if exit_codes.saved_checkpoint(out.last_error, job_type):
                message += "; borg saved a checkpoint archive"
                run.checkpoint = True
        stats: dict[str, Any] = progress_fields(out.snapshot)
        archive = spec.archive_name or ""
        if job_type is JobType.BACKUP:
            parsed = borg_output.parse_create_stdout(result.stdout)
            if parsed is not None:
                archive = parsed.name
                run.made = archives.made_archive(parsed, _local_zone())
                stats.update(
                    original_size=parsed.original_size,
                    compressed_size=parsed.compressed_size,
                    deduplicated_size=parsed.deduplicated_size,
                    nfiles=parsed.nfiles,
                    duration=parsed.duration,
                    repository_size=parsed.repository_size,
                )
            elif stopped is not None and status is stopped.status:
                # What exists is the checkpoint (borg names it NAME.checkpoint), or nothing.
                archive = f"{archive}.checkpoint" if run.checkpoint and archive else ""
            elif status in (JobStatus.SUCCEEDED, JobStatus.WARNING):
                # borg's exit code alone does not prove an archive: a program that died
                # before borg began (a binary swapped mid-upgrade exits 1) looks like a warning.
                status, archive = JobStatus.FAILED, ""
                message = (
                    f"borg exited with code {result.returncode} but reported no archive "
                    f"({out.last_error or 'it printed no result'}); no backup was made"
                )
        elif job_type in (JobType.RESTORE, JobType.DELETE):
            archive = spec.options.archive or ""  # the archive restored, or deleted
        elif job_type is JobType.MOUNT:
            archive = spec.options.archive or ""
            if result.returncode == 0:  # unmounted: by request, by borgd's stop, or by hand
                status = JobStatus.SUCCEEDED
                how = {CANCEL: " by request", SHUTDOWN: " as borgd stopped"}
                message = f"unmounted{how.get(run.stop_reason or '', '')}"
        elif job_type is JobType.LIST and status in (JobStatus.SUCCEEDED, JobStatus.WARNING):
            try:
                run.listed = archives.parse_archive_info(result.stdout, _local_zone())
            except archives.BadOutput as exc:
                status, message = JobStatus.FAILED, str(exc)
            else:
                if spec.options.archive:
                    archive = spec.options.archive
                    message = message or f"the figures of {archive}"
                else:
                    message = message or f"{len(run.listed)} archives"
        if status in (JobStatus.SUCCEEDED, JobStatus.WARNING):
            stats.update(progress=1.0, eta=0, progress_message="", current_file="")
        if jlog.failed:
            message += f" (the job log could not be written: {jlog.failed})"
        if status is JobStatus.FAILED and stopped is None:
            # A cause that passes by itself (a lock, the network): its schedule may retry.
            passing = exit_codes.passing_cause(
                result.returncode, msgids=out.msgids, last_error=out.last_error
            )
            if passing is not None:
                stats["options"] = {**row.options, "passing": passing}
        return Final(
            status,
            {"exit_code": result.returncode, "message": message, "archive": archive, **stats},
        )

    async def _publish_progress(self, row: Job, out: BorgOutput, jlog: joblog.JobLog) -> None:
        """Publish at most once a second and store at most every 2 s, only what changed."""
        job_id = row.id
        while True:
            await anyio.sleep(TICK)
            due = out.due(time.monotonic())
            if due.publish is not None:
                self.events.job_changed(job_id, due.publish, row.but(**due.publish))
            if due.store is not None:
                # Progress is not worth stopping borg for: a store outage skips a write.
                with contextlib.suppress(StoreUnavailable):
                    self.store.jobs.update_fields(job_id, **due.store)
            jlog.flush()

    def _sleep_block(self, job_type: JobType, profile: ProfileConfig | None) -> Any:
        if (
            self.block_sleep is not None
            and job_type is JobType.BACKUP
            and profile is not None
            and profile.inhibit_sleep
        ):
            return self.block_sleep(f"borgd: backup of {profile.name} running")
        return _nullcontext()

    # -- hooks --------------------------------------------------------------

    def hook_env(self, row: Job) -> dict[str, str]:
        """The hook's environment: the daemon's, minus secrets and systemd's, plus job facts.

        Job facts travel only here, never in the command text, so no value (an
        archive name, a path) can ever be read by the shell as code.
        """
        env = borg_argv.child_env(self.base_env, drop_prefixes=("BORGD_",))
        env.update(
            BORGD_JOB_ID=str(row.id),
            BORGD_JOB_TYPE=str(row.type),
            BORGD_PROFILE=str(row.profile),
            BORGD_REPOSITORY=str(row.repository),
            BORGD_STATUS=str(row.status),
            BORGD_ARCHIVE=row.archive,
            BORGD_EXIT_CODE=str(row.exit_code),
        )
        return env

    async def _hook(
        self,
        name: str,
        command: str,
        row: Job,
        jlog: joblog.JobLog,
        *,
        run: ActiveRun,
        timeout: float | None = None,
    ) -> RunResult:
        """Run a profile hook through /bin/sh, as the user wrote it; job facts in the env."""
        limit = self.hook_timeout if timeout is None else timeout
        jlog.write(f"running {name}", prefix="borgd: ")

        def on_started(handle: RunningProcess) -> None:
            run.handle, run.last, run.starting = handle, handle, False
            if run.stop_reason and run.phase != "post" and self._tg is not None:
                request_stop(handle, self._tg)

        try:
            run.starting = True
            result = await run_process(
                ["/bin/sh", "-c", command],
                env=self.hook_env(row),
                cwd=self.base_env.get("HOME") or "/",
                on_stderr=lambda line: jlog.write(line, prefix=f"{name}: "),
                on_stdout=lambda line: jlog.write(line, prefix=f"{name}: "),
                policy=StopPolicy(first=signal.SIGTERM, grace=5.0, group=True),
                timeout=limit,
                on_started=on_started,
            )
        finally:
            run.handle, run.starting = None, False
        if result.timed_out:
            jlog.write(f"{name} timed out after {limit:g} s and was stopped", prefix="borgd: ")
        if result.returncode != 0:
            log.warning("hook.failed", hook=name, exit_code=result.returncode)
            jlog.write(f"{name} exited {result.returncode}", prefix="borgd: ")
        return result

    async def _post_hook(
        self,
        row: Job,
        run: ActiveRun,
        command: str,
        final: Final | None,
        jlog: joblog.JobLog,
    ) -> None:
        """Run the post_command with the outcome; a failure is added to the job's message."""
        current = self.store.jobs.get(row.id)
        if final is None:  # an internal error, recorded after this
            facts = current.but(status=JobStatus.FAILED)
        else:
            facts = current.but(status=final.status, **final.fields)
        timeout = self.hook_timeout
        if run.stop_reason == SHUTDOWN:
            timeout = min(timeout, SHUTDOWN_HOOK_TIMEOUT)
        result = await self._hook("post_command", command, facts, jlog, run=run, timeout=timeout)
        if result.returncode == 0 or final is None:
            return
        if result.timed_out:
            what = f"post_command timed out after {timeout:g} s"
        elif result.stopped:
            sent = ", then ".join(dict.fromkeys(run.last.signals if run.last else []))
            who = "as borgd stopped" if run.stop_reason == SHUTDOWN else "by request"
            what = f"post_command stopped {who} (sent {sent or 'nothing'})"
        else:
            what = f"post_command failed with exit code {result.returncode}"
        message = final.fields.get("message") or ""
        final.fields["message"] = f"{message}; {what}" if message else what


async def _stop_later(handle: RunningProcess, delay: float) -> None:
    await anyio.sleep(delay)
    await stop_process(handle)


async def _prepare_mountpoint(path: str) -> str | None:
    """Create the mount point (an empty folder); a message when it cannot be used."""

    def check() -> str | None:
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            if os.listdir(path):
                return f"the mount point {path} is not empty"
        except OSError as exc:
            return f"cannot use the mount point {path}: {exc}"
        return None

    try:
        return await call_with_timeout(check, SOURCES_TIMEOUT_S, "mountpoint")
    except TimeoutError:
        return f"the mount point {path} did not answer (a hung mount?)"


async def _missing(paths: tuple[str, ...]) -> list[str] | None:
    """The paths that do not exist; None when looking did not finish in time (a hung
    mount: borg then finds out, and says so)."""
    try:
        return await call_with_timeout(
            lambda: [p for p in paths if not os.path.lexists(p)], SOURCES_TIMEOUT_S, "sources"
        )
    except TimeoutError:
        return None


class _HostNames:
    """The names borg gives {hostname} and {fqdn}.  getfqdn may ask DNS, which can hang:
    it runs in a worker thread with a time limit, once; on a timeout {fqdn} falls back
    to the short name (and is asked again for a later job, if no lookup is still stuck)."""

    def __init__(self) -> None:
        self._fqdn: str | None = None
        self._asking = False

    @cached_property
    def short(self) -> str:
        return os.environ.get("BORG_HOSTNAME") or socket.gethostname().split(".")[0]

    @property
    def known_fqdn(self) -> str | None:
        return self._fqdn

    async def fqdn(self) -> str:
        if self._fqdn is not None:
            return self._fqdn
        if not self._asking:
            self._asking = True
            try:
                return await call_with_timeout(self._ask, FQDN_TIMEOUT_S, "fqdn")
            except TimeoutError:
                log.warning("hostname.fqdn_timeout", timeout_s=FQDN_TIMEOUT_S, using=self.short)
        return self.short

    def _ask(self) -> str:
        try:
            self._fqdn = socket.getfqdn()
            return self._fqdn
        finally:
            self._asking = False


_host = _HostNames()


def _taken(names: set[str]) -> set[str]:
    """Archive names a new backup must not use: a checkpoint's base name included."""
    return names | {borg_argv.checkpoint_base(n) for n in names}


def _local_zone() -> Any:
    """The zone borg prints its naive times in: this process's local one."""
    return datetime.now().astimezone().tzinfo


def host_values() -> archives.HostValues:
    """The per-host placeholders as this borgd's jobs fill them ({fqdn}: as last looked
    up for a job, else the short name; never a DNS query here)."""
    return archives.HostValues(
        hostname=_host.short, fqdn=_host.known_fqdn or _host.short, user=_user()
    )


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid())


class _nullcontext:
    async def __aenter__(self) -> bool:
        return False

    async def __aexit__(self, *exc: object) -> None:
        return None
