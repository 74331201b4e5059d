"""Job use cases: start, cancel, requeue, look up, list, and read a job's log."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import anyio.to_thread

from borgd import errors
from borgd.app.context import UseCaseContext
from borgd.app.repositories import canonical_url
from borgd.core import borg_argv
from borgd.core.config import JobSpec, job_options_from
from borgd.core.jobs import REQUEUEABLE, TERMINAL, IllegalTransition, JobStatus, JobType, Trigger
from borgd.core.records import Job
from borgd.core.validation import (
    LIST_FILTER,
    START_OPTIONS,
    InvalidArgument,
    Variant,
    check_id,
    check_job_type,
    check_name,
    check_options,
    check_statuses,
    check_types,
)
from borgd.execution import joblog
from borgd.store.catalog import NotFound
from borgd.store.jobs import JobFilter, StaleState

_Read = TypeVar("_Read")


class JobCases(UseCaseContext):
    def start_job(self, profile: str, job_type: str, options: Mapping[str, Variant]) -> int:
        check_name("profile", profile)
        jtype = check_job_type(job_type)
        elsewhere = {
            JobType.LIST: "RefreshArchives(repository)",
            JobType.DELETE: "DeleteArchive(repository, archive, options)",
            JobType.MOUNT: "MountArchive(repository, archive, mountpoint, options)",
        }
        if jtype in elsewhere:
            raise InvalidArgument(f"a {jtype.value} job is started with {elsewhere[jtype]}")
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
