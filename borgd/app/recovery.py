"""Crash recovery at start: no job stays `running` after the daemon that ran it died.

Each `running` row names a pid and that process's start time.  A borg of
ours that outlived the daemon (it runs in its own session) is stopped (SIGINT
first for a backup, so it writes a checkpoint); a pid now used by another
process (same pid, other start time) is left alone.  A mount is unmounted
first (a signal would leave it behind, dead), and detached if its borg is gone.  The row becomes
`interrupted`; a backup started by a schedule (or its catch-up) that a crash
or a clean stop interrupted is queued again once, with trigger `recovery`
(a manual or requeued run is the user's
to repeat, and a recovery run is not repeated again); the post-backup tasks an
interrupted backup had queued are skipped, as after a failed backup.
"""

from __future__ import annotations

import os
import signal
import time

import anyio
import structlog

from borgd.clock import Clock
from borgd.core.jobs import JobStatus, JobType, SkipReason, Trigger
from borgd.core.records import Job
from borgd.events import Events
from borgd.execution.runner import is_mounted, process_matches, unmount
from borgd.store import Store
from borgd.store.jobs import StaleState

log = structlog.get_logger(__name__)

REQUEUE_TRIGGERS = frozenset({Trigger.SCHEDULE.value, Trigger.CATCH_UP.value})


# A mount's borg exits by itself once unmounted: this long, before it is signalled.
UNMOUNTED_EXIT_S = 3.0
# (signal, seconds to wait for the exit) in turn, by job type.  borg catches SIGINT
# everywhere (a backup then writes a checkpoint); a mount's borg may ignore SIGTERM
# while it shuts down (seen in CI: it then waited in epoll for good), so it gets
# SIGINT and then SIGKILL, and the restart is not held up for long.
STOP_STEPS: dict[str, tuple[tuple[signal.Signals, float], ...]] = {
    JobType.BACKUP.value: ((signal.SIGINT, 10.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)),
    JobType.MOUNT.value: ((signal.SIGINT, 3.0), (signal.SIGKILL, 5.0)),
}
DEFAULT_STOP_STEPS = ((signal.SIGTERM, 10.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0))


async def _gone_within(pid: int, start_time: int, seconds: float) -> bool:
    """Whether the process ends within ``seconds`` (polled: the bus is served meanwhile)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not process_matches(pid, start_time) or _is_zombie(pid):
            return True
        await anyio.sleep(0.05)
    return False


async def _stop_orphan(pid: int, start_time: int, job_type: str) -> None:
    """Signal, then wait, step by step (the event loop serves the bus meanwhile)."""
    for sig, grace in STOP_STEPS.get(job_type, DEFAULT_STOP_STEPS):
        if not process_matches(pid, start_time):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if await _gone_within(pid, start_time, grace):
            return


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return True
    return data[data.rfind(b")") + 2 : data.rfind(b")") + 3] == b"Z"


async def recover(store: Store, events: Events, clock: Clock) -> list[Job]:
    """Mark leftover running jobs interrupted; requeue scheduled backups once. Returns new jobs."""
    requeued: list[Job] = []
    interrupted: set[int] = set()
    for row in store.jobs.with_status(JobStatus.RUNNING):
        mountpoint = row.options.get("destination") if row.type == JobType.MOUNT.value else None
        if mountpoint and process_matches(row.pid, row.pid_start_time):
            # A mount's borg then exits by itself: let it.  A signal while it shuts
            # down can stall it (seen once in CI: stopped only by SIGKILL, 15 s on).
            # If a plain unmount fails (busy, or not ours to see), detach the mount:
            # either way borg's FUSE session ends, and it can exit.
            unmounted = await unmount(mountpoint) or await unmount(mountpoint, lazy=True)
            gone = unmounted and await _gone_within(row.pid, row.pid_start_time, UNMOUNTED_EXIT_S)
            log.info("recovery.unmounted", job_id=row.id, unmounted=unmounted, exited=gone)
        if process_matches(row.pid, row.pid_start_time) and not _is_zombie(row.pid):
            log.warning("recovery.stopping_orphan", job_id=row.id, pid=row.pid)
            await _stop_orphan(row.pid, row.pid_start_time, row.type)
        if mountpoint and is_mounted(mountpoint):
            await unmount(mountpoint, lazy=True)  # no stale FUSE mount survives a crash
        try:
            store.jobs.transition(
                row.id,
                JobStatus.INTERRUPTED,
                finished_at=clock(),
                pid=0,
                message="interrupted: borgd restarted while the job was running",
            )
        except StaleState:
            continue
        interrupted.add(row.id)
        log.warning("recovery.interrupted", job_id=row.id, type=row.type)
    # Scheduled backups interrupted by this crash, or by a clean stop before it, run again once.
    for row in store.jobs.with_status(JobStatus.INTERRUPTED):
        if (
            row.type == JobType.BACKUP.value
            and row.trigger in REQUEUE_TRIGGERS
            and not store.jobs.was_requeued(row.id)
        ):
            job = store.jobs.queue(
                now=clock(),
                type=row.type,
                trigger=Trigger.RECOVERY.value,
                profile=row.profile,
                repository=row.repository,
                repository_id=row.repository_id,
                schedule_id=row.schedule_id,
                requeued_from=row.id,
                options=row.options,
            )
            requeued.append(job)
            events.job_added(job)
        interrupted.add(row.id)
    for row in store.jobs.with_status(JobStatus.QUEUED):
        if row.trigger == Trigger.CHAIN.value and row.parent_id in interrupted:
            try:
                store.jobs.transition(
                    row.id,
                    JobStatus.SKIPPED,
                    expect=[JobStatus.QUEUED],
                    finished_at=clock(),
                    skip_reason=SkipReason.PARENT_FAILED.value,
                    message=f"its backup (job {row.parent_id}) was interrupted",
                )
            except StaleState:
                continue
    return requeued
