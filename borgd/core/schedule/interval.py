"""Interval specs: ``every 90s``, ``every 30m``, ``every 6h``, ``every 2d``, ``every 1w``,
``every 1h30m`` (units s m h d w; long forms ``min``, ``hours``, ``days`` … accepted).

Occurrences are ``anchor + k * interval`` for k >= 1, where the anchor is the
start of the schedule's last run (or its creation).  The normal form uses the
largest units first: ``every 90m`` -> ``every 1h30m``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from borgd.core.schedule.errors import SpecError

__all__ = ["MAX_INTERVAL", "format_interval", "next_interval", "parse_interval"]

MAX_INTERVAL = timedelta(days=3660)
_UNITS: dict[str, int] = {}
for _names, _seconds in (
    (("s", "sec", "secs", "second", "seconds"), 1),
    (("m", "min", "mins", "minute", "minutes"), 60),
    (("h", "hr", "hrs", "hour", "hours"), 3600),
    (("d", "day", "days"), 86400),
    (("w", "week", "weeks"), 604800),
):
    for _n in _names:
        _UNITS[_n] = _seconds
_PART = re.compile(r"\s*(\d+)\s*([A-Za-z]+)")
_PREFIX = re.compile(r"\s*every\b\s*", re.IGNORECASE)


def parse_interval(text: str) -> tuple[int, str]:
    """Parse ``every …``; return (interval in seconds, normalised text)."""
    head = _PREFIX.match(text)
    if head is None:
        raise SpecError("an interval starts with 'every'", text, 1)
    i = head.end()
    total = 0
    seen = False
    while i < len(text):
        if text[i:].strip() == "":
            break
        m = _PART.match(text, i)
        if m is None:
            bad = text[i:].split()[0]
            raise SpecError(
                f"expected a number and a unit (s, m, h, d, w), found {bad!r}", text, i + 1
            )
        unit = m.group(2).lower()
        if unit not in _UNITS:
            raise SpecError(
                f"unknown unit {m.group(2)!r} (use s, m, h, d or w)", text, m.start(2) + 1
            )
        digits = m.group(1)
        if len(digits) > 9:
            raise SpecError(f"number {digits} too large", text, m.start(1) + 1)
        total += int(digits) * _UNITS[unit]
        seen = True
        i = m.end()
    if not seen:
        raise SpecError("'every' needs a duration such as 30m or 1h30m", text)
    if total <= 0:
        raise SpecError("the interval must be longer than zero", text)
    if total > MAX_INTERVAL.total_seconds():
        raise SpecError("the interval is longer than ten years", text)
    return total, format_interval(total)


def format_interval(seconds: int) -> str:
    parts: list[str] = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "every " + "".join(parts)


def next_interval(seconds: int, after: datetime, anchor: datetime) -> datetime | None:
    """First ``anchor + k*interval`` (k >= 1) strictly after ``after``, in UTC."""
    step_us = seconds * 1_000_000
    # Elapsed time, not wall-clock arithmetic (aware datetimes sharing one tzinfo
    # subtract and add as wall clocks in Python).
    after = after.astimezone(UTC)
    anchor = anchor.astimezone(UTC)
    delta = after - anchor
    elapsed_us = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    k = 1 if elapsed_us < 0 else elapsed_us // step_us + 1
    try:
        return anchor + timedelta(microseconds=k * step_us)
    except OverflowError:
        return None
