"""The scheduler as a service: real store (SQLite file), fake clock and timer.

Hours pass in milliseconds: the test moves a :class:`FakeClock`, the
scheduler's :class:`FakeTimer` returns when a deadline is reached (or with
CLOCK_CHANGED when the clock is set), and the test waits for all tasks to be
blocked before it looks at the store.  Nothing sleeps for real.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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

S = 1_000_000
MIN = 60 * S
HOUR = 60 * MIN


def at(hour: int, minute: int = 0, second: int = 0, day: int = 7) -> int:
    """An instant on Monday 2030-01-07 (UTC)."""
    return from_datetime(datetime(2030, 1, day, hour, minute, second, tzinfo=UTC))


async def settle() -> None:
    """Wait until every other task is blocked and no callback is pending: what
    ``anyio.wait_all_tasks_blocked`` checks, without its 0.1 s sleeps (these tests
    wait for idleness hundreds of times)."""
    this = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for _ in range(100_000):
        await asyncio.sleep(0)
        if loop._ready:  # type: ignore[attr-defined]
            continue  # callbacks (a wake-up, a cancellation) still to run
        if all(
            t is this or (t._fut_waiter is not None and not t._fut_waiter.done())  # type: ignore[attr-defined]
            for t in asyncio.all_tasks()
        ):
            return
    raise AssertionError("the tasks never all blocked")


def variants(options: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """Options as the D-Bus adapter passes them: {key: (signature, value)}."""
    sig = {bool: "b", int: "t", str: "s"}
    return {k: (sig[type(v)], v) for k, v in options.items()}


class Recorder:
    def __init__(self) -> None:
        self.manager: list[dict[str, Any]] = []
        self.changed: list[tuple[int, dict[str, Any]]] = []
        self.added: list[dict[str, Any]] = []
        self.profiles: list[tuple[str, dict[str, Any]]] = []

    def job_added(self, job: dict[str, Any]) -> None:
        self.added.append(job)

    def job_changed(self, job_id: int, changed: dict[str, Any], job: dict[str, Any]) -> None:
        self.changed.append((job_id, changed))

    def job_removed(self, job_id: int) -> None:
        pass

    def profile_changed(self, name: str, changed: dict[str, Any]) -> None:
        self.profiles.append((name, changed))

    def manager_changed(self, changed: dict[str, Any]) -> None:
        self.manager.append(changed)


class Harness:
    """A store with repository ``main`` (a local folder) and profile ``home``."""

    def __init__(self, tmp_path: Path, start: int, zone: str = "UTC") -> None:
        self.tmp_path = tmp_path
        self.clock = FakeClock(start)
        self.zone = zone
        self.store = Store.open(tmp_path / "borgd.sqlite3")
        self.conditions = Conditions()
        self.rec = Recorder()
        self.executor_wakes = 0
        self.add_repository("main", str(tmp_path / "repo"))
        (tmp_path / "repo").mkdir()
        self.add_profile("home", "main")
        self.scheduler = self.new_scheduler()

    def add_repository(self, name: str, url: str) -> int:
        return self.store.catalog.add_repository(
            {"name": name, "url": url, "created_at": self.clock()}
        )

    def add_profile(self, name: str, repository: str, **values: Any) -> int:
        repo = self.store.catalog.repository(repository)
        return self.store.catalog.add_profile(
            {
                "name": name,
                "repository_id": repo.id,
                "sources": ["/tmp"],
                "archive_template": "{now}",
                "created_at": self.clock(),
                **values,
            }
        )

    def new_scheduler(self) -> Scheduler:
        """A scheduler as a (re)started daemon builds it."""
        self.events = Events()
        self.events.subscribe(self.rec)
        self.timer = FakeTimer(self.clock)

        def wake() -> None:
            self.executor_wakes += 1

        scheduler = Scheduler(
            paths=PathProbe(in_thread=False),  # all in the loop: settle() sees it
            store=self.store,
            events=self.events,
            clock=self.clock,
            timer=self.timer,
            conditions=self.conditions,
            wake_executor=wake,
            rng=random.Random(7),
            system_zone=lambda: self.zone,
        )
        self.events.subscribe(SchedulerListener(scheduler))
        return scheduler

    @property
    def schedules(self) -> Schedules:
        """The use cases the D-Bus methods call, over this harness's scheduler."""
        return Schedules(store=self.store, clock=self.clock, scheduler=self.scheduler)

    def add(self, spec: str, profile: str = "home", **options: Any) -> int:
        return self.schedules.add_schedule(profile, "backup", spec, variants(options))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Harness]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.scheduler.run)
            await settle()
            yield self
            tg.cancel_scope.cancel()

    async def settle(self) -> None:
        await settle()

    async def advance_to(self, target: int, *, finish: bool = True) -> None:
        """Move the clock to ``target``, stopping at every deadline the scheduler
        armed on the way (as the real timer would fire); queued jobs then run to
        success at once unless ``finish`` is False."""
        while True:
            await self.settle()
            if finish:
                self.finish_queued()
            pending = [d for d in self.timer.armed if d <= target]
            if not pending:
                break
            self.clock.advance_to(min(pending))
        self.clock.advance_to(target)
        await self.settle()
        if finish:
            self.finish_queued()
            await self.settle()

    async def set_clock(self, us: int) -> None:
        self.clock.set(us)
        await self.settle()

    def finish_queued(self) -> None:
        for job in self.store.jobs.with_status(JobStatus.QUEUED):
            now = self.clock()
            self.store.jobs.transition(job.id, JobStatus.RUNNING, started_at=now)
            row = self.store.jobs.transition(job.id, JobStatus.SUCCEEDED, finished_at=now)
            self.events.job_changed(job.id, {"status": "succeeded"}, row)

    # -- looking at the store ----------------------------------------------------

    def jobs(self, **where: Any) -> list[Job]:
        with self.store.engine.connect() as conn:
            rows = [
                Job.from_row(r) for r in conn.execute(JOBS.select().order_by(JOBS.c.id)).mappings()
            ]
        return [j for j in rows if all(getattr(j, k) == v for k, v in where.items())]

    def intents(self) -> list[Job]:
        return self.jobs(status="scheduled")

    def intent(self) -> Job:
        (one,) = self.intents()
        return one

    def runs(self) -> list[Job]:
        return [j for j in self.jobs() if j.status in ("queued", "running", "succeeded")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- on time ----------------------------------------------------------------------


async def test_runs_start_at_their_occurrences_and_the_next_is_planned_at_once(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, at(9, 59, 55))
    async with h.running():
        sid = h.add("*:*:0/10")
        await h.settle()
        assert h.intent().scheduled_for == at(10)
        assert h.scheduler.next_run == at(10)
        await h.advance_to(at(10, 1) - 1)
        runs = h.runs()
        assert [r.scheduled_for for r in runs] == [at(10, 0, s) for s in range(0, 60, 10)]
        assert all(r.queued_at == r.scheduled_for for r in runs)
        assert {(r.trigger, r.schedule_id) for r in runs} == {("schedule", sid)}
        # Exactly one intent, for the next occurrence; NextRun follows it.
        assert h.intent().scheduled_for == at(10, 1)
        assert h.scheduler.next_run == at(10, 1)
        assert {"NextRun": at(10, 1)} in h.rec.manager
        assert h.scheduler.timer_wakeups == 6
        assert h.scheduler.idle_wakeups == 0
        assert h.executor_wakes == 6


async def test_randomized_delay_stays_within_its_bound_and_does_not_drift(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(9, 30))
    async with h.running():
        h.add("hourly", randomized_delay=10 * MIN)
        await h.advance_to(at(12, 30))
        runs = h.runs()
        assert len(runs) == 3
        for hour, run in zip((10, 11, 12), runs, strict=True):
            assert at(hour) <= run.scheduled_for < at(hour, 10)
            assert run.options["occurrence"] == at(hour)
            assert run.trigger == "schedule"
        assert h.intent().options["occurrence"] == at(13)


# -- downtime: catch-up, coalescing, windows ------------------------------------------


async def down_between(h: Harness, stop: int, restart: int) -> None:
    """Run the daemon until ``stop``, keep it down until ``restart``, start it again."""
    async with h.running():
        await h.advance_to(stop)
    h.clock.advance_to(restart)
    h.scheduler = h.new_scheduler()


async def test_missed_occurrences_become_one_catch_up_and_one_coalesced_row(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, at(9, 30))
    sid = h.add("hourly")
    await down_between(h, at(9, 45), at(13, 20))
    async with h.running():
        queued = h.jobs(status="queued")
        assert len(queued) == 1, "never a burst of back-to-back runs"
        (catch_up,) = queued
        assert catch_up.trigger == "catch-up"
        assert catch_up.schedule_id == sid
        assert catch_up.scheduled_for == at(13)
        (coalesced,) = h.jobs(skip_reason="coalesced")
        assert coalesced.status == "skipped"
        assert coalesced.schedule_id == sid
        assert coalesced.options["coalesced"] == 4
        assert (coalesced.options["first"], coalesced.options["last"]) == (at(10), at(13))
        assert "4 missed occurrences from 2030-01-07 10:00:00" in coalesced.message
        assert "to 2030-01-07 13:00:00" in coalesced.message
        assert f"job {catch_up.id}" in coalesced.message
        # The next regular occurrence is planned, and runs on time.
        assert h.intent().scheduled_for == at(14)
        await h.advance_to(at(14, 30))
        assert [(r.trigger, r.scheduled_for) for r in h.runs()] == [
            ("catch-up", at(13)),
            ("schedule", at(14)),
        ]


@pytest.mark.parametrize(
    ("restart", "trigger"),
    [(at(10, 0, 30), "schedule"), (at(10, 5), "catch-up")],
    ids=["30s-late-is-on-time", "5min-late-is-a-catch-up"],
)
async def test_one_missed_occurrence(tmp_path: Path, restart: int, trigger: str) -> None:
    h = Harness(tmp_path, at(9, 30))
    h.add("hourly")
    await down_between(h, at(9, 50), restart)
    async with h.running():
        (run,) = h.jobs(status="queued")
        assert run.trigger == trigger
        assert h.jobs(skip_reason="coalesced") == []


@pytest.mark.parametrize(
    ("options", "caught_up"),
    [
        ({"catch_up_window": 30 * MIN}, True),
        ({"catch_up_window": 10 * MIN}, False),
        ({"catch_up": False}, False),
    ],
    ids=["inside-window", "beyond-window", "catch-up-off"],
)
async def test_catch_up_window(tmp_path: Path, options: dict[str, Any], caught_up: bool) -> None:
    h = Harness(tmp_path, at(9, 30))
    h.add("hourly", **options)
    await down_between(h, at(9, 45), at(13, 20))
    async with h.running():
        if caught_up:
            assert len(h.jobs(status="queued", trigger="catch-up")) == 1
            assert h.jobs(skip_reason="missed-window") == []
        else:
            assert h.jobs(status="queued") == []
            (missed,) = h.jobs(skip_reason="missed-window")
            assert "4 occurrences from 2030-01-07 10:00:00" in missed.message
            assert h.jobs(skip_reason="coalesced") == []
        assert h.intent().scheduled_for == at(14)


# -- conditions ----------------------------------------------------------------------


async def test_held_back_job_starts_when_the_condition_clears(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(9, 30))
    h.conditions.on_battery = True
    async with h.running():
        h.add("hourly", skip_on_battery=True)
        await h.advance_to(at(10, 20))
        intent = h.intent()
        assert (intent.scheduled_for, intent.blocked_by) == (at(10), "on-battery")
        assert h.runs() == []
        # Held back, the timer waits for the overtaking occurrence, not a tick.
        assert h.timer.armed == [at(11)]

        h.conditions.on_battery = False
        h.scheduler.poke()
        await h.settle()
        (run,) = h.jobs(status="queued")
        assert (run.trigger, run.queued_at) == ("schedule", at(10, 20))
        assert run.blocked_by == ""
        assert h.jobs(skip_reason="coalesced") == []
        assert h.intent().scheduled_for == at(11)


async def test_held_back_job_overtaken_by_its_next_occurrence_is_skipped(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(9, 30))
    h.conditions.on_battery = True
    async with h.running():
        h.add("hourly", skip_on_battery=True)
        await h.advance_to(at(11, 0, 1))
        (skipped,) = h.jobs(status="skipped")
        assert (skipped.scheduled_for, skipped.skip_reason) == (at(10), "on-battery")
        assert skipped.finished_at == at(11)
        intent = h.intent()
        assert (intent.scheduled_for, intent.blocked_by) == (at(11), "on-battery")
        assert intent.trigger == "schedule"
        assert h.runs() == []


async def test_missed_while_down_and_held_back_waits_as_one_catch_up(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(9, 30))
    h.conditions.on_battery = True
    h.add("hourly", skip_on_battery=True)
    await down_between(h, at(9, 45), at(12, 10))
    async with h.running():
        intent = h.intent()
        assert (intent.trigger, intent.blocked_by) == ("catch-up", "on-battery")
        assert len(h.jobs(skip_reason="coalesced")) == 1
        await h.advance_to(at(12, 30))
        assert h.runs() == []
        h.conditions.on_battery = False
        h.scheduler.poke()
        await h.settle()
        (run,) = h.jobs(status="queued")
        assert (run.id, run.trigger) == (intent.id, "catch-up")
        assert h.intent().scheduled_for == at(13)


async def test_conditions_hold_back_by_repository_kind(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(9, 30))
    h.add_repository("remote", "ssh://backup@example.org/./repo")
    h.add_profile("far", "remote")
    h.add_repository("disk", str(tmp_path / "unplugged"))
    h.add_profile("usb", "disk")
    h.conditions.metered = True
    async with h.running():
        local = h.add("hourly", skip_on_metered=True)
        remote = h.add("hourly", profile="far", skip_on_metered=True)
        usb = h.add("hourly", profile="usb")
        await h.advance_to(at(10, 0, 1), finish=False)
        blocked = {j.schedule_id: j.blocked_by for j in h.intents()}
        assert blocked == {remote: "metered-network", usb: "repository-unavailable", local: ""}
        assert [j.schedule_id for j in h.jobs(status="queued")] == [local]

        # The disk appears (the mount watcher pokes): its job starts.
        (tmp_path / "unplugged").mkdir()
        h.conditions.metered = False
        h.conditions.network_settled = False  # just resumed: the network is not back
        h.scheduler.poke()
        await h.settle()
        assert {j.schedule_id: j.blocked_by for j in h.intents() if j.blocked_by} == {
            remote: "network-unavailable"
        }
        h.conditions.network_settled = True
        h.conditions.locked_secrets = {"remote"}
        h.scheduler.poke()
        await h.settle()
        assert {j.schedule_id: j.blocked_by for j in h.intents() if j.blocked_by} == {
            remote: "secret-unavailable"
        }
        h.conditions.locked_secrets = set()
        h.scheduler.poke()
        await h.settle()
        assert sorted(j.schedule_id for j in h.jobs(status="queued")) == [local, remote, usb]


async def test_interval_counts_from_the_start_of_a_late_run(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(9))
    h.conditions.on_battery = True
    async with h.running():
        h.add("every 1h", skip_on_battery=True)
        await h.advance_to(at(10, 20))
        h.conditions.on_battery = False
        h.scheduler.poke()
        await h.settle()
        assert h.intent().scheduled_for == at(11, 20)
        await h.advance_to(at(12, 30))
        assert [r.queued_at for r in h.runs()] == [at(10, 20), at(11, 20), at(12, 20)]


async def test_previous_run_still_active_skips_the_occurrence(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(9, 59))
    async with h.running():
        h.add("*:0/30")
        await h.advance_to(at(10, 31), finish=False)
        (skipped,) = h.jobs(status="skipped")
        assert (skipped.scheduled_for, skipped.skip_reason) == (at(10, 30), "already-active")
        assert len(h.jobs(status="queued")) == 1


# -- pause ----------------------------------------------------------------------------


async def test_pause_skips_occurrences_inside_and_expires_by_itself(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(9, 59, 55))
    async with h.running():
        h.add("*:*:0/10")
        await h.advance_to(at(10, 0, 5))
        h.schedules.pause(at(10, 0, 35))
        await h.advance_to(at(10, 0, 45))
        skipped = h.jobs(status="skipped")
        assert [(j.scheduled_for, j.skip_reason) for j in skipped] == [
            (at(10, 0, s), "paused") for s in (10, 20, 30)
        ]
        assert [r.scheduled_for for r in h.runs()] == [at(10, 0, 0), at(10, 0, 40)]
        assert h.scheduler.paused is False
        assert h.rec.manager.count({"Paused": False, "PausedUntil": 0}) == 1
        assert h.store.catalog.setting("paused") == "0"


async def test_pause_survives_a_restart_and_expires_while_down(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(9, 59, 55))
    h.add("*:*:0/10")
    async with h.running():
        await h.advance_to(at(10, 0, 5))
        h.schedules.pause(at(10, 0, 35))
    # Restart during the pause: still paused, same end.
    h.scheduler = h.new_scheduler()
    assert (h.scheduler.paused, h.scheduler.paused_until) == (True, at(10, 0, 35))
    await down_between(h, at(10, 0, 15), at(10, 1, 5))
    async with h.running():
        paused = h.jobs(skip_reason="paused")
        assert [j.scheduled_for for j in paused] == [at(10, 0, 10), at(10, 0, 20)]
        assert "2 occurrences" in paused[1].message  # 10:00:20 and 10:00:30
        # What was missed after the pause ended is caught up once.
        (catch_up,) = h.jobs(status="queued")
        assert (catch_up.trigger, catch_up.scheduled_for) == ("catch-up", at(10, 1))
        (coalesced,) = h.jobs(skip_reason="coalesced")
        assert coalesced.options["coalesced"] == 3  # 10:00:40, :50, 10:01:00
        assert h.scheduler.paused is False


async def test_schedule_pause_only_affects_that_schedule(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(9, 59, 55))
    async with h.running():
        first = h.add("*:*:0/10")
        second = h.add("*:*:5/10")
        h.schedules.pause_schedule(first, at(10, 0, 25))
        await h.advance_to(at(10, 0, 30))
        assert [j.scheduled_for for j in h.jobs(skip_reason="paused")] == [
            at(10, 0, s) for s in (0, 10, 20)
        ]
        assert all(j.schedule_id == first for j in h.jobs(skip_reason="paused"))
        assert {r.schedule_id for r in h.runs()} == {first, second}
        assert h.store.catalog.schedule(first).paused is False


# -- the clock and the zone ----------------------------------------------------------


async def test_clock_set_forward_catches_up_once(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(9, 30))
    async with h.running():
        h.add("hourly")
        await h.advance_to(at(10, 30))
        await h.set_clock(at(13, 30))
        assert len(h.jobs(status="queued")) == 1
        (coalesced,) = h.jobs(skip_reason="coalesced")
        assert coalesced.options["coalesced"] == 3
        assert h.intent().scheduled_for == at(14)
        assert h.scheduler.next_run == at(14)
        await h.advance_to(at(14, 30))
        assert [(r.trigger, r.scheduled_for) for r in h.runs()] == [
            ("schedule", at(10)),
            ("catch-up", at(13)),
            ("schedule", at(14)),
        ]


async def test_clock_set_back_neither_repeats_nor_loses_a_run(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(9, 30))
    async with h.running():
        h.add("hourly")
        await h.advance_to(at(10, 30))
        await h.set_clock(at(9, 40))
        assert h.intent().scheduled_for == at(11)
        assert h.scheduler.next_run == at(11)
        await h.advance_to(at(10, 30))  # 10:00 again on the wall clock: already ran
        assert [r.scheduled_for for r in h.runs()] == [at(10)]
        await h.advance_to(at(11, 30))
        assert [r.scheduled_for for r in h.runs()] == [at(10), at(11)]
        assert h.jobs(status="skipped") == []


async def test_clock_set_back_far_keeps_an_interval_within_one_interval(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(9))
    async with h.running():
        h.add("every 1h")
        await h.advance_to(at(10, 30))
        await h.set_clock(at(5))
        assert h.intent().scheduled_for == at(6)
        assert h.scheduler.next_run == at(6)


async def test_time_zone_change_replans_schedules_in_the_local_zone(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(12), zone="Europe/Berlin")
    async with h.running():
        local = h.add("*-*-* 03:00")
        pinned = h.add("*-*-* 03:00", timezone="Europe/Berlin")
        every = h.add("every 6h")
        await h.settle()
        before = {j.schedule_id: j.scheduled_for for j in h.intents()}
        assert before[local] == before[pinned] == at(2, day=8)  # 03:00 CET
        h.zone = "America/New_York"
        h.scheduler.timezone_changed()
        await h.settle()
        after = {j.schedule_id: j.scheduled_for for j in h.intents()}
        assert after[local] == at(8, day=8)  # 03:00 EST
        assert after[pinned] == before[pinned]
        assert after[every] == before[every]
        assert h.scheduler.next_run == min(after.values())


async def test_far_future_schedule_does_not_wake_the_daemon(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(12))
    async with h.running():
        h.add("2030-02-16 12:00:00 UTC")
        await h.settle()
        due = from_datetime(datetime(2030, 2, 16, 12, tzinfo=UTC))
        assert h.intent().scheduled_for == due
        assert h.schedules.list_schedules()[0]["next_run"] == due
        assert h.timer.armed == [due]
        wakeups = h.scheduler.wakeups
        h.clock.advance_to(due - HOUR)  # 39 days later
        await h.settle()
        assert h.scheduler.timer_wakeups == 0
        assert h.scheduler.idle_wakeups == 0
        assert h.scheduler.wakeups == wakeups
        await h.advance_to(due + 1)
        assert len(h.runs()) == 1
        assert h.intents() == []  # no occurrence left


# -- editing ----------------------------------------------------------------------


async def test_cancelled_intent_is_followed_by_the_next_occurrence(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(9, 30))
    async with h.running():
        h.add("hourly")
        intent = h.intent()
        row = h.store.jobs.transition(intent.id, JobStatus.CANCELLED)
        h.events.job_changed(intent.id, {"status": "cancelled"}, row)
        await h.settle()
        assert h.intent().scheduled_for == at(11)
        await h.advance_to(at(10, 30))
        assert h.runs() == []


async def test_editing_and_removing_a_schedule_updates_its_intent(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(9, 30))
    async with h.running():
        sid = h.add("daily")
        first = h.intent()
        h.schedules.update_schedule(sid, variants({"spec": "hourly"}))
        old = h.store.jobs.get(first.id)
        assert (old.status, old.skip_reason) == ("skipped", "schedule-removed")
        assert h.intent().scheduled_for == at(10)
        assert h.schedules.list_schedules()[0]["next_run"] == at(10)
        h.schedules.update_schedule(sid, variants({"skip_on_battery": True}))  # timing unchanged
        assert h.intent().scheduled_for == at(10)
        h.schedules.update_schedule(sid, variants({"enabled": False}))
        assert h.intents() == []
        h.schedules.update_schedule(sid, variants({"enabled": True}))
        assert h.intent().scheduled_for == at(10)
        last = h.intent()
        h.schedules.remove_schedule(sid)
        assert h.store.jobs.get(last.id).skip_reason == "schedule-removed"
        assert h.intents() == []
        await h.advance_to(at(11))
        assert h.runs() == []


async def test_intent_follows_its_profile_to_another_repository(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(9, 30))
    other = h.add_repository("other", str(tmp_path))
    async with h.running():
        h.add("hourly")
        assert h.intent().repository == "main"
        home = h.store.catalog.profile("home")
        h.store.catalog.update_profile(home.id, {"repository_id": other})
        h.scheduler.reconcile()  # what the service's on_profiles_changed does
        assert (h.intent().repository, h.intent().repository_id) == ("other", other)
        await h.advance_to(at(10, 0, 1), finish=False)
        (queued,) = h.jobs(status="queued")
        assert queued.repository_id == other
