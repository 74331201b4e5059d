"""Blackout windows and retries in the scheduler: real store, fake clock and timer.

The harness is the scheduler service's (`test_scheduler_service.py`); the retry
policy is subscribed as the daemon subscribes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from borgd.app.retries import RetryPolicy
from borgd.core.jobs import JobStatus
from borgd.core.records import Job
from borgd.errors import InvalidArgument
from tests.unit.test_scheduler_service import MIN, Harness, at

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def with_retries(h: Harness) -> Harness:
    h.events.subscribe(
        RetryPolicy(store=h.store, events=h.events, clock=h.clock, on_planned=h.scheduler.poke)
    )
    return h


def run_and_fail(h: Harness, job: Job, *, passing: str | None = "lock") -> Job:
    """The executor's part: the queued job runs and fails (for a passing cause or not)."""
    now = h.clock()
    h.store.jobs.transition(job.id, JobStatus.RUNNING, started_at=now)
    fields: dict[str, Any] = {"finished_at": now, "message": "borg failed", "exit_code": 73}
    if passing:
        fields["options"] = {**job.options, "passing": passing}
    row = h.store.jobs.transition(job.id, JobStatus.FAILED, **fields)
    h.events.job_changed(job.id, {"status": "failed", **fields}, row)
    return row


def retries_of(h: Harness) -> list[Job]:
    return h.jobs(trigger="retry")


# -- blackout windows ------------------------------------------------------------


async def test_a_start_inside_a_global_window_waits_for_its_end(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(8, 55))
    async with h.running():
        h.add("*-*-* 09:30")
        h.schedules.set_blackout(["*-*-* 09:00 1h"])
        assert h.schedules.blackout == ["*-*-* 09:00 1h"]
        assert {"Blackout": ["*-*-* 09:00 1h"]} in h.rec.manager
        # The calendar says when the 09:30 run will really start.
        (entry,) = h.schedules.upcoming(at(9), at(11))
        assert (entry["scheduled_for"], entry["deferred_to"]) == (at(9, 30), at(10))
        assert entry["blocked_by"] == "blackout"

        await h.advance_to(at(9, 59, 59), finish=False)
        intent = h.intent()
        assert (intent.scheduled_for, intent.blocked_by) == (at(9, 30), "blackout")
        assert h.runs() == []
        # The timer wakes at the window's end, not at a tick.
        assert at(10) in h.timer.armed

        await h.advance_to(at(10, 0, 1), finish=False)
        (run,) = h.jobs(status="queued")
        assert (run.scheduled_for, run.queued_at, run.blocked_by) == (at(9, 30), at(10), "")
        assert run.trigger == "schedule"  # held, then started: on time, not a catch-up


async def test_a_profile_window_skips_what_its_next_occurrence_overtakes(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(9, 55))
    h.store.catalog.update_profile(
        h.store.catalog.profile("home").id, {"blackout": ["*-*-* 10:00 25m"]}
    )
    h.add_profile("other", "main")
    async with h.running():
        h.add("*:0/10")
        h.add("*:0/10", profile="other")
        await h.advance_to(at(10, 31))
        home = h.jobs(profile="home")
        skipped = [(j.scheduled_for, j.skip_reason) for j in home if j.status == "skipped"]
        assert skipped == [(at(10, 0), "blackout"), (at(10, 10), "blackout")]
        ran = [(j.scheduled_for, j.queued_at) for j in home if j.status == "succeeded"]
        # 10:20 waits for the window's end (10:25), 10:30 runs on time.
        assert ran == [(at(10, 20), at(10, 25)), (at(10, 30), at(10, 30))]
        # The other profile has no window: every occurrence ran on time.
        other = h.jobs(profile="other", status="succeeded")
        assert [j.queued_at for j in other] == [at(10, m) for m in (0, 10, 20, 30)]


