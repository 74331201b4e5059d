"""Wall-clock matching and the wall-clock → instant rule shared by calendar and cron specs.

A :class:`WallMatcher` knows which local wall-clock times (year … microsecond)
belong to a spec and finds the first one at or after a given wall time by
skipping field by field (bisect in precomputed sorted tuples), never second by
second.  :func:`next_instant` turns that into "the first instant strictly after
``after``" in a zone, applying borgd's DST rule:

* a wall time that does not exist (spring gap) fires at the first instant
  after the gap, i.e. at the transition itself;
* an ambiguous wall time (autumn fold) fires once, at its first occurrence
  (``fold=0``); the repeated hour does not fire again.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

UTC = UTC
ONE_US = timedelta(microseconds=1)
USEC_PER_SEC = 1_000_000
USEC_PER_MINUTE = 60 * USEC_PER_SEC
MIN_YEAR = 1970
MAX_YEAR = 2199
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

#: Given (days in month, weekday of the 1st with Monday=0) -> allowed days, sorted.
DayFilter = Callable[[int, int], tuple[int, ...]]


def days_in_month(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _DAYS_IN_MONTH[month]


class UsecField:
    """Microsecond-of-minute matcher: a sorted tuple when small, arithmetic otherwise."""

    __slots__ = ("_comps", "_values")

    def __init__(self, comps: tuple[tuple[int, int, int], ...], expand_limit: int = 4096) -> None:
        # comps: (start, stop or -1, repeat or 0), all in microseconds.
        self._comps = comps
        count = 0
        for start, stop, repeat in comps:
            if repeat <= 0:
                count += 1
            else:
                end = stop if stop >= 0 else USEC_PER_MINUTE - 1
                count += max(0, (end - start) // repeat) + 1
        values: tuple[int, ...] | None = None
        if count <= expand_limit:
            acc: set[int] = set()
            for start, stop, repeat in comps:
                acc.add(start)
                if repeat > 0:
                    end = stop if stop >= 0 else USEC_PER_MINUTE - 1
                    acc.update(range(start, end + 1, repeat))
            values = tuple(sorted(v for v in acc if 0 <= v < USEC_PER_MINUTE))
        self._values = values

    def next_ge(self, us: int) -> int | None:
        values = self._values
        if values is not None:
            i = bisect_left(values, us)
            return values[i] if i < len(values) else None
        best: int | None = None
        for start, stop, repeat in self._comps:
            if start >= us:
                cand = start
            elif repeat > 0:
                cand = start + repeat * (-((start - us) // repeat))
                if stop >= 0 and cand > stop:
                    continue
            else:
                continue
            if best is None or cand < best:
                best = cand
        if best is None or best >= USEC_PER_MINUTE:
            return None
        return best


@dataclass(frozen=True, slots=True)
class CarryQuirks:
    """Where systemd's search restarts after a repetition runs past a field's end.

    systemd lets ``mktime`` normalise an overflowing value (minute 91 -> next
    hour, minute 31) and then resets only the unit just below the highest one
    that changed; when the carry ripples through two units the remainder
    survives.  E.g. ``*:03/44`` from 23:48 restarts at 00:31 of the next day
    and so skips 00:03.  To print the same instants as ``systemd-analyze``,
    calendar specs reproduce this; each field holds the restart value (or None
    when no repetition can overflow the field).
    """

    december_day: int | None  # day in January after a December day overflow
    hour: int | None  # hour on the 1st after an hour overflow on a month's last day
    minute: int | None  # minute at 00:xx after a minute overflow at 23:xx
    usec: int | None  # microsecond-of-minute remainder after a seconds overflow


def _next_day(y: int, mo: int, d: int, length: int) -> tuple[int, int, int]:
    if d < length:
        return y, mo, d + 1
    if mo < 12:
        return y, mo + 1, 1
    return y + 1, 1, 1


class WallMatcher:
    """The set of matching wall-clock times of one spec, searchable forwards."""

    __slots__ = (
        "_day_cache",
        "_day_filter",
        "hours",
        "minutes",
        "months",
        "quirks",
        "usecs",
        "years",
    )

    def __init__(
        self,
        years: tuple[int, ...],
        months: tuple[int, ...],
        day_filter: DayFilter,
        hours: tuple[int, ...],
        minutes: tuple[int, ...],
        usecs: UsecField,
        quirks: CarryQuirks | None = None,
    ) -> None:
        self.years = years
        self.months = months
        self.hours = hours
        self.minutes = minutes
        self.usecs = usecs
        self.quirks = quirks
        self._day_filter = day_filter
        self._day_cache: dict[int, tuple[int, ...]] = {}

    def days(self, year: int, month: int, length: int) -> tuple[int, ...]:
        key = length * 8 + date(year, month, 1).weekday()
        cached = self._day_cache.get(key)
        if cached is None:
            cached = self._day_filter(length, key % 8)
            self._day_cache[key] = cached
        return cached

    def next_match(
        self, y: int, mo: int, d: int, h: int, mi: int, us: int
    ) -> tuple[int, int, int, int, int, int] | None:
        """The first matching wall time >= the given (valid) one, or None before 2200."""
        years, months, hours, minutes = self.years, self.months, self.hours, self.minutes
        q = self.quirks
        while True:
            i = bisect_left(years, y)
            if i == len(years):
                return None
            if years[i] != y:
                y, mo, d, h, mi, us = years[i], 1, 1, 0, 0, 0
            i = bisect_left(months, mo)
            if i == len(months):
                y, mo, d, h, mi, us = y + 1, 1, 1, 0, 0, 0
                continue
            if months[i] != mo:
                mo, d, h, mi, us = months[i], 1, 0, 0, 0
            length = days_in_month(y, mo)
            days = self.days(y, mo, length)
            i = bisect_left(days, d)
            if i == len(days):
                if mo < 12:
                    mo, d = mo + 1, 1
                else:
                    y, mo = y + 1, 1
                    d = q.december_day if q is not None and q.december_day is not None else 1
                h, mi, us = 0, 0, 0
                continue
            if days[i] != d:
                d, h, mi, us = days[i], 0, 0, 0
            i = bisect_left(hours, h)
            if i == len(hours):
                quirk = d == length and q is not None and q.hour is not None
                y, mo, d = _next_day(y, mo, d, length)
                h = q.hour if quirk and q is not None and q.hour is not None else 0
                mi, us = 0, 0
                continue
            if hours[i] != h:
                h, mi, us = hours[i], 0, 0
            i = bisect_left(minutes, mi)
            if i == len(minutes):
                if h < 23:
                    h, mi = h + 1, 0
                else:
                    y, mo, d = _next_day(y, mo, d, length)
                    h = 0
                    mi = q.minute if q is not None and q.minute is not None else 0
                us = 0
                continue
            if minutes[i] != mi:
                mi, us = minutes[i], 0
            found = self.usecs.next_ge(us)
            if found is None:
                rest = q.usec if q is not None and q.usec is not None else 0
                if mi < 59:
                    mi, us = mi + 1, rest % USEC_PER_SEC
                else:
                    mi, us = 0, rest
                    if h < 23:
                        h += 1
                    else:
                        y, mo, d = _next_day(y, mo, d, length)
                        h = 0
                continue
            return y, mo, d, h, mi, found


def _offset_at(tz: tzinfo, seconds: int) -> timedelta | None:
    return (_EPOCH + timedelta(seconds=seconds)).astimezone(tz).utcoffset()


def _transition(tz: tzinfo, lo: datetime, hi: datetime) -> datetime:
    """The first instant in (lo, hi] whose UTC offset differs from the offset at lo.

    Zone transitions fall on whole seconds (TZif stores seconds), so a binary
    search over seconds is exact.
    """
    base = _offset_at(tz, int((lo - _EPOCH) // timedelta(seconds=1)))
    lo_s = int((lo - _EPOCH) // timedelta(seconds=1))
    hi_s = -int(-(hi - _EPOCH) // timedelta(seconds=1))
    # invariant: offset(lo_s) == base, offset(hi_s) != base (or hi_s is the bound)
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if _offset_at(tz, mid) == base:
            lo_s = mid
        else:
            hi_s = mid
    return _EPOCH + timedelta(seconds=hi_s)


def wall_to_instant(tz: tzinfo, wall: datetime) -> datetime:
    """Map a naive wall time in ``tz`` to an aware UTC instant, by borgd's DST rule."""
    if isinstance(tz, timezone):
        offset = tz.utcoffset(None)
        return (wall - offset).replace(tzinfo=UTC)
    off0 = wall.replace(tzinfo=tz).utcoffset()
    assert off0 is not None
    inst = (wall - off0).replace(tzinfo=UTC)
    back = inst.astimezone(tz)
    if back.replace(tzinfo=None) == wall:
        return inst  # exists; for an ambiguous time fold=0 is the first occurrence
    # Nonexistent (spring gap): fire at the transition, the first instant after the gap.
    off1 = wall.replace(tzinfo=tz, fold=1).utcoffset()
    assert off1 is not None
    lo, hi = sorted(((wall - off0), (wall - off1)))
    return _transition(tz, lo.replace(tzinfo=UTC) - ONE_US, hi.replace(tzinfo=UTC))


