"""The documented DST rule, for ``*-*-* 02:30`` (and friends) in Berlin and New York:
a nonexistent local time fires at the end of the gap; an ambiguous one fires once,
at its first occurrence."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from borgd.core.schedule import parse_spec, plan_next

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def take(text: str, zone: str, start: datetime, n: int) -> list[datetime]:
    return list(itertools.islice(parse_spec(text, zone).iter_after(start), n))


@pytest.mark.parametrize(
    ("zone", "start", "expected"),
    [
        # Berlin, 2025-03-30: 02:00 CET -> 03:00 CEST; 02:30 does not exist.
        (
            "Europe/Berlin",
            utc(2025, 3, 28, 12),
            [
                utc(2025, 3, 29, 1, 30),  # Sat 02:30 CET
                utc(2025, 3, 30, 1, 0),  # Sun: the gap's end, 03:00 CEST (systemd: skipped)
                utc(2025, 3, 31, 0, 30),  # Mon 02:30 CEST
            ],
        ),
        # New York, 2025-03-09: 02:00 EST -> 03:00 EDT.
        (
            "America/New_York",
            utc(2025, 3, 7, 12),
            [
                utc(2025, 3, 8, 7, 30),  # Sat 02:30 EST
                utc(2025, 3, 9, 7, 0),  # Sun: 03:00 EDT, the first instant after the gap
                utc(2025, 3, 10, 6, 30),  # Mon 02:30 EDT
            ],
        ),
    ],
)
def test_spring_gap_fires_at_the_end_of_the_gap(
    zone: str, start: datetime, expected: list[datetime]
) -> None:
    assert take("*-*-* 02:30", zone, start, 3) == expected


@pytest.mark.parametrize(
    ("zone", "start", "expected"),
    [
        # Berlin, 2025-10-26: 03:00 CEST -> 02:00 CET; 02:30 happens twice.
        (
            "Europe/Berlin",
            utc(2025, 10, 24, 12),
            [
                utc(2025, 10, 25, 0, 30),  # Sat 02:30 CEST
                utc(2025, 10, 26, 0, 30),  # Sun 02:30 CEST, the first one (fold=0) only
                utc(2025, 10, 27, 1, 30),  # Mon 02:30 CET
            ],
        ),
        # New York, 2025-11-02: 02:00 EDT -> 01:00 EST; 01:30 happens twice.
        (
            "America/New_York",
            utc(2025, 10, 31, 12),
            [
                utc(2025, 11, 1, 6, 30),  # Sat 02:30 EDT
                utc(2025, 11, 2, 7, 30),  # Sun 02:30 EST (02:30 is not ambiguous in NY)
                utc(2025, 11, 3, 7, 30),
            ],
        ),
    ],
)
def test_autumn_fold(zone: str, start: datetime, expected: list[datetime]) -> None:
    assert take("*-*-* 02:30", zone, start, 3) == expected


def test_new_york_ambiguous_0130_fires_once() -> None:
    got = take("*-*-* 01:30", "America/New_York", utc(2025, 11, 1, 12), 3)
    assert got == [
        utc(2025, 11, 2, 5, 30),  # 01:30 EDT, first occurrence
        utc(2025, 11, 3, 6, 30),  # next day 01:30 EST; 01:30 EST on the 2nd is not fired
        utc(2025, 11, 4, 6, 30),
    ]


def test_from_inside_the_repeated_hour_the_repeat_does_not_fire() -> None:
    # 02:10 CET on 2025-10-26, i.e. in the second pass through 02:00-03:00
    inside = datetime(2025, 10, 26, 2, 10, tzinfo=BERLIN, fold=1).astimezone(UTC)
    assert take("*-*-* 02:30", "Europe/Berlin", inside, 1) == [utc(2025, 10, 27, 1, 30)]
    # a quarter-hourly spec resumes right after the fold
    assert take("*:0/15", "Europe/Berlin", inside, 2) == [
        utc(2025, 10, 26, 2, 0),
        utc(2025, 10, 26, 2, 15),
    ]


def test_hourly_through_both_transitions() -> None:
    spring = take("hourly", "Europe/Berlin", utc(2025, 3, 29, 23, 30), 4)
    assert spring == [
        utc(2025, 3, 30, 0),
        utc(2025, 3, 30, 1),
        utc(2025, 3, 30, 2),
        utc(2025, 3, 30, 3),
    ]
    autumn = take("hourly", "Europe/Berlin", utc(2025, 10, 25, 23, 30), 4)
    # 02:00 CEST (00:00 UTC) fires, 02:00 CET (01:00 UTC) does not, 03:00 CET does
    assert autumn == [
        utc(2025, 10, 26, 0),
        utc(2025, 10, 26, 2),
        utc(2025, 10, 26, 3),
        utc(2025, 10, 26, 4),
    ]


def test_several_times_inside_one_gap_coalesce() -> None:
    got = take("*-*-* 02:00,15,30,45:00", "Europe/Berlin", utc(2025, 3, 30, 0), 2)
    assert got == [utc(2025, 3, 30, 1, 0), utc(2025, 3, 31, 0, 0)]


def test_cron_follows_the_same_rule() -> None:
    assert take("30 2 * * *", "Europe/Berlin", utc(2025, 3, 29, 12), 2) == [
        utc(2025, 3, 30, 1, 0),
        utc(2025, 3, 31, 0, 30),
    ]
    assert take("30 2 * * *", "Europe/Berlin", utc(2025, 10, 25, 12), 2) == [
        utc(2025, 10, 26, 0, 30),
        utc(2025, 10, 27, 1, 30),
    ]


def test_chatham_45_minute_gap() -> None:
    # Pacific/Chatham 2025-09-28: 02:45 +1245 -> 03:45 +1345
    got = take("*-*-* 03:00", "Pacific/Chatham", utc(2025, 9, 27, 0), 2)
    assert got == [utc(2025, 9, 27, 14, 0), utc(2025, 9, 28, 13, 15)]


def test_plan_across_the_gap() -> None:
    spec = parse_spec("*-*-* 02:30", "Europe/Berlin")
    anchor = utc(2025, 3, 29, 1, 30)  # Saturday's run
    now = utc(2025, 3, 30, 0, 59)
    plan = plan_next(spec, anchor, now)
    assert plan.trigger == "schedule" and plan.due == utc(2025, 3, 30, 1, 0)
    late = plan_next(spec, anchor, now + timedelta(hours=2))
    assert late.trigger == "catch-up" and late.missed == 1
