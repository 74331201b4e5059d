"""systemd calendar events: parsing, normal forms (as printed by systemd 252), errors,
and next-occurrence basics.  The bulk comparison with systemd is in
test_schedule_oracle.py."""

from __future__ import annotations

import dataclasses
import itertools
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from borgd.core.schedule import Spec, SpecError, parse_spec, upcoming


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def nexts(spec: Spec, start: datetime, n: int) -> list[datetime]:
    return list(itertools.islice(spec.iter_after(start), n))


# Normal forms as printed by `systemd-analyze calendar` (systemd 252).
@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("minutely", "*-*-* *:*:00"),
        ("hourly", "*-*-* *:00:00"),
        ("daily", "*-*-* 00:00:00"),
        ("DAILY", "*-*-* 00:00:00"),
        ("weekly", "Mon *-*-* 00:00:00"),
        ("monthly", "*-*-01 00:00:00"),
        ("quarterly", "*-01,04,07,10-01 00:00:00"),
        ("semiannually", "*-01,07-01 00:00:00"),
        ("semi-annually", "*-01,07-01 00:00:00"),
        ("yearly", "*-01-01 00:00:00"),
        ("annually", "*-01-01 00:00:00"),
        ("*:0/15", "*-*-* *:00/15:00"),
        ("Mon-Fri 10:00", "Mon..Fri *-*-* 10:00:00"),
        ("mon,fri", "Mon,Fri *-*-* 00:00:00"),
        ("Monday..Wed 1:2", "Mon..Wed *-*-* 01:02:00"),
        ("Sat,Sun,Mon", "Mon,Sat,Sun *-*-* 00:00:00"),
        ("Mon..Wed,Tue..Fri", "Mon..Fri *-*-* 00:00:00"),
        ("mon..fri,sun", "Mon..Fri,Sun *-*-* 00:00:00"),
        ("Mon,", "Mon *-*-* 00:00:00"),
        ("Mon, 10:00", "Mon *-*-* 10:00:00"),
        ("24-01-01", "2024-01-01 00:00:00"),
        ("0..5-1-1", "2000..2005-01-01 00:00:00"),
        ("70-1-1", "1970-01-01 00:00:00"),
        ("*:5", "*-*-* *:05:00"),
        ("5:*", "*-*-* 05:*:00"),
        ("*-*", "*-*-* 00:00:00"),
        ("01-01", "*-01-01 00:00:00"),
        ("*-*~07/1", "*-*~07/1 00:00:00"),
        ("*-*~1..5", "*-*~01..05 00:00:00"),
        ("*-*-1..3/5", "*-*-01 00:00:00"),
        ("*-1..12/5-1", "*-01..11/5-01 00:00:00"),
        ("*-*-* 0:0:0..10/3", "*-*-* 00:00:00..09/3"),
        ("*-*-* 0:0:0..10.5", "*-*-* 00:00:00..10"),
        ("*-*-* 0:0:0/0.25", "*-*-* 00:00:00/0.250000"),
        ("*-*-* 0:0:0.1234567", "*-*-* 00:00:00.123457"),
        ("*-*-* 00:00:00.5", "*-*-* 00:00:00.500000"),
        ("*-*-* *:*:*", "*-*-* *:*:*"),
        ("*-*-* 0:0:0..10", "*-*-* 00:00:00..10"),
        ("*-*-* 0:0:5,0/1,7", "*-*-* 00:00:*"),
        ("*-*-* 0:0:3,0", "*-*-* 00:00:00,03"),
        ("*-*-* 0:0,0/1:0", "*-*-* 00:00,00/1:00"),
        ("1..3,2..5-1-1", "2001..2003,2002..2005-01-01 00:00:00"),
        ("2024,2023-*-*", "2023,2024-*-* 00:00:00"),
        ("*-01,01-01", "*-01-01 00:00:00"),
        ("*-*-* 7..9/1:0", "*-*-* 07..09:00:00"),
        ("0/2-*-*", "2000/2-*-* 00:00:00"),
        ("2024..2030/2-*-*", "2024..2030/2-*-* 00:00:00"),
        ("Mon..Fri 2024-*-* 0/3:15", "Mon..Fri 2024-*-* 00/3:15:00"),
        ("daily UTC", "*-*-* 00:00:00 UTC"),
        ("daily utc", "*-*-* 00:00:00 UTC"),
        ("weekly Europe/Berlin", "Mon *-*-* 00:00:00 Europe/Berlin"),
        ("*:0/15 Pacific/Chatham", "*-*-* *:00/15:00 Pacific/Chatham"),
        ("@1700000000", "2023-11-14 22:13:20 UTC"),
        ("mon,mon", "Mon *-*-* 00:00:00"),
        ("Mon..Sun 10:00", "*-*-* 10:00:00"),
        ("  daily  ", "*-*-* 00:00:00"),
    ],
)
def test_normal_form_matches_systemd(text: str, normalized: str) -> None:
    spec = parse_spec(text, "UTC")
    assert spec.kind == "calendar"
    assert spec.text == text
    assert spec.normalized == normalized


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("Mon *-*-* 25:00", "hour 25 out of range 0-23 at position 11 in 'Mon *-*-* 25:00'"),
        ("bogus", "'bogus'"),
        ("*:*/15", "'*/N' is cron syntax"),
        ("*-*-* 10..30:00", "hour range end 30"),
        ("*-*-* 22..2:00", "22..2"),
        ("*:50/15", "50/15"),
        ("*-*~01/1", "~1/1"),
        ("*-*~29", "~29"),
        ("Sat..Mon", "'Mon'"),
        ("*-*-* 5", "':' after the hour"),
        ("*-*-5..1", "5..1"),
        ("2200-01-01", "year 2200"),
        ("1969-01-01", "year 1969"),
        ("*-*-31..35", "35"),
        ("*-02-29 12:00:60", "second 60"),
        ("*-*-*-*", "'-'"),
        ("Mon..", "weekday range without an end"),
        ("*-*-1,,2", "','"),
        ("*-*-1.5", "'.5'"),
        ("10:00:00:00", "':'"),
        ("*-*-1/31", "/31"),
        ("*-1/12-1", "/12"),
        ("*-*-* 0:0:1.", "decimal point"),
        ("Mo", "'Mo'"),
        ("Mond 10:00", "'Mond'"),
        ("*-13-01", "month 13"),
        ("*-*-* 1:60", "minute 60"),
        ("*-*-* 1:0/0", "greater than zero"),
        ("@", "'@'"),
        ("@x", "'@x'"),
        ("Europe/Berlin", "'Europe'"),
        ("daily Europe/Berlin UTC", "'Europe/Berlin'"),
        ("daily 10:00", "'10:00'"),
        ("", "empty"),
    ],
)
def test_bad_specs_name_the_bad_token(text: str, token: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "UTC")
    assert token in str(info.value)
    assert isinstance(info.value, ValueError)


