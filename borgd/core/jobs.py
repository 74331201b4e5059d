"""Job vocabulary and the job state machine: pure data, no I/O.

Every status change in the store is a compare-and-set guarded by
`check_transition`, so an illegal move is refused before SQL runs.
"""

from __future__ import annotations

from enum import StrEnum

from borgd.errors import InvalidState


class JobType(StrEnum):
    BACKUP = "backup"
    PRUNE = "prune"
    COMPACT = "compact"
    CHECK = "check"
    RESTORE = "restore"
    INIT = "init"
    LIST = "list"  # the archive set, for the archive cache (RefreshArchives)
    DELETE = "delete"  # one archive (DeleteArchive)
    MOUNT = "mount"  # an archive or the repository as files, running while mounted


class JobStatus(StrEnum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    WARNING = "warning"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"


class Trigger(StrEnum):
    MANUAL = "manual"
    SCHEDULE = "schedule"
    CATCH_UP = "catch-up"
    CHAIN = "chain"
    REQUEUE = "requeue"
    RECOVERY = "recovery"
    RETRY = "retry"  # a failure for a passing cause, tried again after a delay


class SkipReason(StrEnum):
    PAUSED = "paused"
    ON_BATTERY = "on-battery"
    METERED_NETWORK = "metered-network"
    NETWORK_UNAVAILABLE = "network-unavailable"
    REPOSITORY_UNAVAILABLE = "repository-unavailable"
    SECRET_UNAVAILABLE = "secret-unavailable"
    ALREADY_ACTIVE = "already-active"
    MISSED_WINDOW = "missed-window"
    COALESCED = "coalesced"
    PROFILE_DISABLED = "profile-disabled"
    SCHEDULE_REMOVED = "schedule-removed"
    PRECONDITION = "precondition"
    PARENT_FAILED = "parent-failed"
    BLACKOUT = "blackout"  # inside a blackout window (held back until it ends)


LIVE: frozenset[JobStatus] = frozenset({JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.RUNNING})
TERMINAL: frozenset[JobStatus] = frozenset(set(JobStatus) - LIVE)
FINISHED_BY_BORG: frozenset[JobStatus] = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.WARNING, JobStatus.FAILED}
)
REQUEUEABLE: frozenset[JobStatus] = frozenset(
    {JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED, JobStatus.SKIPPED}
)

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.SCHEDULED: frozenset({JobStatus.QUEUED, JobStatus.SKIPPED, JobStatus.CANCELLED}),
    JobStatus.QUEUED: frozenset(
        {JobStatus.RUNNING, JobStatus.SKIPPED, JobStatus.CANCELLED, JobStatus.FAILED}
    ),
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.SUCCEEDED,
            JobStatus.WARNING,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
            JobStatus.INTERRUPTED,
            JobStatus.SKIPPED,  # pre_command said "not now" (exit 75)
        }
    ),
}


class IllegalTransition(InvalidState, ValueError):
    """A status change the state machine does not allow."""


def allowed(src: JobStatus, dst: JobStatus) -> bool:
    return dst in TRANSITIONS.get(src, frozenset())


def check_transition(src: JobStatus, dst: JobStatus) -> None:
    if not allowed(src, dst):
        raise IllegalTransition(f"a {src} job cannot become {dst}")


def sources_for(dst: JobStatus) -> frozenset[JobStatus]:
    """Statuses from which `dst` may be reached (the CAS `WHERE status IN`)."""
    return frozenset(s for s, targets in TRANSITIONS.items() if dst in targets)