async def test_blackout_windows_are_checked_and_survive_a_restart(tmp_path: Path) -> None:
    h = Harness(tmp_path, at(8))
    for bad in (["9h"], ["daily 9d"], ["every 1h 2h"], ["Mon 25:00 1h"], ["daily"]):
        with pytest.raises(InvalidArgument):
            h.schedules.set_blackout(bad)
    assert h.schedules.blackout == []
    h.schedules.set_blackout(["Mon..Fri 09:00 8h", "Sat,Sun *-*-* 00:00 1d"])
    h.scheduler = h.new_scheduler()
    assert h.schedules.blackout == ["Mon..Fri 09:00 8h", "Sat,Sun *-*-* 00:00 1d"]
    h.schedules.set_blackout([])
    assert h.new_scheduler().blackout == []


# -- retries ---------------------------------------------------------------------


async def test_a_passing_failure_is_retried_with_doubling_delays_then_given_up(
    tmp_path: Path,
) -> None:
    h = with_retries(Harness(tmp_path, at(9, 59)))
    async with h.running():
        sid = h.add("*-*-* 10:00", retries=2, retry_delay=5 * MIN)
        await h.advance_to(at(10), finish=False)
        (first,) = h.jobs(status="queued")
        failed = run_and_fail(h, first)
        await h.settle()
        (retry,) = retries_of(h)
        assert (retry.status, retry.requeued_from, retry.schedule_id) == (
            "scheduled",
            first.id,
            sid,
        )
        assert retry.scheduled_for == failed.finished_at + 5 * MIN
        assert retry.options["attempt"] == 1
        # The schedule's own next occurrence is planned beside it, untouched.
        assert [j.scheduled_for for j in h.jobs(status="scheduled", trigger="schedule")] == [
            at(10, day=8)
        ]

        await h.advance_to(at(10, 5), finish=False)
        retry = h.store.jobs.get(retry.id)
        assert (retry.status, retry.queued_at) == ("queued", at(10, 5))
        run_and_fail(h, retry)
        await h.settle()
        second = retries_of(h)[-1]
        assert (second.requeued_from, second.options["attempt"]) == (retry.id, 2)
        assert second.scheduled_for == at(10, 15)  # 5 min, doubled

        await h.advance_to(at(10, 15), finish=False)
        run_and_fail(h, h.store.jobs.get(second.id))
        await h.settle()
        assert len(retries_of(h)) == 2  # retries=2: no third attempt


async def test_a_failure_that_cannot_pass_is_never_retried(tmp_path: Path) -> None:
    h = with_retries(Harness(tmp_path, at(9, 59)))
    async with h.running():
        h.add("*-*-* 10:00", retries=3)
        await h.advance_to(at(10), finish=False)
        (first,) = h.jobs(status="queued")
        run_and_fail(h, first, passing=None)  # e.g. a wrong passphrase
        await h.settle()
        assert retries_of(h) == []


async def test_a_retry_survives_a_restart_and_waits_out_a_blackout(tmp_path: Path) -> None:
    h = with_retries(Harness(tmp_path, at(9, 59)))
    async with h.running():
        h.add("*-*-* 10:00", retries=1, retry_delay=10 * MIN)
        await h.advance_to(at(10), finish=False)
        run_and_fail(h, h.jobs(status="queued")[0], passing="network")
        await h.settle()
        h.schedules.set_blackout(["*-*-* 10:05 20m"])
    h.scheduler = h.new_scheduler()
    async with h.running():
        await h.advance_to(at(10, 20), finish=False)
        (retry,) = retries_of(h)
        assert (retry.status, retry.blocked_by) == ("scheduled", "blackout")
        await h.advance_to(at(10, 26), finish=False)
        retry = h.store.jobs.get(retry.id)
        assert (retry.status, retry.queued_at) == ("queued", at(10, 25))


async def test_a_retry_made_moot_by_a_newer_run_is_skipped(tmp_path: Path) -> None:
    h = with_retries(Harness(tmp_path, at(9, 59)))
    async with h.running():
        h.add("*:0/10", retries=1, retry_delay=15 * MIN)
        await h.advance_to(at(10), finish=False)
        run_and_fail(h, h.jobs(status="queued")[0])
        await h.advance_to(at(10, 16))  # 10:10 runs (and succeeds) before the retry is due
        (retry,) = retries_of(h)
        assert (retry.status, retry.skip_reason) == ("skipped", "coalesced")
        assert "took over" in retry.message