def test_error_position_is_one_based() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec("Mon *-*-* 25:00", "UTC")
    assert info.value.position == 11
    assert info.value.text == "Mon *-*-* 25:00"
    assert info.value.reason == "hour 25 out of range 0-23"


def test_zone_suffix_sets_the_spec_zone() -> None:
    assert parse_spec("daily Asia/Kolkata", "UTC").tz == ZoneInfo("Asia/Kolkata")
    assert parse_spec("daily UTC", "Europe/Berlin").tz == UTC
    assert parse_spec("daily", "Europe/Berlin").tz == ZoneInfo("Europe/Berlin")
    spec = parse_spec("daily Asia/Kolkata", "Europe/Berlin")
    assert spec.next_after(at(2024, 1, 1, 12)) == at(2024, 1, 1, 18, 30)


def test_unknown_default_zone_is_an_error() -> None:
    with pytest.raises(SpecError, match="Mars/Olympus"):
        parse_spec("daily", "Mars/Olympus")


def test_default_zone_is_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    assert parse_spec("daily").tz == ZoneInfo("Asia/Kolkata")
    monkeypatch.setenv("TZ", "Not/AZone")
    monkeypatch.setattr("borgd.core.schedule.zones._LOCALTIME", "/nonexistent/localtime")
    assert parse_spec("daily").tz == UTC  # missing /etc/localtime: UTC


