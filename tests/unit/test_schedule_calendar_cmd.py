"""``borgctl calendar``: render_calendar prints what ``systemd-analyze calendar`` prints."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from borgd.cli.calendar_cmd import format_relative, parse_base_time, render_calendar
from borgd.core.schedule import SpecError

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _without_from_now(text: str) -> list[str]:
    return [line for line in text.splitlines() if "From now:" not in line and line]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York"])
@pytest.mark.parametrize(
    "spec",
    ["Mon *-*-* 02:30", "daily", "*:0/15", "2020-01-01", "weekly Europe/Berlin", "*-02~01"],
)
def test_output_matches_systemd_analyze(zone: str, spec: str) -> None:
    assert SYSTEMD_ANALYZE, "systemd-analyze is not installed: run scripts/bootstrap.sh --test"
    env = dict(os.environ, TZ=zone, SYSTEMD_COLORS="0", LC_ALL="C")
    expected = subprocess.run(
        [SYSTEMD_ANALYZE, "calendar", "--iterations=3", "--base-time=@1700000000", spec],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    ours = render_calendar(
        spec,
        iterations=3,
        base_time=parse_base_time("@1700000000", zone),
        tz=zone,
        now=datetime.now(UTC),
    )
    assert _without_from_now(ours) == _without_from_now(expected)
    assert ours.count("From now:") == expected.count("From now:")


def test_render_shape() -> None:
    out = render_calendar("daily", iterations=2, base_time=NOW, tz="Europe/Berlin", now=NOW)
    assert out == (
        "  Original form: daily\n"
        "Normalized form: *-*-* 00:00:00\n"
        "    Next elapse: Mon 2026-11-23 00:00:00 CET\n"
        "       (in UTC): Sun 2026-11-22 23:00:00 UTC\n"
        "       From now: 11h left\n"
        "       Iter. #2: Tue 2026-11-24 00:00:00 CET\n"
        "       (in UTC): Mon 2026-11-23 23:00:00 UTC\n"
        "       From now: 1 day 11h left\n"
    )


def test_render_cron_interval_and_never() -> None:
    out = render_calendar("0 2 * * 1-5", base_time=NOW, tz="UTC", now=NOW)
    assert "Normalized form: 0 2 * * 1-5\n" in out
    assert "Next elapse: Mon 2026-11-23 02:00:00 UTC\n" in out
    assert "(in UTC)" not in out  # like systemd-analyze in a UTC zone
    out = render_calendar("every 90m", iterations=2, base_time=NOW, tz="UTC", now=NOW)
    assert "Normalized form: every 1h30m" in out
    assert "Iter. #2: Sun 2026-11-22 15:00:00 UTC" in out
    out = render_calendar("2020-01-01", iterations=3, base_time=NOW, tz="UTC", now=NOW)
    assert out.endswith("    Next elapse: never\n")


def test_render_rejects_bad_input() -> None:
    with pytest.raises(SpecError, match="25"):
        render_calendar("Mon *-*-* 25:00", now=NOW, tz="UTC")
    with pytest.raises(SpecError, match="Nowhere/Land"):
        render_calendar("daily", now=NOW, tz="Nowhere/Land")
    with pytest.raises(ValueError, match="iterations"):
        render_calendar("daily", iterations=0, now=NOW, tz="UTC")


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "now"),
        (timedelta(microseconds=5), "5us left"),
        (timedelta(milliseconds=20), "20ms left"),
        (timedelta(seconds=42), "42s left"),
        (timedelta(minutes=2, seconds=3), "2min 3s left"),
        (timedelta(minutes=17), "17min left"),
        (timedelta(hours=3, minutes=5), "3h 5min left"),
        (timedelta(hours=11), "11h left"),
        (timedelta(hours=35), "1 day 11h left"),
        (timedelta(days=3), "3 days left"),
        (timedelta(days=8), "1 week 1 day left"),
        (timedelta(days=45), "1 month 14 days left"),
        (-timedelta(days=1100), "3 years 0 months ago"),
        (-timedelta(days=400), "1 year 1 month ago"),
    ],
)
def test_relative_times_like_systemd(delta: timedelta, text: str) -> None:
    assert format_relative(NOW + delta, NOW) == text


def test_parse_base_time() -> None:
    assert parse_base_time("@1700000000", None) == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert parse_base_time("@1700000000.5", None).microsecond == 500000
    assert parse_base_time("2024-05-01T03:00:00Z", None) == datetime(2024, 5, 1, 3, tzinfo=UTC)
    local = parse_base_time("2024-05-01 03:00", "Europe/Berlin")
    assert local == datetime(2024, 5, 1, 1, tzinfo=UTC)
    assert local.tzinfo == ZoneInfo("Europe/Berlin")
    assert parse_base_time("2024-05-01T03:00:00+02:00", "UTC") == datetime(
        2024, 5, 1, 1, tzinfo=UTC
    )
    now = parse_base_time("now", None)
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)
    for bad in ("yesterday-ish", "@abc", "2024-13-01"):
        with pytest.raises(ValueError, match="bad"):
            parse_base_time(bad, "UTC")
