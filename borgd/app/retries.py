"""Retries as rows: a scheduled run that failed for a passing cause gets a `scheduled`
job with trigger `retry`, linked to it by `requeued_from`.

Being a row, a retry shows in every list, survives a restart of borgd, and is
started by the scheduler like any due intent (held by the same conditions and
blackout windows).  Subscribe :class:`RetryPolicy` to :class:`~borgd.events.Events`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from borgd.clock import Clock, to_datetime
from borgd.core.jobs import JobStatus, Trigger
from borgd.core.records import Job
from borgd.core.retries import next_retry
from borgd.events import Events, IgnoresEvents
from borgd.store import Store
from borgd.store.catalog import NotFound
from borgd.store.engine import StoreUnavailable

log = structlog.get_logger(__name__)


class RetryPolicy(IgnoresEvents):
    def __init__(
        self, *, store: Store, events: Events, clock: Clock, on_planned: Callable[[], None]
    ) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self.on_planned = on_planned

    def job_changed(self, job_id: int, changed: dict[str, Any], job: Job) -> None:
        if changed.get("status") != JobStatus.FAILED or not job.schedule_id:
            return
        try:
            self._plan(job)
        except StoreUnavailable as exc:
            # The failure is recorded; its retry is lost with the store's outage (logged).
            log.warning("retry.not_planned", job_id=job_id, reason=str(exc))

    def _plan(self, job: Job) -> None:
        try:
            sched = self.store.catalog.schedule(job.schedule_id)
        except NotFound:
            return
        retry = next_retry(
            status=job.status,
            trigger=job.trigger,
            options=job.options,
            finished_at=job.finished_at or self.clock(),
            retries=sched.retries,
            base_delay_us=sched.retry_delay,
        )
        if retry is None:
            return
        when = to_datetime(retry.due).astimezone().strftime("%H:%M:%S")
        row = self.store.jobs.create(
            type=job.type.value,
            status=JobStatus.SCHEDULED.value,
            trigger=Trigger.RETRY.value,
            profile=job.profile,
            repository=job.repository,
            repository_id=job.repository_id,
            schedule_id=job.schedule_id,
            requeued_from=job.id,
            scheduled_for=retry.due,
            created_at=self.clock(),
            options={"attempt": retry.attempt, "of": sched.retries, "cause": retry.cause},
            message=f"retry {retry.attempt} of {sched.retries} of job {job.id} "
            f"({retry.cause}) at {when}",
        )
        log.info(
            "retry.planned",
            job_id=row.id,
            failed_job=job.id,
            attempt=retry.attempt,
            cause=retry.cause,
            due=retry.due,
        )
        self.events.job_added(row)
        self.on_planned()


__all__ = ["RetryPolicy"]