def _fold_end(tz: tzinfo, wall: datetime) -> datetime:
    """For an ambiguous wall time: the first wall time after the repeated stretch."""
    off0 = wall.replace(tzinfo=tz, fold=0).utcoffset()
    off1 = wall.replace(tzinfo=tz, fold=1).utcoffset()
    assert off0 is not None and off1 is not None
    lo = (wall - off0).replace(tzinfo=UTC)
    hi = (wall - off1).replace(tzinfo=UTC)
    t = _transition(tz, lo, hi)
    return (t + off0).replace(tzinfo=None)


def next_instant(matcher: WallMatcher, tz: tzinfo, after: datetime) -> datetime | None:
    """First instant strictly after ``after`` whose wall time in ``tz`` matches."""
    t = after + ONE_US
    local = t.astimezone(tz)
    y, mo, d = local.year, local.month, local.day
    h, mi, us = local.hour, local.minute, local.second * USEC_PER_SEC + local.microsecond
    fixed = isinstance(tz, timezone)
    for _ in range(100):
        if y > MAX_YEAR:
            return None
        found = matcher.next_match(y, mo, d, h, mi, us)
        if found is None:
            return None
        y, mo, d, h, mi, us = found
        wall = datetime(y, mo, d, h, mi, us // USEC_PER_SEC, us % USEC_PER_SEC)
        if fixed:
            offset = tz.utcoffset(None)
            assert offset is not None
            return (wall - offset).replace(tzinfo=UTC)
        inst = wall_to_instant(tz, wall)
        if inst >= t:
            return inst
        # ``wall`` is ambiguous and its first occurrence is already past: we are
        # in the repeated stretch of a fold, which never fires again.
        nxt = max(wall + ONE_US, _fold_end(tz, wall))
        y, mo, d, h, mi = nxt.year, nxt.month, nxt.day, nxt.hour, nxt.minute
        us = nxt.second * USEC_PER_SEC + nxt.microsecond
    return None  # pragma: no cover - a zone with absurd transitions
