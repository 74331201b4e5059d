"""Lanes: one per repository, run in parallel up to a global limit.

The executor takes `queued` rows from the store in lane order (chain jobs
first, then by queue time), moves each to `running` with a compare-and-set
(the store's unique index makes a second running job per repository
impossible), runs hooks and borg through the runner, and writes the outcome.
It never decides *when* something is due: the scheduler queues jobs.
"""

from __future__ import annotations

import getpass
import os
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import structlog

from borgd.clock import Clock
from borgd.core import borg_argv, borg_output, exit_codes
from borgd.core.config import JobSpec, ProfileConfig, RepoConfig, job_options_from
from borgd.core.jobs import JobStatus, JobType, SkipReason, Trigger
from borgd.core.progress import ProgressTracker, Throttle
from borgd.events import Events
from borgd.execution import joblog
from borgd.execution.runner import RunningProcess, StopPolicy, run_process
from borgd.store import Store
from borgd.store.catalog import NotFound as CatalogNotFound
from borgd.store.jobs import JobRow, StaleState

log = structlog.get_logger(__name__)

HOOK_TIMEOUT = 600.0
PRECONDITION_NOT_NOW = 75  # borgmatic's and sysexits' EX_TEMPFAIL: "not now"
PUBLISH_INTERVAL = 1.0
STORE_INTERVAL = 2.0
PROGRESS_FIELDS = (
    "progress",
    "progress_message",
    "current_file",
    "nfiles",
    "original_size",
    "compressed_size",
    "deduplicated_size",
    "rate",
    "eta",
)

PassphraseSource = Callable[[RepoConfig], Awaitable[bytes | None]]
SleepBlocker = Callable[[str], Any]  # an async context manager factory


@dataclass
class ActiveRun:
    job_id: int
    repository_id: int
    job_type: JobType
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    handle: RunningProcess | None = None
    stop_reason: str | None = None  # "cancel" | "shutdown"


@dataclass(frozen=True)
class BorgTool:
    path: str
    version: tuple[int, int, int]


