"""Job history retention: finished jobs and their logs do not pile up forever.

A finished job (and its log file) goes when it finished more than
`keep_days` days ago, or when its profile has more than `keep_jobs` newer
finished jobs (init jobs, which have no profile, count as one group).
Scheduled, queued and running jobs are never touched.  Log files whose job
row is gone (a crash between the two deletions) are removed as well.

`expire_jobs` does one pass.  `RetentionRunner` runs a pass at start, after
every finished job (`poke`, so `--keep-jobs` holds at all times, not only
once a day) and once a day.  Its pass ranks the history in a worker thread
(a read: it holds no lock the event loop needs), deletes in small batches on
the event loop (each a short write) and removes files in a worker thread.
The day is measured on the monotonic clock, which stops while the machine
sleeps: on a laptop the daily pass may come later, which is harmless.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import anyio
import structlog

from borgd.clock import Clock
from borgd.core.records import Job
from borgd.execution import joblog
from borgd.store import Store, StoreUnavailable
from borgd.wakeups import Poke

log = structlog.get_logger(__name__)

DEFAULT_KEEP_DAYS = 180
DEFAULT_KEEP_JOBS = 100
DAY_US = 86_400 * 1_000_000
INTERVAL = 86_400.0  # seconds between passes


@dataclass(frozen=True)
class Retention:
    keep_days: int = DEFAULT_KEEP_DAYS
    keep_jobs: int = DEFAULT_KEEP_JOBS

    def __post_init__(self) -> None:
        if self.keep_days < 1:
            raise ValueError("keep_days must be at least 1")
        if self.keep_jobs < 1:
            raise ValueError("keep_jobs must be at least 1")


def _remove_logs(logs_dir: Path, rows: list[Job]) -> None:
    for row in rows:
        joblog.remove(row.log_path)
        joblog.remove(str(joblog.log_path(logs_dir, row.id)))


def expire_jobs(
    store: Store, logs_dir: Path, now: int, retention: Retention = Retention()
) -> list[Job]:
    """Delete expired finished jobs and their log files; returns the deleted rows."""
    gone = store.jobs.expire(
        older_than=now - retention.keep_days * DAY_US, keep_per_profile=retention.keep_jobs
    )
    _remove_logs(logs_dir, gone)
    orphans = _remove_orphan_logs(store, logs_dir)
    if gone or orphans:
        log.info("retention.expired", jobs=len(gone), orphan_logs=orphans)
    return gone


def _remove_orphan_logs(store: Store, logs_dir: Path) -> int:
    removed = 0
    try:
        names = os.listdir(logs_dir)
    except FileNotFoundError:
        return 0
    for name in names:
        stem, dot, ext = name.partition(".")
        if ext != "log" or not dot or not stem.isdigit():
            continue
        if store.jobs.find(int(stem)) is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(logs_dir / name)
                removed += 1
    return removed


BATCH = 200  # jobs deleted in one write on the event loop


class RetentionRunner:
    def __init__(
        self,
        store: Store,
        logs_dir: Path,
        clock: Clock,
        retention: Retention = Retention(),
        *,
        interval: float = INTERVAL,
    ) -> None:
        self.store = store
        self.logs_dir = logs_dir
        self.clock = clock
        self.retention = retention
        self.interval = interval
        # A job finished: a pass soon (several finishing during one pass make one more).
        self.poke = Poke()

    async def expire(self) -> list[Job]:
        store, keep = self.store, self.retention
        ids = await anyio.to_thread.run_sync(
            lambda: store.jobs.expired_ids(
                older_than=self.clock() - keep.keep_days * DAY_US,
                keep_per_profile=keep.keep_jobs,
            )
        )
        gone: list[Job] = []
        for start in range(0, len(ids), BATCH):
            rows = store.jobs.delete_finished(ids[start : start + BATCH])
            gone.extend(rows)
            await anyio.to_thread.run_sync(_remove_logs, self.logs_dir, rows)
        orphans = await anyio.to_thread.run_sync(_remove_orphan_logs, store, self.logs_dir)
        # Deliveries that ended (sent, failed, dropped) live as long as finished jobs.
        deliveries = store.notifiers.forget(older_than=self.clock() - keep.keep_days * DAY_US)
        if gone or orphans or deliveries:
            log.info(
                "retention.expired", jobs=len(gone), orphan_logs=orphans, deliveries=deliveries
            )
        return gone

    async def run(self) -> None:
        while True:
            since = self.poke.generation
            try:
                await self.expire()
            except StoreUnavailable:
                await self.store.health.wait_recovered()
                continue
            except Exception:
                log.exception("retention.failed")
            await self.poke.wait(since, self.interval)


async def retention_loop(
    store: Store,
    logs_dir: Path,
    clock: Clock,
    retention: Retention = Retention(),
    *,
    interval: float = INTERVAL,
) -> None:
    """A pass at start, then once a day (see the module docstring)."""
    await RetentionRunner(store, logs_dir, clock, retention, interval=interval).run()
