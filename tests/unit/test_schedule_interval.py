"""Interval specs: ``every 90s`` … ``every 1h30m``, anchored occurrences."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from borgd.core.schedule import SpecError, parse_spec

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds", "normalized"),
    [
        ("every 90s", 90, "every 1m30s"),
        ("every 30m", 1800, "every 30m"),
        ("every 6h", 21600, "every 6h"),
        ("every 2d", 172800, "every 2d"),
        ("every 1w", 604800, "every 1w"),
        ("every 1h30m", 5400, "every 1h30m"),
        ("every 90m", 5400, "every 1h30m"),
        ("every 14d", 1209600, "every 2w"),
        ("Every 1h 30m", 5400, "every 1h30m"),
        ("every 2 hours", 7200, "every 2h"),
        ("every 1 day 12 hours", 129600, "every 1d12h"),
        ("every 45min", 2700, "every 45m"),
        ("  every 10s  ", 10, "every 10s"),
    ],
)
def test_parse(text: str, seconds: int, normalized: str) -> None:
    spec = parse_spec(text, "UTC")
    assert spec.kind == "interval"
    assert spec.interval_seconds == seconds
    assert spec.normalized == normalized
    assert spec.text == text


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("every 0m", "longer than zero"),
        ("every 0h0m", "longer than zero"),
        ("every", "needs a duration"),
        ("every 5x", "'x'"),
        ("every 5", "'5'"),
        ("every m", "'m'"),
        ("every 1h banana", "'banana'"),
        ("every -1h", "'-1h'"),
        ("every 1.5h", "'1.5h'"),
        ("every 9999999999s", "too large"),
        ("every 11000d", "ten years"),
    ],
)
def test_bad_intervals_name_the_token(text: str, token: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "UTC")
    assert token in str(info.value)


def test_occurrences_are_anchor_plus_k_intervals() -> None:
    spec = parse_spec("every 6h", "UTC")
    anchor = T0
    assert spec.next_after(T0, anchor) == T0 + timedelta(hours=6)  # k >= 1, never the anchor
    assert spec.next_after(T0 + timedelta(hours=5), anchor) == T0 + timedelta(hours=6)
    assert spec.next_after(T0 + timedelta(hours=6), anchor) == T0 + timedelta(hours=12)
    assert spec.next_after(T0 + timedelta(hours=13), anchor) == T0 + timedelta(hours=18)
    assert spec.next_after(T0 - timedelta(days=3), anchor) == T0 + timedelta(hours=6)
    got = list(itertools.islice(spec.iter_after(T0, anchor), 3))
    assert got == [T0 + timedelta(hours=h) for h in (6, 12, 18)]


def test_anchor_defaults_to_after() -> None:
    spec = parse_spec("every 90s", "UTC")
    assert spec.next_after(T0) == T0 + timedelta(seconds=90)
    got = list(itertools.islice(spec.iter_after(T0), 3))
    assert got == [T0 + timedelta(seconds=90 * k) for k in (1, 2, 3)]


def test_intervals_are_elapsed_time_not_wall_clock() -> None:
    """Across the Berlin spring gap, 'every 1d' is 24 real hours (not 'same time tomorrow')."""
    berlin = ZoneInfo("Europe/Berlin")
    anchor = datetime(2025, 3, 29, 12, 0, tzinfo=berlin)
    nxt = parse_spec("every 1d", "Europe/Berlin").next_after(anchor, anchor)
    assert nxt == anchor.astimezone(UTC) + timedelta(hours=24)
    assert nxt is not None and nxt.tzinfo is UTC
    assert nxt.astimezone(berlin).hour == 13


def test_microsecond_exactness_far_from_anchor() -> None:
    spec = parse_spec("every 7s", "UTC")
    anchor = T0 + timedelta(microseconds=123)
    after = anchor + timedelta(days=400, microseconds=5)
    nxt = spec.next_after(after, anchor)
    assert nxt is not None
    assert (nxt - anchor) % timedelta(seconds=7) == timedelta(0)
    assert timedelta(0) < nxt - after <= timedelta(seconds=7)
