"""Keeping the archive cache true: what each job's end means for it.

A `list` job's archive set replaces the repository's cached set; a backup's
own report (`create --json`) adds its archive with borg's figures and the
job that made it, at once, and queues the deletion of its profile's
checkpoints, which it supersedes; a stopped backup that left a checkpoint
adds the checkpoint (borg reports no figures for it).  borg lists archives
without figures: those borgd did not make get an `info` each, chained to the
list (at most ten per list, newest first).  A prune may have removed
archives: it queues a `list` job in the same lane, linked to it, so the
cache follows without anyone asking.  The executor calls `settle` after
every job and nothing else writes the cache.
"""

from __future__ import annotations

from borgd.clock import Clock
from borgd.core.archives import ArchiveInfo, profile_globs, profile_of
from borgd.core.borg_argv import is_checkpoint
from borgd.core.jobs import JobStatus, JobType, Trigger
from borgd.core.records import Job
from borgd.events import Events
from borgd.execution.executor import ActiveRun, host_values
from borgd.store import Store
from borgd.store.jobs import JobFilter

FINISHED_OK = (JobStatus.SUCCEEDED, JobStatus.WARNING)
FIGURES_PER_LIST = 10


class ArchiveCacheKeeper:
    def __init__(self, *, store: Store, events: Events, clock: Clock) -> None:
        self.store = store
        self.events = events
        self.clock = clock

    def settle(self, job: Job, status: JobStatus, run: ActiveRun) -> None:
        if job.type is JobType.LIST and status in FINISHED_OK and run.listed is not None:
            if job.archive:  # one archive's `info`
                for info in run.listed:
                    self.store.archives.record_figures(job.repository_id, info)
                return
            globs = self._globs(job.repository_id)
            profiles = {a.name: profile_of(a.name, globs) for a in run.listed}
            self.store.archives.replace_set(job.repository_id, run.listed, profiles)
            self._ask_figures(job)
            return
        if job.type is JobType.BACKUP and run.made is not None and status in FINISHED_OK:
            self.store.archives.record_made(
                job.repository_id, run.made, profile=job.profile, job_id=job.id
            )
            self._remove_superseded_checkpoints(job)
            return
        if job.type is JobType.BACKUP and run.checkpoint:
            self._record_checkpoint(job)
            return
        if job.type is JobType.DELETE and status in FINISHED_OK:
            self.store.archives.remove(job.repository_id, job.archive)
            return
        if job.type is JobType.PRUNE and status in FINISHED_OK:
            self._chain(job, JobType.LIST, {})

    def _ask_figures(self, listed: Job) -> None:
        """borg lists archives without their figures: each archive borgd did not make
        gets one `info`, newest first, at most FIGURES_PER_LIST after each list (the
        next list goes on; an `info` reads the whole archive's metadata)."""
        pending = self._pending(listed, JobType.LIST)
        for name in self.store.archives.without_figures(listed.repository_id, FIGURES_PER_LIST):
            if name not in pending:
                self._chain(listed, JobType.LIST, {"archive": name}, archive=name)

    def _pending(self, job: Job, job_type: JobType) -> set[str]:
        """Archives named by queued or running jobs of that type in the job's lane."""
        return {
            j.archive
            for j in self.store.jobs.query(
                JobFilter(
                    repositories=(job.repository,),
                    types=(job_type.value,),
                    statuses=(JobStatus.QUEUED.value, JobStatus.RUNNING.value),
                )
            )
        }

    def _record_checkpoint(self, job: Job) -> None:
        stored = self.store.jobs.get(job.id)  # the outcome names the checkpoint, if any
        if not stored.archive or not is_checkpoint(stored.archive):
            return
        start = stored.started_at
        checkpoint = ArchiveInfo(
            name=stored.archive,
            id="",
            start=start,
            end=stored.finished_at or start,
            nfiles=0,
            original_size=0,
            compressed_size=0,
            deduplicated_size=0,
            comment="",
            checkpoint=True,
        )
        self.store.archives.record_made(
            job.repository_id, checkpoint, profile=job.profile, job_id=job.id
        )

    def _remove_superseded_checkpoints(self, backup: Job) -> None:
        """A successful backup supersedes its profile's checkpoints: each goes in a
        `delete` job chained to it (borg's prune would keep the newest one)."""
        pending = self._pending(backup, JobType.DELETE)
        for archive in self.store.archives.query(
            backup.repository_id, profile=backup.profile, checkpoints=True
        ):
            if not archive.checkpoint or archive.name in pending:
                continue
            self._chain(backup, JobType.DELETE, {"archive": archive.name}, archive=archive.name)

    def _globs(self, repository_id: int) -> dict[str, str]:
        templates = {
            p.name: p.archive_template
            for p in self.store.catalog.profiles(repository_id=repository_id)
        }
        return profile_globs(templates, host_values())

    def _chain(
        self, parent: Job, job_type: JobType, options: dict[str, str], **extra: str
    ) -> None:
        """A repository job queued next in the lane, linked to the job it follows."""
        queued = self.store.jobs.queue(
            now=self.clock(),
            type=job_type.value,
            trigger=Trigger.CHAIN.value,
            profile="",
            repository=parent.repository,
            repository_id=parent.repository_id,
            parent_id=parent.id,
            options=options,
            **extra,
        )
        self.events.job_added(queued)