class Executor:
    def __init__(
        self,
        *,
        store: Store,
        events: Events,
        clock: Clock,
        borg: BorgTool,
        logs_dir: Path,
        passphrase: PassphraseSource,
        max_parallel: int = 2,
        block_sleep: SleepBlocker | None = None,
        base_env: dict[str, str] | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self.borg = borg
        self.logs_dir = logs_dir
        self.passphrase = passphrase
        self.max_parallel = max_parallel
        self.block_sleep = block_sleep
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.active: dict[int, ActiveRun] = {}
        self._wake = anyio.Event()
        self._tg: anyio.abc.TaskGroup | None = None
        self._accepting = True
        self.on_active_changed: Callable[[int], None] = lambda n: None

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
                self._dispatch(tg)
                await self._wake.wait()
                self._wake = anyio.Event()

    def _dispatch(self, tg: anyio.abc.TaskGroup) -> None:
        if not self._accepting:
            return
        busy = {run.repository_id for run in self.active.values()}
        for row in self.store.jobs.queued_in_lane_order():
            if len(self.active) >= self.max_parallel:
                break
            if row["repository_id"] in busy:
                continue
            busy.add(row["repository_id"])
            run = ActiveRun(row["id"], row["repository_id"], JobType(row["type"]))
            self.active[row["id"]] = run
            tg.start_soon(self._run, row, run)
        self.on_active_changed(len(self.active))

    def cancel_running(self, job_id: int) -> bool:
        """Ask a running job to stop; returns False when it is not running here."""
        run = self.active.get(job_id)
        if run is None:
            return False
        run.stop_reason = run.stop_reason or "cancel"
        run.scope.cancel()
        return True

    async def shutdown(self) -> None:
        """Stop taking work; interrupt running borg (a create writes a checkpoint)."""
        self._accepting = False
        for run in list(self.active.values()):
            run.stop_reason = "shutdown"
            run.scope.cancel()
        with anyio.move_on_after(25):
            while self.active:
                await anyio.sleep(0.05)

    # -- one job ------------------------------------------------------------

    def _change(self, job_id: int, dst: JobStatus, **fields: Any) -> JobRow:
        row = self.store.jobs.transition(job_id, dst, **fields)
        changed = {"status": dst.value, **fields}
        self.events.job_changed(job_id, changed, row)
        return row

    async def _run(self, row: JobRow, run: ActiveRun) -> None:
        job_id = row["id"]
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
            except Exception:
                log.exception("job.cannot_record_failure")
        finally:
            structlog.contextvars.unbind_contextvars("job_id")
            self.active.pop(job_id, None)
            self.on_active_changed(len(self.active))
            self.wake()

    def _configs(self, row: JobRow) -> tuple[RepoConfig, ProfileConfig | None, JobRow | None]:
        repo_row = self.store.catalog.repository_by_id(row["repository_id"])
        from borgd.store.catalog import profile_config, repo_config

        repo = repo_config(repo_row)
        if not row["profile"]:
            return repo, None, None
        prow = self.store.catalog.profile(row["profile"])
        return repo, profile_config(prow, repo.name), prow

    async def _execute(self, row: JobRow, run: ActiveRun) -> None:
        job_id = row["id"]
        job_type = JobType(row["type"])
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
            self._change(job_id, JobStatus.RUNNING, started_at=self.clock(), log_path=str(path))
        except StaleState:
            return  # cancelled meanwhile, or the repository is busy: nothing runs twice
        log.info("job.started", type=job_type.value, profile=row["profile"], repository=repo.name)
        jlog = joblog.JobLog(path)
        try:
            with run.scope:
                await self._execute_running(row, run, repo, profile, prow, jlog)
            if run.scope.cancelled_caught:
                self._finish_stopped(row, run)
        finally:
            jlog.close()

    def _finish_stopped(self, row: JobRow, run: ActiveRun) -> None:
        """The scope was cancelled before an outcome was written."""
        current = self.store.jobs.get(row["id"])
        if current["status"] != JobStatus.RUNNING.value:
            return
        if run.stop_reason == "shutdown":
            dst, message = JobStatus.INTERRUPTED, "interrupted: borgd stopped"
        else:
            dst, message = JobStatus.CANCELLED, "cancelled by request"
        self._change(row["id"], dst, finished_at=self.clock(), message=message)

    async def _execute_running(
        self,
        row: JobRow,
        run: ActiveRun,
        repo: RepoConfig,
        profile: ProfileConfig | None,
        prow: JobRow | None,
        jlog: joblog.JobLog,
    ) -> None:
        job_id = row["id"]
        job_type = JobType(row["type"])
        hooks = profile is not None and job_type is JobType.BACKUP
        outcome_status = JobStatus.FAILED
        try:
            if hooks and profile is not None and profile.pre_command:
                rc = await self._hook("pre_command", profile.pre_command, row, jlog)
                if rc == PRECONDITION_NOT_NOW:
                    outcome_status = JobStatus.SKIPPED
                    self._change(
                        job_id,
                        JobStatus.SKIPPED,
                        finished_at=self.clock(),
                        skip_reason=SkipReason.PRECONDITION.value,
                        message="pre_command exited 75: not now",
                    )
                    return
                if rc != 0:
                    self._change(
                        job_id,
                        JobStatus.FAILED,
                        finished_at=self.clock(),
                        exit_code=rc,
                        message=f"pre_command failed with exit code {rc}; borg did not run",
                    )
                    return
            outcome_status = await self._run_borg(row, run, repo, profile, prow, jlog)
        finally:
            if hooks and profile is not None and profile.post_command:
                with anyio.CancelScope(shield=True):
                    final = self.store.jobs.get(job_id)
                    status = final["status"]
                    if status == JobStatus.RUNNING.value:
                        status = "interrupted" if run.stop_reason == "shutdown" else "cancelled"
                    await self._hook(
                        "post_command",
                        profile.post_command,
                        {**final, "status": status},
                        jlog,
                    )
        if job_type is JobType.BACKUP and profile is not None and prow is not None:
            self._after_backup(row, profile, prow, outcome_status)

    async def _run_borg(
        self,
        row: JobRow,
        run: ActiveRun,
        repo: RepoConfig,
        profile: ProfileConfig | None,
        prow: JobRow | None,
        jlog: joblog.JobLog,
    ) -> JobStatus:
        job_id = row["id"]
        job_type = JobType(row["type"])
        options = job_options_from(row["options"] or {})
        archive_name = None
        expected = 0
        if job_type is JobType.BACKUP and profile is not None:
            archive_name = borg_argv.render_archive_name(
                profile.archive_template,
                profile=profile.name,
                hostname=_host.short,
                fqdn=_host.fqdn,
                user=_user(),
                now=datetime.now().astimezone(),
                uuid4=str(uuid.uuid4()),
                taken=self.store.jobs.archives_of_repository(row["repository_id"]),
            )
            self.store.jobs.update_fields(job_id, archive=archive_name)
            last = self.store.jobs.last_finished(
                profile.name, ["backup"], ["succeeded", "warning"]
            )
            expected = int(last["original_size"]) if last else 0
        if job_type is JobType.RESTORE and profile is not None and not options.archive:
            last = self.store.jobs.last_finished(
                profile.name, ["backup"], ["succeeded", "warning"]
            )
            if last is None or not last["archive"]:
                return self._fail(job_id, "no archive to restore: this profile has no backup yet")
            options = job_options_from({**(row["options"] or {}), "archive": last["archive"]})
        spec = JobSpec(
            type=job_type, repo=repo, profile=profile, options=options, archive_name=archive_name
        )
        try:
            argv = borg_argv.build_argv(spec, borg=self.borg.path, version=self.borg.version)
            cwd = borg_argv.extract_cwd(spec) if job_type is JobType.RESTORE else None
        except ValueError as exc:
            return self._fail(job_id, str(exc))
        if cwd is not None:
            try:
                os.makedirs(cwd, exist_ok=True)
            except OSError as exc:
                return self._fail(job_id, f"cannot create the destination {cwd}: {exc}")
        passphrase = None
        if repo.has_passphrase:
            try:
                passphrase = await self.passphrase(repo)
            except Exception as exc:
                return self._fail(job_id, f"the passphrase is unavailable: {exc}")
            if passphrase is None:
                return self._fail(
                    job_id, f"no passphrase stored for repository {repo.name}; set it again"
                )
        env = borg_argv.borg_env(repo, self.base_env)
        tracker = ProgressTracker(job_type, expected_size=expected)
        publish = Throttle(PUBLISH_INTERVAL)
        persist = Throttle(STORE_INTERVAL)
        errors: list[str] = []
        msgids: list[str] = []

        def on_stderr(line: str) -> None:
            jlog.write(line)
            event = borg_output.parse_line(line)
            if isinstance(event, borg_output.LogMessage):
                if event.msgid:
                    msgids.append(event.msgid)
                if event.levelname in ("ERROR", "CRITICAL"):
                    errors.append(event.message)
            elif isinstance(event, borg_output.PlainLine) and event.text.strip():
                errors.append(event.text.strip())
            now = time.monotonic()
            if tracker.feed(event, now) and publish.due(now):
                fields = _progress_fields(tracker)
                self.events.job_changed(job_id, fields, {**row, **fields})
                if persist.due(now):
                    self.store.jobs.update_fields(job_id, **fields)

        def on_started(handle: RunningProcess) -> None:
            run.handle = handle
            self.store.jobs.update_fields(job_id, pid=handle.pid, pid_start_time=handle.start_time)

        first = signal.SIGINT if job_type is JobType.BACKUP else signal.SIGTERM
        async with self._sleep_block(job_type, profile):
            result = await run_process(
                argv,
                env=env,
                cwd=cwd,
                passphrase=passphrase,
                on_stderr=on_stderr,
                on_stdout=jlog.write,
                policy=StopPolicy(first=first),
                on_started=on_started,
            )
        outcome = exit_codes.interpret_exit(
            result.returncode,
            msgids=msgids,
            last_error=errors[-1] if errors else None,
            job_type=job_type,
        )
        stats: dict[str, Any] = _progress_fields(tracker)
        archive = archive_name or ""
        if job_type is JobType.BACKUP:
            parsed = borg_output.parse_create_stdout(result.stdout)
            if parsed is not None:
                archive = parsed.name
                stats.update(
                    original_size=parsed.original_size,
                    compressed_size=parsed.compressed_size,
                    deduplicated_size=parsed.deduplicated_size,
                    nfiles=parsed.nfiles,
                    duration=parsed.duration,
                )
        if outcome.status in (JobStatus.SUCCEEDED, JobStatus.WARNING):
            stats.update(progress=1.0, eta=0)
        message = outcome.message
        if jlog.failed:
            message += f" (the job log could not be written: {jlog.failed})"
        self._change(
            job_id,
            outcome.status,
            finished_at=self.clock(),
            exit_code=result.returncode,
            message=message,
            archive=archive,
            pid=0,
            **stats,
        )
        log.info("job.finished", status=outcome.status.value, exit_code=result.returncode)
        return outcome.status

    def _fail(self, job_id: int, message: str) -> JobStatus:
        self._change(job_id, JobStatus.FAILED, finished_at=self.clock(), message=message)
        return JobStatus.FAILED

    def _sleep_block(self, job_type: JobType, profile: ProfileConfig | None) -> Any:
        if (
            self.block_sleep is not None
            and job_type is JobType.BACKUP
            and profile is not None
            and profile.inhibit_sleep
        ):
            return self.block_sleep(f"borgd: backup of {profile.name} running")
        return _nullcontext()

    async def _hook(self, name: str, command: str, row: JobRow, jlog: joblog.JobLog) -> int:
        """Run a profile hook through /bin/sh; job facts only in the environment."""
        env = {k: v for k, v in self.base_env.items() if not k.startswith("BORG_PASS")}
        env.pop("NOTIFY_SOCKET", None)
        env.update(
            BORGD_JOB_ID=str(row["id"]),
            BORGD_JOB_TYPE=str(row["type"]),
            BORGD_PROFILE=str(row["profile"]),
            BORGD_REPOSITORY=str(row["repository"]),
            BORGD_STATUS=str(row["status"]),
            BORGD_ARCHIVE=str(row.get("archive") or ""),
            BORGD_EXIT_CODE=str(row.get("exit_code", -1)),
        )
        jlog.write(f"running {name}", prefix="borgd: ")
        result = await run_process(
            ["/bin/sh", "-c", command],
            env=env,
            on_stderr=lambda line: jlog.write(line, prefix=f"{name}: "),
            on_stdout=lambda line: jlog.write(line, prefix=f"{name}: "),
            policy=StopPolicy(first=signal.SIGTERM, grace=5.0),
            timeout=HOOK_TIMEOUT,
        )
        if result.stopped:
            jlog.write(f"{name} timed out after {HOOK_TIMEOUT:.0f} s", prefix="borgd: ")
        if result.returncode != 0:
            log.warning("hook.failed", hook=name, exit_code=result.returncode)
            jlog.write(f"{name} exited {result.returncode}", prefix="borgd: ")
        return result.returncode

    # -- chains -------------------------------------------------------------

    def _after_backup(
        self, row: JobRow, profile: ProfileConfig, prow: JobRow, status: JobStatus
    ) -> None:
        tasks: list[JobType] = []
        if profile.prune_after and not profile.retention.is_empty:
            tasks.append(JobType.PRUNE)
        if profile.compact_after:
            tasks.append(JobType.COMPACT)
        ok = status in (JobStatus.SUCCEEDED, JobStatus.WARNING)
        if profile.check_every > 0:
            count = int(prow["backups_since_check"]) + (1 if ok else 0)
            if count >= profile.check_every:
                tasks.append(JobType.CHECK)
                if ok:
                    count = 0
            self.store.catalog.update_profile(prow["id"], {"backups_since_check": count})
        if ok:
            now = self.clock()
            self.events.profile_changed(profile.name, {"last_success": now})
        if not tasks:
            return
        now = self.clock()
        for task in tasks:
            base = dict(
                type=task.value,
                trigger=Trigger.CHAIN.value,
                profile=row["profile"],
                repository=row["repository"],
                repository_id=row["repository_id"],
                schedule_id=row["schedule_id"],
                parent_id=row["id"],
                created_at=now,
                options={},
            )
            if ok:
                job = self.store.jobs.create(status=JobStatus.QUEUED.value, queued_at=now, **base)
            elif status is JobStatus.FAILED:
                job = self.store.jobs.create(
                    status=JobStatus.SKIPPED.value,
                    finished_at=now,
                    skip_reason=SkipReason.PARENT_FAILED.value,
                    message=f"backup job {row['id']} failed",
                    **base,
                )
            else:
                continue
            self.events.job_added(job)


def _progress_fields(tracker: ProgressTracker) -> dict[str, Any]:
    p = tracker.snapshot()
    return {
        "progress": p.fraction,
        "progress_message": p.message,
        "current_file": p.current_file,
        "nfiles": p.nfiles,
        "original_size": p.original_size,
        "compressed_size": p.compressed_size,
        "deduplicated_size": p.deduplicated_size,
        "rate": p.rate,
        "eta": p.eta,
    }


class _HostNames:
    """The names borg gives {hostname} and {fqdn}: computed once (getfqdn may ask DNS)."""

    @cached_property
    def short(self) -> str:
        return os.environ.get("BORG_HOSTNAME") or socket.gethostname().split(".")[0]

    @cached_property
    def fqdn(self) -> str:
        return socket.getfqdn()


_host = _HostNames()


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
