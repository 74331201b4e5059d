"""Overdue profiles: no successful backup for longer than the profile's ``max_age``.

A profile with ``max_age`` is overdue when its newest successful backup (a
backup job that ended ``succeeded`` or ``warning``) — or, before the first
one, the profile's creation — is older than ``max_age``.  The watcher keeps
each profile's state, emits ``ProfileChanged(name, {overdue, last_success})``
when it flips, and tells ``on_overdue`` (the notifications) once per
episode.  It sleeps on its own wall-clock timer until the instant the next
profile becomes overdue; a finished backup or a changed profile pokes it.
No polling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from borgd.clock import Clock
from borgd.core.jobs import JobStatus, JobType
from borgd.core.overdue import overdue_after
from borgd.core.records import Job
from borgd.events import Events, IgnoresEvents
from borgd.scheduling.timer import Timer
from borgd.scheduling.waker import Waker, Woke
from borgd.store import Store

log = structlog.get_logger(__name__)

SUCCESS = (JobStatus.SUCCEEDED.value, JobStatus.WARNING.value)
OverdueHook = Callable[[str, bool, dict[str, Any]], None]


class OverdueWatcher(IgnoresEvents):
    """Follows every profile's overdue state.

    ``on_overdue(name, overdue, info)`` is called when a profile becomes
    overdue (True) or stops being so (False); ``info`` has ``last_success``,
    ``max_age`` and ``since`` (the instant it became overdue).
    """

    def __init__(
        self,
        *,
        store: Store,
        events: Events,
        clock: Clock,
        timer: Timer,
        on_overdue: OverdueHook | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self.waker = Waker(timer)
        self.on_overdue = on_overdue
        self.overdue: dict[str, bool] = {}
        self.deadline: int | None = None
        self.timer_wakeups = 0

    def poke(self) -> None:
        self.waker.poke()

    async def run(self) -> None:
        while True:
            since = self.waker.generation
            self.deadline = self.step()
            reason = await self.waker.wait(self.deadline, since=since)
            if reason is not Woke.POKE:
                self.timer_wakeups += 1

    def step(self) -> int | None:
        """Update every profile's state; return when the next one becomes overdue."""
        now = self.clock()
        deadline: int | None = None
        seen: set[str] = set()
        successes = self.store.jobs.last_success_times()
        for row in self.store.catalog.profiles():
            name = row.name
            seen.add(name)
            max_age = int(row.max_age)
            last_success = successes.get(name, 0)
            due = overdue_after(max_age, last_success, int(row.created_at))
            overdue = due is not None and now > due
            if due is not None and not overdue:
                deadline = due + 1 if deadline is None else min(deadline, due + 1)
            if overdue != self.overdue.get(name, False):
                self._flip(name, overdue, last_success, max_age, due)
            self.overdue[name] = overdue
        for gone in set(self.overdue) - seen:
            del self.overdue[gone]
        return deadline

    def _flip(
        self, name: str, overdue: bool, last_success: int, max_age: int, due: int | None
    ) -> None:
        log.info("profile.overdue" if overdue else "profile.not_overdue", profile=name)
        self.events.profile_changed(name, {"overdue": overdue, "last_success": last_success})
        if self.on_overdue is not None:
            info = {"last_success": last_success, "max_age": max_age, "since": due}
            try:
                self.on_overdue(name, overdue, info)
            except Exception:
                log.exception("overdue.hook_failed", profile=name)

    # -- Events listener: what can change a profile's state -----------------------

    def job_changed(self, job_id: int, changed: dict[str, Any], job: Job) -> None:
        if changed.get("status") in SUCCESS and job.type is JobType.BACKUP:
            self.poke()

    def profile_changed(self, name: str, changed: dict[str, Any]) -> None:
        if set(changed) != {"overdue", "last_success"}:  # not our own signal
            self.poke()  # max_age changed, or the executor recorded a success
