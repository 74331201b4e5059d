"""What to run next: :func:`plan_next` decides between the next regular occurrence and a
catch-up run after downtime or sleep, coalescing every missed occurrence into one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from borgd.core.schedule._wall import ONE_US
from borgd.core.schedule.spec import Spec

__all__ = ["MISSED_COUNT_CAP", "Plan", "plan_next"]

#: ``Plan.missed`` is exact up to this many misses and saturates there (a
#: ``*:*:*`` spec after a week of downtime must not cost 600 000 iterations).
MISSED_COUNT_CAP = 10_000


@dataclass(frozen=True)
class Plan:
    """The next run of one schedule.

    ``due`` is None only when the spec has no occurrence left and nothing is
    to be caught up (e.g. a calendar event whose years are all past).
    """

    due: datetime | None
    trigger: Literal["schedule", "catch-up"]
    missed: int
    first_missed: datetime | None
    last_missed: datetime | None
    window_expired: bool


def plan_next(
    spec: Spec,
    anchor: datetime,
    now: datetime,
    *,
    catch_up: bool = True,
    window: timedelta | None = None,
) -> Plan:
    """Plan the next run of ``spec``.

    ``anchor`` is the last occurrence handled (for intervals the start of the
    last run), or the schedule's creation time.  Occurrences in
    ``(anchor, now)`` were missed; one falling exactly on ``now`` is on time.

    * nothing missed: ``due`` = first occurrence after ``anchor``, trigger ``schedule``;
    * missed and ``catch_up``: ``due = now``, trigger ``catch-up`` — one run for all
      misses, never a burst — unless ``window`` is set and the newest miss is older
      than it: then ``window_expired`` (record ``skipped/missed-window``) and ``due``
      is the next regular occurrence;
    * missed without ``catch_up``: the misses are counted, ``due`` is the next
      regular occurrence at or after ``now``.
    """
    anchor = anchor.astimezone(UTC)  # absolute arithmetic from here on
    now = now.astimezone(UTC)
    first = spec.next_after(anchor, anchor)
    if first is None or first >= now:
        return Plan(first, "schedule", 0, None, None, False)
    missed, last = _misses(spec, anchor, first, now)
    if catch_up and not (window is not None and now - last > window):
        return Plan(now, "catch-up", missed, first, last, False)
    due = spec.next_after(now - ONE_US, anchor)
    return Plan(due, "schedule", missed, first, last, catch_up)


def _misses(spec: Spec, anchor: datetime, first: datetime, now: datetime) -> tuple[int, datetime]:
    """(count, last) of the occurrences in (anchor, now); ``first`` is the earliest."""
    seconds = spec.interval_seconds
    if seconds is not None:
        step = seconds * 1_000_000
        delta = now - anchor
        elapsed = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
        count = (elapsed - 1) // step
        return count, first + timedelta(microseconds=(count - 1) * step)
    count = 1
    last = first
    while count < MISSED_COUNT_CAP:
        nxt = spec.next_after(last)
        if nxt is None or nxt >= now:
            return count, last
        count += 1
        last = nxt
    return count, _last_before(spec, last, now)


def _last_before(spec: Spec, lo: datetime, now: datetime) -> datetime:
    """The newest occurrence in [lo, now), knowing that ``lo`` is one."""
    width = timedelta(seconds=1)
    while True:
        start = max(lo, now - width)
        occ = spec.next_after(start - ONE_US)
        if occ is not None and occ < now:
            while True:
                nxt = spec.next_after(occ)
                if nxt is None or nxt >= now:
                    return occ
                occ = nxt
        if start == lo:
            return lo
        width *= 4
