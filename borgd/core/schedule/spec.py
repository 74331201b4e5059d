"""The compiled :class:`Spec` and :func:`parse_spec`, which picks the syntax."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timezone
from typing import Literal
from zoneinfo import ZoneInfo

from borgd.core.schedule._wall import MAX_YEAR, WallMatcher, next_instant
from borgd.core.schedule.calendar import parse_calendar
from borgd.core.schedule.cron import looks_like_cron, parse_cron
from borgd.core.schedule.errors import SpecError
from borgd.core.schedule.interval import next_interval, parse_interval
from borgd.core.schedule.zones import resolve_zone

__all__ = ["ON_CONNECT", "Kind", "Spec", "parse_spec"]

Kind = Literal["calendar", "cron", "interval", "event"]
# A schedule that fires on an event (its repository's disk appearing), never by the clock.
ON_CONNECT = "on-connect"


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")


@dataclass(frozen=True, slots=True)
class Spec:
    """A compiled schedule spec: parse once, then ask for occurrences cheaply.

    ``text`` is the spec as given, ``normalized`` its canonical form (systemd's
    for calendar events, the five normalised fields for cron, ``every 1h30m``
    for intervals), ``tz`` the zone its wall-clock times are read in.
    """

    text: str
    normalized: str
    tz: ZoneInfo | timezone
    kind: Kind
    _matcher: WallMatcher | None = field(default=None, repr=False, compare=False)
    _seconds: int = field(default=0, repr=False, compare=False)

    @property
    def interval_seconds(self) -> int | None:
        """The interval length in seconds for interval specs, else None."""
        return self._seconds if self.kind == "interval" else None

    def next_after(self, after: datetime, anchor: datetime | None = None) -> datetime | None:
        """The first occurrence strictly after ``after`` as an aware UTC datetime.

        None when there is none (e.g. a list of past years).  For intervals the
        occurrences are ``anchor + k*interval`` for k >= 1; ``anchor`` defaults
        to ``after``.  Calendar and cron specs ignore ``anchor``.
        """
        _require_aware("after", after)
        if self.kind == "event":
            return None  # fired by its event, not by the clock
        if self._matcher is None:
            if anchor is None:
                anchor = after
            else:
                _require_aware("anchor", anchor)
            return next_interval(self._seconds, after, anchor)
        if after.year > MAX_YEAR:
            return None
        return next_instant(self._matcher, self.tz, after.astimezone(UTC))

    def iter_after(self, after: datetime, anchor: datetime | None = None) -> Iterator[datetime]:
        """Successive occurrences strictly after ``after`` (endless for most specs)."""
        if self._matcher is None and anchor is None:
            anchor = after
        current = after
        while True:
            nxt = self.next_after(current, anchor)
            if nxt is None:
                return
            yield nxt
            current = nxt


def parse_spec(text: str, default_tz: str | None = None) -> Spec:
    """Compile a schedule spec; raise :class:`SpecError` saying what is wrong and where.

    Accepted: ``every 1h30m`` intervals, systemd calendar events (shorthands
    such as ``daily`` included, with an optional trailing ``UTC`` or IANA zone)
    and five-field cron expressions or ``@daily``-style macros.  Wall-clock
    times are read in the spec's own zone if it names one, else in
    ``default_tz`` (an IANA name; None means the system's local zone).
    """
    if not isinstance(text, str):
        raise SpecError(f"a spec must be a string, not {type(text).__name__}")
    if "\n" in text or "\t" in text or "\r" in text:
        raise SpecError("a spec must be on one line without tabs", text)
    stripped = text.strip()
    if not stripped:
        raise SpecError("empty schedule spec", text)
    try:
        tz = resolve_zone(default_tz)
    except SpecError as exc:
        raise SpecError(exc.reason, text) from None
    if stripped.lower() == ON_CONNECT:
        return Spec(text, ON_CONNECT, tz, "event")
    if stripped.lower().startswith("every"):
        seconds, normalized = parse_interval(text)
        return Spec(text, normalized, tz, "interval", None, seconds)
    if (stripped.startswith("@") and not stripped[1:2].isdigit()) or looks_like_cron(stripped):
        cron = parse_cron(text)
        return Spec(text, cron.normalized, tz, "cron", cron.matcher)
    event = parse_calendar(text, tz)
    return Spec(text, event.normalized, event.tz, "calendar", event.matcher)
