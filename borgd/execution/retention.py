"""Job history retention: finished jobs and their logs do not pile up forever.

A finished job (and its log file) goes when it finished more than
`keep_days` days ago, or when its profile has more than `keep_jobs` newer
finished jobs (init jobs, which have no profile, count as one group).
Scheduled, queued and running jobs are never touched.  Log files whose job
row is gone (a crash between the two deletions) are removed as well.

`expire_jobs` does one pass; `retention_loop` runs it at start and then once
a day.  The day is measured with `anyio.sleep`, i.e. on the monotonic clock,
which stops while the machine sleeps: on a laptop the pass may come later than
24 h of wall time, which is harmless for housekeeping.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import anyio
import structlog

from borgd.clock import Clock
from borgd.execution import joblog
from borgd.store import Store
from borgd.store.jobs import JobRow

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


def expire_jobs(
    store: Store, logs_dir: Path, now: int, retention: Retention = Retention()
) -> list[JobRow]:
    """Delete expired finished jobs and their log files; returns the deleted rows."""
    gone = store.jobs.expire(
        older_than=now - retention.keep_days * DAY_US, keep_per_profile=retention.keep_jobs
    )
    for row in gone:
        joblog.remove(row["log_path"])
        joblog.remove(str(joblog.log_path(logs_dir, row["id"])))
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


async def retention_loop(
    store: Store,
    logs_dir: Path,
    clock: Clock,
    retention: Retention = Retention(),
    *,
    interval: float = INTERVAL,
) -> None:
    """Expire at start, then once a day (see the module docstring)."""
    while True:
        try:
            # In a worker thread: a first expiry over a long history (tens of
            # thousands of rows and files) must not stall the bus.
            await anyio.to_thread.run_sync(expire_jobs, store, logs_dir, clock(), retention)
        except Exception:
            log.exception("retention.failed")
        await anyio.sleep(interval)