def test_spec_is_immutable_and_hashable() -> None:
    spec = parse_spec("daily", "UTC")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.text = "weekly"  # type: ignore[misc]
    assert spec == parse_spec("daily", "UTC")
    assert len({spec, parse_spec("daily", "UTC")}) == 1


def test_strictly_after_and_utc_results() -> None:
    spec = parse_spec("*-*-* 10:00", "Europe/Berlin")
    first = spec.next_after(at(2024, 5, 1, 8, 0))  # exactly 10:00 CEST
    assert first == at(2024, 5, 2, 8, 0)
    assert first is not None and first.tzinfo is UTC
    assert spec.next_after(at(2024, 5, 1, 7, 59, 59)) == at(2024, 5, 1, 8, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        spec.next_after(datetime(2024, 5, 1))


def test_shorthand_meanings() -> None:
    start = at(2024, 5, 15, 12, 0)
    assert parse_spec("weekly", "UTC").next_after(start) == at(2024, 5, 20)  # Monday
    assert nexts(parse_spec("quarterly", "UTC"), start, 3) == [
        at(2024, 7, 1),
        at(2024, 10, 1),
        at(2025, 1, 1),
    ]
    assert nexts(parse_spec("semiannually", "UTC"), start, 2) == [at(2024, 7, 1), at(2025, 1, 1)]
    assert parse_spec("monthly", "UTC").next_after(start) == at(2024, 6, 1)
    assert parse_spec("yearly", "UTC").next_after(start) == at(2025, 1, 1)
    assert parse_spec("hourly", "UTC").next_after(start) == at(2024, 5, 15, 13)
    assert parse_spec("minutely", "UTC").next_after(start) == at(2024, 5, 15, 12, 1)


def test_month_ends_and_leap_days() -> None:
    start = at(2023, 1, 1)
    assert nexts(parse_spec("*-02-29", "UTC"), start, 3) == [
        at(2024, 2, 29),
        at(2028, 2, 29),
        at(2032, 2, 29),
    ]
    assert nexts(parse_spec("*-02~01", "UTC"), start, 2) == [at(2023, 2, 28), at(2024, 2, 29)]
    assert nexts(parse_spec("*-*-31", "UTC"), start, 3) == [
        at(2023, 1, 31),
        at(2023, 3, 31),
        at(2023, 5, 31),
    ]
    # the last Monday of May
    assert nexts(parse_spec("Mon *-05~07/1", "UTC"), start, 2) == [
        at(2023, 5, 29),
        at(2024, 5, 27),
    ]
    assert nexts(parse_spec("*-*~1..3", "UTC"), at(2024, 2, 1), 4) == [
        at(2024, 2, 27),
        at(2024, 2, 28),
        at(2024, 2, 29),
        at(2024, 3, 29),
    ]


def test_year_lists_end() -> None:
    spec = parse_spec("2024,2026-06-01 12:00", "UTC")
    assert nexts(spec, at(2023, 1, 1), 5) == [at(2024, 6, 1, 12), at(2026, 6, 1, 12)]
    assert parse_spec("2020-01-01", "UTC").next_after(at(2024, 1, 1)) is None
    assert parse_spec("2199-12-31", "UTC").next_after(at(2199, 1, 1)) == at(2199, 12, 31)
    assert parse_spec("daily", "UTC").next_after(at(2199, 12, 31, 1)) is None
    assert list(parse_spec("2020-01-01", "UTC").iter_after(at(2024, 1, 1))) == []


def test_impossible_date_returns_none_quickly() -> None:
    spec = parse_spec("*-02-30", "UTC")
    t0 = time.perf_counter()
    assert spec.next_after(at(2024, 1, 1)) is None
    # A hang guard, not a speed figure (bench/bench_schedule.py has those): it takes
    # milliseconds; 5 s is far beyond a loaded machine's hiccups and far below a search
    # that walks the 64,000 days to the year 2199 one instant at a time.
    assert time.perf_counter() - t0 < 5.0


def test_sub_second_repetition() -> None:
    spec = parse_spec("*-*-* 00:00:00/0.25", "UTC")
    assert nexts(spec, at(2024, 1, 1) - timedelta(microseconds=1), 3) == [
        at(2024, 1, 1),
        at(2024, 1, 1) + timedelta(milliseconds=250),
        at(2024, 1, 1) + timedelta(milliseconds=500),
    ]


def test_systemd_carry_quirk_is_reproduced() -> None:
    """systemd restarts at 00:31 after minute 03/44 overflows past 23:47, so it skips
    00:03; we print what systemd-analyze prints."""
    spec = parse_spec("*:32,03/44", "UTC")
    assert nexts(spec, at(2023, 11, 14, 23, 47), 3) == [
        at(2023, 11, 15, 0, 32),
        at(2023, 11, 15, 0, 47),
        at(2023, 11, 15, 1, 3),
    ]


def test_upcoming_merges_in_time_order_with_ties_by_entry_order() -> None:
    entries = [
        ("a", parse_spec("daily", "UTC"), None),
        ("b", parse_spec("*-*-* 00,12:00", "UTC"), None),
        ("c", parse_spec("every 8h", "UTC"), at(2024, 1, 1)),
    ]
    items, truncated = upcoming(entries, at(2024, 1, 1), at(2024, 1, 2))
    assert not truncated
    assert items == [
        (at(2024, 1, 1), "a"),
        (at(2024, 1, 1), "b"),
        (at(2024, 1, 1, 8), "c"),
        (at(2024, 1, 1, 12), "b"),
        (at(2024, 1, 1, 16), "c"),
    ]  # [start, end): midnight of the 2nd is excluded, the interval's anchor is not an instant


def test_upcoming_caps_a_dense_spec_lazily() -> None:
    """A year of an every-second spec is 31 million instants: `limit` steps are taken,
    not 31 million (counted calls, not wall time)."""
    dense = parse_spec("*:*:*", "UTC")
    calls = [0]

    class Counting:
        interval_seconds = dense.interval_seconds

        def next_after(self, *args: object) -> datetime | None:
            calls[0] += 1
            return dense.next_after(*args)  # type: ignore[arg-type]

    entries = [("every-second", Counting(), None)]
    items, truncated = upcoming(entries, at(2024, 1, 1), at(2025, 1, 1), limit=5000)  # type: ignore[arg-type]
    assert truncated and len(items) == 5000
    assert calls[0] <= 5001, calls
    assert items[-1][0] == at(2024, 1, 1) + timedelta(seconds=4999)
    items, truncated = upcoming(entries, at(2024, 1, 1), at(2024, 1, 1, 0, 0, 10), limit=10)
    assert len(items) == 10 and not truncated


def test_5000_weekday_mornings_in_a_row() -> None:
    """How fast is bench/bench_schedule.py's business; here: 5000 steps stay right."""
    spec = parse_spec("Mon..Fri *-*-* 09:00", "Europe/Berlin")
    t = at(2024, 1, 1)
    berlin = ZoneInfo("Europe/Berlin")
    for _ in range(5000):
        nxt = spec.next_after(t)
        assert nxt is not None and nxt > t
        local = nxt.astimezone(berlin)
        assert local.weekday() < 5 and (local.hour, local.minute, local.second) == (9, 0, 0)
        t = nxt
