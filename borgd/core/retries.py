"""When a failed scheduled run is tried again: pure, the clock is an argument.

DESIGN "Triggers, retries, windows, limits": a schedule's ``retries`` (0–10)
and ``retry_delay`` (doubled per attempt, at most 6 h).  Only a failure for a
passing cause (``exit_codes.passing_cause``) of a run the schedule started
(on time, as a catch-up, or as an earlier retry) is tried again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from borgd.core.jobs import JobStatus, Trigger

MAX_DELAY_US = 6 * 3600 * 1_000_000
RETRIED_TRIGGERS = frozenset({Trigger.SCHEDULE, Trigger.CATCH_UP, Trigger.RETRY})


@dataclass(frozen=True)
class Retry:
    attempt: int  # 1 for the first retry
    due: int  # µs
    cause: str


def retry_delay(base_us: int, attempt: int) -> int:
    """``base_us`` for the first retry, doubled for each one after, at most 6 h."""
    return min(base_us << max(0, attempt - 1), MAX_DELAY_US)


def next_retry(
    *,
    status: JobStatus,
    trigger: Trigger,
    options: dict[str, Any],
    finished_at: int,
    retries: int,
    base_delay_us: int,
) -> Retry | None:
    """The retry a finished job gets, or None (not failed, not passing, none left)."""
    cause = options.get("passing")
    if status is not JobStatus.FAILED or trigger not in RETRIED_TRIGGERS or not cause:
        return None
    attempt = int(options.get("attempt") or 0) + 1
    if attempt > retries:
        return None
    return Retry(attempt, finished_at + retry_delay(base_delay_us, attempt), str(cause))


__all__ = ["MAX_DELAY_US", "RETRIED_TRIGGERS", "Retry", "next_retry", "retry_delay"]
