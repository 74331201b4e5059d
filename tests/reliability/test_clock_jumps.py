"""Wall-clock jumps of an hour and of a day, forward and backward, at the service level.

The scheduler runs on a real store (SQLite file) with a fake clock and a fake
timer that returns CLOCK_CHANGED when the clock is set, as a timerfd armed
with TFD_TIMER_CANCEL_ON_SET does.  For a calendar spec (``hourly``), a daily
one and an interval (``every 1h``): one run on time, then the jump, then
time passes normally.  Checked: ``next_run`` right after the jump, the runs
that follow (trigger and occurrence), no occurrence run twice, one catch-up
(with one coalesced row when several were missed) for a forward jump,
nothing repeated after a backward jump, one intent at the end.

Semantics (borgd(8) on the wall clock being set; the scheduler's docstring):
forward is like downtime — the missed occurrences become one catch-up run; an
interval restarts from the late run's start.  Backward: occurrences already
handled do not run again (intents stay where they are), and an interval waits at
most one interval.

tests/unit/test_scheduler_service.py has single cases (+3 h and −50 min for
``hourly``, −5.5 h for an interval); this module is the hour/day matrix.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from borgd.app.schedules import Schedules
from borgd.clock import from_datetime
from borgd.core.jobs import JobStatus
from borgd.core.records import Job
from borgd.events import Events
from borgd.scheduling.conditions import Conditions
from borgd.scheduling.paths import PathProbe
from borgd.scheduling.scheduler import Scheduler, SchedulerListener
from borgd.scheduling.testing import FakeClock, FakeTimer
from borgd.store import Store
from borgd.store.jobs import JOBS

pytestmark = pytest.mark.anyio

MIN = 60 * 1_000_000
HOUR = 60 * MIN
DAY = 24 * HOUR


def at(day: int, hour: int, minute: int = 0) -> int:
    """An instant in January 2030 (UTC)."""
    return from_datetime(datetime(2030, 1, day, hour, minute, tzinfo=UTC))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def settle() -> None:
    """Until every other task is blocked and no callback is pending (without the 0.1 s
    sleeps of anyio.wait_all_tasks_blocked: these runs wait for idleness often)."""
    this = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for _ in range(100_000):
        await asyncio.sleep(0)
        if loop._ready:  # type: ignore[attr-defined]
            continue
        if all(
            t is this or (t._fut_waiter is not None and not t._fut_waiter.done())  # type: ignore[attr-defined]
            for t in asyncio.all_tasks()
        ):
            return
    raise AssertionError("the tasks never all blocked")


class World:
    """A store with one local repository and one profile; the scheduler on a fake clock.
    Queued jobs "run" at once: running, then succeeded, at the current fake time."""

    def __init__(self, tmp_path: Path, start: int) -> None:
        self.clock = FakeClock(start)
        self.store = Store.open(tmp_path / "borgd.sqlite3")
        (tmp_path / "repo").mkdir()
        repo_id = self.store.catalog.add_repository(
            {"name": "main", "url": str(tmp_path / "repo"), "created_at": start}
        )
        self.store.catalog.add_profile(
            {
                "name": "home",
                "repository_id": repo_id,
                "sources": ["/tmp"],
                "archive_template": "{now}",
                "created_at": start,
            }
        )
        self.events = Events()
        self.timer = FakeTimer(self.clock)
        self.scheduler = Scheduler(
            paths=PathProbe(in_thread=False),  # all in the loop: settle() sees it
            store=self.store,
            events=self.events,
            clock=self.clock,
            timer=self.timer,
            conditions=Conditions(),
            wake_executor=lambda: None,
            rng=random.Random(7),
            system_zone=lambda: "UTC",
        )
        self.events.subscribe(SchedulerListener(self.scheduler))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[World]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.scheduler.run)
            await settle()
            yield self
            tg.cancel_scope.cancel()

    def finish_queued(self) -> None:
        for job in self.store.jobs.with_status(JobStatus.QUEUED):
            now = self.clock()
            self.store.jobs.transition(job.id, JobStatus.RUNNING, started_at=now)
            row = self.store.jobs.transition(job.id, JobStatus.SUCCEEDED, finished_at=now)
            self.events.job_changed(job.id, {"status": "succeeded"}, row)

    async def advance_to(self, target: int) -> None:
        """Let time pass up to ``target``, stopping at every deadline armed on the way."""
        while True:
            await settle()
            self.finish_queued()
            pending = [d for d in self.timer.armed if d <= target]
            if not pending:
                break
            self.clock.advance_to(min(pending))
        self.clock.advance_to(target)
        await settle()
        self.finish_queued()
        await settle()

    async def jump(self, us: int) -> None:
        self.clock.set(us)
        await settle()
        self.finish_queued()
        await settle()

    def jobs(self) -> list[Job]:
        with self.store.engine.connect() as conn:
            return [
                Job.from_row(r) for r in conn.execute(JOBS.select().order_by(JOBS.c.id)).mappings()
            ]

    def runs(self) -> list[tuple[str, int]]:
        return [
            (j.trigger, int(j.options.get("occurrence") or j.scheduled_for))
            for j in self.jobs()
            if j.status == "succeeded"
        ]


@dataclass(frozen=True)
class Case:
    spec: str
    created: int  # when the schedule is added
    before: int  # time passes to here: one run on time
    jump: int  # then the clock is set by this much
    next_run: int  # next_run right after the jump
    horizon: int  # then time passes to here (wall clock, after the jump)
    runs: tuple[tuple[str, int], ...]  # every run, in order
    coalesced: int = 0  # occurrences one coalesced row stands for (0: none)


H, D = HOUR, DAY
CASES = {
    # hourly: added 09:30, ran 10:00, jump at 10:30.
    "hourly+1h": Case(
        "hourly", at(7, 9, 30), at(7, 10, 30), +H, at(7, 12), at(7, 13, 30),
        (("schedule", at(7, 10)), ("catch-up", at(7, 11)), ("schedule", at(7, 12)),
         ("schedule", at(7, 13))),
    ),
    "hourly+1d": Case(
        "hourly", at(7, 9, 30), at(7, 10, 30), +D, at(8, 11), at(8, 12, 30),
        (("schedule", at(7, 10)), ("catch-up", at(8, 10)), ("schedule", at(8, 11)),
         ("schedule", at(8, 12))),
        coalesced=24,
    ),
    "hourly-1h": Case(
        "hourly", at(7, 9, 30), at(7, 10, 30), -H, at(7, 11), at(7, 12, 30),
        (("schedule", at(7, 10)), ("schedule", at(7, 11)), ("schedule", at(7, 12))),
    ),
    "hourly-1d": Case(
        "hourly", at(7, 9, 30), at(7, 10, 30), -D, at(7, 11), at(7, 12, 30),
        (("schedule", at(7, 10)), ("schedule", at(7, 11)), ("schedule", at(7, 12))),
    ),
    # daily: added the evening before, ran at midnight, jump at 00:30.
    "daily+1h": Case(
        "daily", at(6, 23, 30), at(7, 0, 30), +H, at(8, 0), at(9, 0, 30),
        (("schedule", at(7, 0)), ("schedule", at(8, 0)), ("schedule", at(9, 0))),
    ),
    "daily+1d": Case(
        "daily", at(6, 23, 30), at(7, 0, 30), +D, at(9, 0), at(9, 0, 30),
        (("schedule", at(7, 0)), ("catch-up", at(8, 0)), ("schedule", at(9, 0))),
    ),
    "daily-1h": Case(
        "daily", at(6, 23, 30), at(7, 0, 30), -H, at(8, 0), at(8, 0, 30),
        (("schedule", at(7, 0)), ("schedule", at(8, 0))),
    ),
    "daily-1d": Case(
        "daily", at(6, 23, 30), at(7, 0, 30), -D, at(8, 0), at(8, 0, 30),
        (("schedule", at(7, 0)), ("schedule", at(8, 0))),
    ),
    # every 1h: added 09:30, ran 10:30, jump at 11:00 (intent 11:30).
    "interval+1h": Case(
        "every 1h", at(7, 9, 30), at(7, 11), +H, at(7, 13), at(7, 14, 30),
        (("schedule", at(7, 10, 30)), ("catch-up", at(7, 11, 30)), ("schedule", at(7, 13)),
         ("schedule", at(7, 14))),
    ),
    "interval+1d": Case(
        "every 1h", at(7, 9, 30), at(7, 11), +D, at(8, 12), at(8, 13, 30),
        (("schedule", at(7, 10, 30)), ("catch-up", at(8, 10, 30)), ("schedule", at(8, 12)),
         ("schedule", at(8, 13))),
        coalesced=24,
    ),
    "interval-1h": Case(
        "every 1h", at(7, 9, 30), at(7, 11), -H, at(7, 11), at(7, 12, 30),
        (("schedule", at(7, 10, 30)), ("schedule", at(7, 11)), ("schedule", at(7, 12))),
    ),
    "interval-1d": Case(
        "every 1h", at(7, 9, 30), at(7, 11), -D, at(6, 12), at(6, 13, 30),
        (("schedule", at(7, 10, 30)), ("schedule", at(6, 12)), ("schedule", at(6, 13))),
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
async def test_clock_jump(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    world = World(tmp_path, case.created)
    async with world.running():
        schedules = Schedules(store=world.store, clock=world.clock, scheduler=world.scheduler)
        schedules.add_schedule("home", "backup", case.spec, {})
        await world.advance_to(case.before)
        assert len(world.runs()) == 1, world.runs()

        await world.jump(case.before + case.jump)
        intents = [j for j in world.jobs() if j.status == "scheduled"]
        assert [j.scheduled_for for j in intents] == [case.next_run]
        assert world.scheduler.next_run == case.next_run

        await world.advance_to(case.horizon)
        runs = world.runs()
        twice = [occ for occ, n in Counter(o for _, o in runs).items() if n > 1]
        assert twice == [], f"occurrences run twice: {twice}"
        assert runs == list(case.runs)
        coalesced = [j for j in world.jobs() if j.skip_reason == "coalesced"]
        assert [j.options["coalesced"] for j in coalesced] == (
            [case.coalesced] if case.coalesced else []
        )
        others = [j for j in world.jobs() if j.status not in ("succeeded", "scheduled")]
        assert others == coalesced, others
        assert len([j for j in world.jobs() if j.status == "scheduled"]) == 1
