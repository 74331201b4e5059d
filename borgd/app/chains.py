"""Post-backup tasks: what a backup chains, and what becomes of them when it ends.

A backup queues its tasks (prune when a retention rule is set and
`prune_after`; compact with `compact_after`; check every `check_every`
backups) as `chain` jobs when it starts, so they show while it runs and run
next in its lane.  When it ends: after a success (or a warning) they stay
queued, the check counter moves on and the profile's last success is told;
after a failure or an interruption they are `skipped/parent-failed`; with a
cancelled backup they are cancelled.  The executor calls these two use cases
and nothing else decides about chains.
"""

from __future__ import annotations

from typing import Any

from borgd.clock import Clock
from borgd.core.config import ProfileConfig
from borgd.core.jobs import IllegalTransition, JobStatus, JobType, SkipReason, Trigger
from borgd.core.records import Job, Profile
from borgd.events import Events
from borgd.store import Store
from borgd.store.catalog import NotFound
from borgd.store.jobs import NoSuchJob, StaleState


def chain_tasks(profile: ProfileConfig, backups_since_check: int) -> tuple[list[JobType], bool]:
    """The tasks a backup of `profile` chains, and whether the check is among them."""
    tasks: list[JobType] = []
    if profile.prune_after and not profile.retention.is_empty:
        tasks.append(JobType.PRUNE)
    if profile.compact_after:
        tasks.append(JobType.COMPACT)
    check_due = profile.check_every > 0 and backups_since_check + 1 >= profile.check_every
    if check_due:
        tasks.append(JobType.CHECK)
    return tasks, check_due


class Chains:
    def __init__(self, *, store: Store, events: Events, clock: Clock) -> None:
        self.store = store
        self.events = events
        self.clock = clock

    def enqueue(
        self, backup: Job, profile: ProfileConfig, prow: Profile, queued: list[int]
    ) -> bool:
        """Queue the tasks not in `queued` yet (a retry after a store outage goes on
        where it stopped), appending their ids; returns whether the check is due."""
        tasks, check_due = chain_tasks(profile, int(prow.backups_since_check))
        for task in tasks[len(queued) :]:
            job = self.store.jobs.queue(
                now=self.clock(),
                type=task.value,
                trigger=Trigger.CHAIN.value,
                profile=backup.profile,
                repository=backup.repository,
                repository_id=backup.repository_id,
                schedule_id=backup.schedule_id,
                parent_id=backup.id,
                options={},
            )
            queued.append(int(job.id))
            self.events.job_added(job)
        return check_due

    def settle(
        self,
        backup: Job,
        profile: ProfileConfig,
        status: JobStatus,
        queued: list[int],
        check_due: bool,
    ) -> None:
        """What the backup's end means for its chain, its profile's counter and last
        success (see the module docstring)."""
        if status in (JobStatus.SUCCEEDED, JobStatus.WARNING):
            try:
                prow = self.store.catalog.profile(profile.name)
            except NotFound:
                return  # removed while it ran; its chain runs or fails on its own
            if profile.check_every > 0:
                count = 0 if check_due else int(prow.backups_since_check) + 1
                self.store.catalog.update_profile(prow.id, {"backups_since_check": count})
            last = self.store.jobs.last_success(profile.name)
            if last is not None and last.id == backup.id:  # not one missing a source
                self.events.profile_changed(profile.name, {"last_success": last.finished_at})
            return
        now = self.clock()
        for chain_id in queued:
            fields: dict[str, Any] = {"finished_at": now}
            if status is JobStatus.CANCELLED:
                dst = JobStatus.CANCELLED
                fields["message"] = f"cancelled with its backup (job {backup.id})"
            else:
                dst = JobStatus.SKIPPED
                fields["skip_reason"] = SkipReason.PARENT_FAILED.value
                fields["message"] = f"its backup (job {backup.id}) {status.value}"
            try:
                row = self.store.jobs.transition(
                    chain_id, dst, expect=[JobStatus.QUEUED], **fields
                )
            except (StaleState, IllegalTransition, NoSuchJob):
                continue  # cancelled by hand meanwhile
            self.events.job_changed(chain_id, {"status": dst.value, **fields}, row)
