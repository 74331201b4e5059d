"""plan_next: regular runs, catch-up after downtime (coalesced), the catch-up window,
and Vorta's scenarios with an injected ``now``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from borgd.core.schedule import MISSED_COUNT_CAP, Plan, parse_spec, plan_next

NOW = datetime(2024, 3, 12, 10, 0, tzinfo=UTC)  # a Tuesday, 10:00 UTC
H = timedelta(hours=1)


# -- Vorta: "every 3 hours", last run now / 2 h / exactly 3 h / 7 h ago ---------------
@pytest.mark.parametrize(
    ("ago", "due", "trigger", "missed"),
    [
        (0, NOW + 3 * H, "schedule", 0),  # just ran: in 3 h
        (2, NOW + 1 * H, "schedule", 0),  # ran 2 h ago: in 1 h
        (3, NOW, "schedule", 0),  # exactly 3 h ago: due right now, on time
        (7, NOW, "catch-up", 2),  # 7 h ago: -4 h and -1 h missed -> one run now
    ],
)
def test_vorta_three_hour_interval(ago: int, due: datetime, trigger: str, missed: int) -> None:
    spec = parse_spec("every 3h", "UTC")
    plan = plan_next(spec, NOW - ago * H, NOW)
    assert (plan.due, plan.trigger, plan.missed) == (due, trigger, missed)
    if missed:
        assert plan.first_missed == NOW - 4 * H
        assert plan.last_missed == NOW - 1 * H
    else:
        assert plan.first_missed is None and plan.last_missed is None
    assert not plan.window_expired


# -- Vorta: daily at 15:00 and at 03:30, last run 0 / 5 / 14 / 27 hours ago -----------
TODAY_1500 = datetime(2024, 3, 12, 15, 0, tzinfo=UTC)
TODAY_0330 = datetime(2024, 3, 12, 3, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec_text", "ago", "due", "trigger", "missed"),
    [
        ("*-*-* 15:00", 0, TODAY_1500, "schedule", 0),
        ("*-*-* 15:00", 5, TODAY_1500, "schedule", 0),  # ran 05:00: today 15:00
        ("*-*-* 15:00", 14, TODAY_1500, "schedule", 0),  # ran yesterday 20:00
        ("*-*-* 15:00", 27, NOW, "catch-up", 1),  # ran yesterday 07:00: missed its 15:00
        ("*-*-* 03:30", 0, TODAY_0330 + 24 * H, "schedule", 0),  # tomorrow 03:30
        ("*-*-* 03:30", 5, TODAY_0330 + 24 * H, "schedule", 0),  # ran 05:00, after 03:30
        ("*-*-* 03:30", 14, NOW, "catch-up", 1),  # ran yesterday 20:00: missed 03:30
        ("*-*-* 03:30", 27, NOW, "catch-up", 1),  # ran yesterday 07:00: missed 03:30
    ],
)
def test_vorta_daily(spec_text: str, ago: int, due: datetime, trigger: str, missed: int) -> None:
    plan = plan_next(parse_spec(spec_text, "UTC"), NOW - ago * H, NOW)
    assert (plan.due, plan.trigger, plan.missed) == (due, trigger, missed)


def test_daily_in_local_zone() -> None:
    spec = parse_spec("*-*-* 15:00", "Europe/Berlin")  # 14:00 UTC in March (CET)
    plan = plan_next(spec, NOW - 5 * H, NOW)
    assert plan == Plan(datetime(2024, 3, 12, 14, 0, tzinfo=UTC), "schedule", 0, None, None, False)


def test_week_of_downtime_coalesces_into_one_catch_up() -> None:
    spec = parse_spec("hourly", "UTC")
    anchor = NOW - timedelta(days=7)
    plan = plan_next(spec, anchor, NOW + timedelta(minutes=30))
    assert plan.trigger == "catch-up"
    assert plan.due == NOW + timedelta(minutes=30)
    assert plan.missed == 7 * 24  # (anchor, now): anchor+1h … now
    assert plan.first_missed == anchor + H
    assert plan.last_missed == NOW


def test_without_catch_up_misses_are_counted_and_the_next_regular_run_is_due() -> None:
    spec = parse_spec("*-*-* 15:00", "UTC")
    plan = plan_next(spec, NOW - timedelta(days=3), NOW, catch_up=False)
    assert plan.trigger == "schedule"
    assert plan.due == TODAY_1500
    assert plan.missed == 3
    assert not plan.window_expired


def test_catch_up_window() -> None:
    spec = parse_spec("*-*-* 03:30", "UTC")
    anchor = NOW - 30 * H  # missed today's 03:30, 6.5 h ago
    inside = plan_next(spec, anchor, NOW, window=timedelta(hours=8))
    assert (inside.due, inside.trigger, inside.window_expired) == (NOW, "catch-up", False)
    outside = plan_next(spec, anchor, NOW, window=timedelta(hours=6))
    assert outside.window_expired  # record skipped/missed-window, do not run now
    assert outside.trigger == "schedule"
    assert outside.due == TODAY_0330 + 24 * H
    assert outside.missed == 1 and outside.last_missed == TODAY_0330


def test_interval_window_expired_keeps_the_grid() -> None:
    spec = parse_spec("every 3h", "UTC")
    plan = plan_next(spec, NOW - 10 * H, NOW, window=timedelta(minutes=30))
    assert plan.window_expired and plan.missed == 3
    assert plan.last_missed == NOW - H
    assert plan.due == NOW + 2 * H  # anchor + 12 h


def test_exhausted_spec() -> None:
    spec = parse_spec("2024-01-01 00:00", "UTC")
    assert plan_next(spec, NOW, NOW).due is None
    missed = plan_next(spec, datetime(2023, 6, 1, tzinfo=UTC), NOW)
    assert (missed.due, missed.trigger, missed.missed) == (NOW, "catch-up", 1)
    no_catch_up = plan_next(spec, datetime(2023, 6, 1, tzinfo=UTC), NOW, catch_up=False)
    assert no_catch_up.due is None and no_catch_up.missed == 1


class CountingSpec:
    """A spec that counts how often the planner asks it for the next instant."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.calls = 0
        self.interval_seconds = spec.interval_seconds

    def next_after(self, *args: Any) -> Any:
        self.calls += 1
        return self.spec.next_after(*args)


def test_dense_spec_after_long_downtime_is_capped() -> None:
    """30 days of a every-second spec are 2.6 million misses: the planner counts up to the
    cap and then searches backwards for the last one, in steps, not instant by instant
    (counted calls, not wall time: speed figures are bench/bench_schedule.py's)."""
    spec = CountingSpec(parse_spec("*:*:*", "UTC"))
    plan = plan_next(spec, NOW - timedelta(days=30), NOW)  # type: ignore[arg-type]
    assert plan.missed == MISSED_COUNT_CAP
    assert plan.last_missed == NOW - timedelta(seconds=1)
    assert spec.calls < MISSED_COUNT_CAP + 100, spec.calls
    assert plan.last_missed == NOW - timedelta(seconds=1)
    assert plan.first_missed == NOW - timedelta(days=30) + timedelta(seconds=1)


def test_plan_is_frozen() -> None:
    plan = plan_next(parse_spec("daily", "UTC"), NOW, NOW)
    with pytest.raises(AttributeError):
        plan.due = NOW  # type: ignore[misc]
