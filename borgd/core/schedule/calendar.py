"""systemd calendar events (systemd.time(7)), parsed and normalised like systemd 252.

Grammar (after an optional trailing ``UTC`` or IANA zone name)::

    shorthand | [WEEKDAYS] [DATE] [TIME]  |  @EPOCH
    WEEKDAYS  = day ( (',' | '..' | '-') day )*   Mon, Monday, … case-insensitive
    DATE      = [YEAR '-'] MONTH ('-' | '~') DAY  each a CHAIN; '~' counts days
                                                  from the end of the month
    TIME      = HOUR ':' MINUTE [':' SECOND]      SECOND may carry '.ffffff'
    CHAIN     = '*' | ITEM (',' ITEM)*
    ITEM      = N ['..' N] ['/' N]

A missing time means 00:00:00, a missing date ``*-*-*``; two-digit years are
20xx (00-69) or 19xx (70-99).  The validity rules, the normal form and the
matching semantics follow systemd's calendarspec.c so that, away from DST
transitions, the instants equal those of ``systemd-analyze calendar``.  See
:mod:`borgd.core.schedule` for the deliberate DST difference.

Deviations: the local zone's abbreviations (``CEST``) are not accepted as a
suffix unless they are also IANA names (``CET``, ``EST``); leading and
trailing blanks are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timezone
from zoneinfo import ZoneInfo

from borgd.core.schedule._wall import (
    MAX_YEAR,
    MIN_YEAR,
    USEC_PER_MINUTE,
    USEC_PER_SEC,
    CarryQuirks,
    DayFilter,
    UsecField,
    WallMatcher,
)
from borgd.core.schedule.errors import SpecError
from borgd.core.schedule.zones import zone_from_suffix

__all__ = ["SHORTHANDS", "CalendarEvent", "parse_calendar"]

_WEEKDAY_NAMES = (
    ("monday", 0),
    ("mon", 0),
    ("tuesday", 1),
    ("tue", 1),
    ("wednesday", 2),
    ("wed", 2),
    ("thursday", 3),
    ("thu", 3),
    ("friday", 4),
    ("fri", 4),
    ("saturday", 5),
    ("sat", 5),
    ("sunday", 6),
    ("sun", 6),
)
_DAY_ABBR = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
ALL_WEEKDAYS = 0b111_1111


@dataclass(frozen=True)
class _Item:
    start: int
    stop: int  # -1: none
    repeat: int  # 0: none
    pos: int  # 0-based index into the original text


_Chain = tuple[_Item, ...] | None  # None means '*'


@dataclass(frozen=True)
class _Field:
    name: str
    lo: int
    hi: int
    width: int
    usec: bool = False


_YEAR = _Field("year", MIN_YEAR, MAX_YEAR, 4)
_MONTH = _Field("month", 1, 12, 2)
_DAY = _Field("day", 1, 31, 2)
_HOUR = _Field("hour", 0, 23, 2)
_MINUTE = _Field("minute", 0, 59, 2)
_SECOND = _Field("second", 0, USEC_PER_MINUTE - 1, 2, usec=True)


def _c(*values: int) -> tuple[_Item, ...]:
    return tuple(_Item(v, -1, 0, 0) for v in values)


# name -> (weekday bits, month, day, hour, minute, second); None means '*'
SHORTHANDS: dict[str, tuple[int, _Chain, _Chain, _Chain, _Chain, _Chain]] = {
    "minutely": (0, None, None, None, None, _c(0)),
    "hourly": (0, None, None, None, _c(0), _c(0)),
    "daily": (0, None, None, _c(0), _c(0), _c(0)),
    "monthly": (0, None, _c(1), _c(0), _c(0), _c(0)),
    "weekly": (1, None, None, _c(0), _c(0), _c(0)),
    "yearly": (0, _c(1), _c(1), _c(0), _c(0), _c(0)),
    "quarterly": (0, _c(1, 4, 7, 10), _c(1), _c(0), _c(0), _c(0)),
    "semiannually": (0, _c(1, 7), _c(1), _c(0), _c(0), _c(0)),
}
for _alias, _target in (
    ("annually", "yearly"),
    ("anually", "yearly"),
    ("biannually", "semiannually"),
    ("bi-annually", "semiannually"),
    ("semi-annually", "semiannually"),
):
    SHORTHANDS[_alias] = SHORTHANDS[_target]


@dataclass(frozen=True)
class CalendarEvent:
    """A parsed calendar event: its normal form, zone and wall-clock matcher."""

    normalized: str
    tz: ZoneInfo | timezone
    matcher: WallMatcher
    explicit_zone: bool


# ---------------------------------------------------------------------------
# parsing


class _Parser:
    def __init__(self, text: str, body: str, offset: int) -> None:
        self.text = text
        self.s = body
        self.i = 0
        self.offset = offset

    # -- helpers -----------------------------------------------------------
    def error(self, reason: str, at: int | None = None) -> SpecError:
        where = self.i if at is None else at
        return SpecError(reason, self.text, self.offset + where + 1)

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def at_end(self) -> bool:
        return self.i >= len(self.s)

    def token_at(self, j: int) -> str:
        end = j
        while end < len(self.s) and self.s[end] not in " ,:-~/":
            end += 1
        return self.s[j : max(end, j + 1)]

    def skip_spaces(self) -> None:
        while self.peek() == " ":
            self.i += 1

    def unexpected(self, what: str) -> SpecError:
        if self.at_end():
            return self.error(f"unexpected end, expected {what}")
        if self.peek() == " ":
            return self.error(f"unexpected space, expected {what}")
        return self.error(f"unexpected {self.token_at(self.i)!r}, expected {what}")

    # -- weekdays ----------------------------------------------------------
    def weekdays(self) -> int:
        bits = 0
        range_from = -1
        first = True
        while True:
            rest = self.s[self.i :].lower()
            match = next(((n, d) for n, d in _WEEKDAY_NAMES if rest.startswith(n)), None)
            if match is None:
                if first:
                    return 0
                raise self.error(f"unknown weekday {self.token_at(self.i)!r}")
            name, nr = match
            after = self.peek(len(name))
            if after not in ("", "-", ".", ",", " "):
                raise self.error(f"unknown weekday {self.token_at(self.i)!r}")
            bits |= 1 << nr
            if range_from >= 0:
                if range_from > nr:
                    raise self.error(
                        f"weekday range ends before it starts at {self.token_at(self.i)!r}"
                    )
                for j in range(range_from + 1, nr):
                    bits |= 1 << j
            start_pos = self.i
            self.i += len(name)
            if self.at_end():
                return bits
            if self.peek() == " ":
                self.skip_spaces()
                return bits
            if self.peek() == ".":
                if range_from >= 0 or self.peek(1) != ".":
                    raise self.error("bad weekday range")
                range_from = nr
                self.i += 2
            elif self.peek() == "-":
                if range_from >= 0:
                    raise self.error("bad weekday range")
                range_from = nr
                self.i += 1
            else:  # ','
                range_from = -1
                self.i += 1
            if self.at_end() or self.peek() == " ":
                if range_from >= 0:
                    raise self.error("weekday range without an end", start_pos)
                self.skip_spaces()
                return bits
            first = False

    # -- numbers and chains ------------------------------------------------
    def decimal(self, usec: bool) -> int:
        j = self.i
        while j < len(self.s) and self.s[j].isdigit() and self.s[j].isascii():
            j += 1
        if j == self.i:
            if self.peek() == "*":
                raise self.error(
                    "'*' cannot be combined with other values (use e.g. '0/15' for every 15)"
                )
            raise self.unexpected("a number or '*'")
        digits = self.s[self.i : j]
        if len(digits) > 9:
            raise self.error(f"number {digits} too large")
        value = int(digits)
        self.i = j
        if not usec:
            return value
        value *= USEC_PER_SEC
        if self.peek() == "." and self.peek(1) != ".":
            self.i += 1
            k = self.i
            while k < len(self.s) and self.s[k].isdigit() and self.s[k].isascii():
                k += 1
            frac = self.s[self.i : k]
            if not frac:
                raise self.unexpected("digits after the decimal point")
            micro = int((frac + "000000")[:6])
            if len(frac) > 6 and frac[6] >= "5":
                micro += 1
            value += micro
            self.i = k
        return value

    def item(self, usec: bool) -> _Item:
        pos = self.i
        start = self.decimal(usec)
        stop = -1
        repeat = 0
        if self.peek() == "." and self.peek(1) == ".":
            self.i += 2
            stop = self.decimal(usec)
            repeat = USEC_PER_SEC if usec else 1
        if self.peek() == "/":
            self.i += 1
            rpos = self.i
            repeat = self.decimal(usec)
            if repeat == 0:
                raise self.error("repetition must be greater than zero", rpos)
        elif usec and stop >= 0 and start + repeat > stop:
            raise self.error("a range of seconds must span at least one second", pos)
        if self.peek() not in ("", " ", ",", "-", "~", ":"):
            raise self.unexpected("',', '..', '/' or a separator")
        return _Item(start, stop, repeat, pos)

    def chain(self, usec: bool) -> _Chain:
        if self.peek() == "*":
            self.i += 1
            if self.peek() == "/":
                raise self.error("'*/N' is cron syntax; write '0/N' (or '1/N' for dates)")
            if usec:
                return (_Item(0, -1, USEC_PER_SEC, self.i - 1),)
            return None
        items = [self.item(usec)]
        while self.peek() == ",":
            self.i += 1
            if len(items) >= 240:
                raise self.error("too many list items")
            items.append(self.item(usec))
        return tuple(items)


@dataclass
class _Raw:
    weekdays: int = 0
    year: _Chain = None
    month: _Chain = None
    day: _Chain = None
    hour: _Chain = None
    minute: _Chain = None
    second: _Chain = None
    end_of_month: bool = False
    utc_epoch: bool = False


def _parse_body(p: _Parser, raw: _Raw) -> None:
    raw.weekdays = p.weekdays()
    # date
    if p.peek() == "@":
        p.i += 1
        j = p.i
        while p.peek().isdigit() and p.peek().isascii():
            p.i += 1
        if p.i == j or p.i - j > 12:
            raise p.unexpected("seconds since the epoch after '@'")
        moment = datetime.fromtimestamp(int(p.s[j : p.i]), UTC)
        if moment.year > MAX_YEAR:
            raise p.error(f"year {moment.year} out of range {MIN_YEAR}-{MAX_YEAR}", j)
        raw.year, raw.month, raw.day = _c(moment.year), _c(moment.month), _c(moment.day)
        raw.hour, raw.minute = _c(moment.hour), _c(moment.minute)
        raw.second = _c(moment.second * USEC_PER_SEC)
        raw.utc_epoch = True
        if not p.at_end():
            raise p.unexpected("the end after '@EPOCH'")
        return
    if not p.at_end():
        save = p.i
        first = p.chain(False)
        if p.at_end() or p.peek() == ":":
            p.i = save  # it was a time
        else:
            if p.peek() == "~":
                raw.end_of_month = True
            elif p.peek() != "-":
                raise p.unexpected("'-', '~' or ':'")
            p.i += 1
            second = p.chain(False)
            if p.at_end() or p.peek() == " ":
                raw.month, raw.day = first, second
            elif raw.end_of_month:
                raise p.error("'~' may only separate the month and the day")
            else:
                if p.peek() == "~":
                    raw.end_of_month = True
                elif p.peek() != "-":
                    raise p.unexpected("'-', '~' or a space")
                p.i += 1
                third = p.chain(False)
                if not (p.at_end() or p.peek() == " "):
                    raise p.unexpected("a space after the date")
                raw.year, raw.month, raw.day = first, second, third
            p.skip_spaces()
    # time
    if p.at_end():
        raw.hour, raw.minute, raw.second = _c(0), _c(0), _c(0)
        return
    raw.hour = p.chain(False)
    if p.peek() != ":":
        raise p.unexpected("':' after the hour")
    p.i += 1
    raw.minute = p.chain(False)
    if p.at_end():
        raw.second = _c(0)
        return
    if p.peek() != ":":
        raise p.unexpected("':' or the end after the minute")
    p.i += 1
    raw.second = p.chain(True)
    if not p.at_end():
        raise p.unexpected("the end after the seconds")


# ---------------------------------------------------------------------------
# normalising and validating (systemd's normalize_chain / chain_valid)


def _fix_year(chain: _Chain) -> _Chain:
    if chain is None:
        return None

    def fix(v: int) -> int:
        if 0 <= v < 70:
            return v + 2000
        if 70 <= v < 100:
            return v + 1900
        return v

    return tuple(_Item(fix(c.start), fix(c.stop), c.repeat, c.pos) for c in chain)


def _normalize(chain: _Chain) -> _Chain:
    if chain is None:
        return None
    fixed: list[_Item] = []
    for c in chain:
        start, stop, repeat = c.start, c.stop, c.repeat
        if stop > start and repeat > 0:
            stop -= (stop - start) % repeat
        if (stop > start and repeat > 0 and start + repeat > stop) or start == stop:
            repeat, stop = 0, -1
        fixed.append(_Item(start, stop, repeat, c.pos))
    fixed.sort(key=lambda c: (c.start, c.stop, c.repeat))
    out: list[_Item] = []
    for c in fixed:
        if out and (out[-1].start, out[-1].stop, out[-1].repeat) == (c.start, c.stop, c.repeat):
            continue
        out.append(c)
    return tuple(out)


def _show(field: _Field, value: int, eom: bool = False) -> str:
    prefix = "~" if eom else ""
    if field.usec:
        sec, frac = divmod(value, USEC_PER_SEC)
        return f"{prefix}{sec}.{frac:06d}".rstrip("0").rstrip(".") if frac else f"{prefix}{sec}"
    return f"{prefix}{value}"


def _validate(p: _Parser, field: _Field, chain: _Chain, eom: bool) -> None:
    if chain is None:
        return
    lo, hi = field.lo, field.hi - (3 if eom else 0)

    def rng() -> str:
        return f"{_show(field, lo, eom)}-{_show(field, hi, eom)}"

    for c in chain:
        at = c.pos
        if not lo <= c.start <= hi:
            raise p.error(f"{field.name} {_show(field, c.start, eom)} out of range {rng()}", at)
        if c.repeat > hi - lo:
            raise p.error(
                f"{field.name} repetition /{_show(field, c.repeat)} too large for range {rng()}",
                at,
            )
        if c.stop >= 0:
            if not lo <= c.stop <= hi:
                raise p.error(
                    f"{field.name} range end {_show(field, c.stop, eom)} out of range {rng()}", at
                )
            if c.start + c.repeat > c.stop:
                raise p.error(
                    f"{field.name} range {_show(field, c.start, eom)}.."
                    f"{_show(field, c.stop)} is empty or descending",
                    at,
                )
        elif eom and c.start - c.repeat < lo:
            raise p.error(
                f"{field.name} ~{c.start}/{c.repeat} never repeats before the end of the month",
                at,
            )
        elif not eom and c.start + c.repeat > hi:
            raise p.error(
                f"{field.name} {_show(field, c.start)}/{_show(field, c.repeat)} "
                f"never repeats within {rng()}",
                at,
            )


# ---------------------------------------------------------------------------
# formatting (systemd's calendar_spec_to_string)


def _format_weekdays(bits: int) -> str:
    out: list[str] = []
    run_start = -1
    for x in range(8):
        on = x < 7 and bool(bits & (1 << x))
        if on and run_start < 0:
            run_start = x
        elif not on and run_start >= 0:
            last = x - 1
            if last == run_start:
                out.append(_DAY_ABBR[run_start])
            elif last == run_start + 1:
                out.append(f"{_DAY_ABBR[run_start]},{_DAY_ABBR[last]}")
            else:
                out.append(f"{_DAY_ABBR[run_start]}..{_DAY_ABBR[last]}")
            run_start = -1
    return ",".join(out)


def _format_chain(chain: _Chain, width: int, usec: bool) -> str:
    if chain is None:
        return "*"
    d = USEC_PER_SEC if usec else 1
    # systemd 252 prints '*' for a seconds chain holding "every second from 0"
    # (even next to other items: "5,0/1" -> "*"), but not for a range "0..10".
    if usec and any(c.start == 0 and c.stop < 0 and c.repeat == USEC_PER_SEC for c in chain):
        return "*"
    parts: list[str] = []
    for c in chain:
        s = f"{c.start // d:0{width}d}"
        if c.start % d:
            s += f".{c.start % d:06d}"
        if c.stop > 0:
            s += f"..{c.stop // d:0{width}d}"
            if c.stop % d:
                s += f".{c.stop % d:06d}"
        if c.repeat > 0 and not (c.stop > 0 and c.repeat == d):
            s += f"/{c.repeat // d}"
        if c.repeat % d:
            s += f".{c.repeat % d:06d}"
        parts.append(s)
    return ",".join(parts)


# ---------------------------------------------------------------------------
# expansion into a matcher


def _values(chain: _Chain, lo: int, hi: int) -> tuple[int, ...]:
    if chain is None:
        return tuple(range(lo, hi + 1))
    acc: set[int] = set()
    for c in chain:
        acc.add(c.start)
        if c.repeat > 0:
            end = c.stop if c.stop >= 0 else hi
            acc.update(range(c.start, end + 1, c.repeat))
    return tuple(sorted(v for v in acc if lo <= v <= hi))


def _day_filter(day: _Chain, end_of_month: bool, weekdays: int) -> DayFilter:
    plain = _values(day, 1, 31)

    def allowed(length: int, first_weekday: int) -> tuple[int, ...]:
        if end_of_month and day is not None:
            acc: set[int] = set()
            for c in day:
                # The n-th last day is length + 1 - n; a range ~a..b runs forwards
                # from the b-th last to the a-th last day; a repetition runs towards
                # the end of the month.
                start = length + 1 - c.start
                stop = length + 1 - c.stop if c.stop >= 0 else -1
                if stop > 0:
                    start, stop = stop, start
                acc.add(start)
                if c.repeat > 0:
                    end = stop if stop >= 0 else length
                    acc.update(range(start, end + 1, c.repeat))
            days = sorted(v for v in acc if 1 <= v <= length)
        else:
            days = [v for v in plain if v <= length]
        if weekdays:
            days = [v for v in days if weekdays & (1 << ((first_weekday + v - 1) % 7))]
        return tuple(days)

    return allowed


def _overflow(chain: _Chain, top: int) -> int | None:
    """The smallest value above ``top`` that a repetition without an end reaches."""
    best: int | None = None
    for c in chain or ():
        if c.repeat > 0 and c.stop < 0:
            k = c.start + c.repeat * ((top - c.start) // c.repeat + 1)
            best = k if best is None else min(best, k)
    return best


def _december_overflow(day: _Chain, end_of_month: bool) -> int | None:
    """January day at which systemd restarts when December's days run out (None: the 1st)."""
    if day is None or 31 in _day_filter(day, end_of_month, 0)(31, 0):
        return None
    if end_of_month:  # the n-th last day of December is day 32 - n
        day = tuple(_Item(32 - c.start, -1, c.repeat, c.pos) for c in day if c.stop < 0)
    k = _overflow(day, 31)
    return None if k is None else k - 31


def _quirks(day: _Chain, eom: bool, hour: _Chain, minute: _Chain, second: _Chain) -> CarryQuirks:
    k_hour = _overflow(hour, 23)
    k_minute = _overflow(minute, 59)
    k_usec = _overflow(second, USEC_PER_MINUTE - 1)
    return CarryQuirks(
        _december_overflow(day, eom),
        None if k_hour is None else k_hour - 24,
        None if k_minute is None else k_minute - 60,
        None if k_usec is None else k_usec - USEC_PER_MINUTE,
    )


def parse_calendar(text: str, default_tz: ZoneInfo | timezone) -> CalendarEvent:
    """Parse a systemd calendar event; raise :class:`SpecError` if it is not one."""
    stripped = text.strip()
    offset = len(text) - len(text.lstrip())
    if not stripped:
        raise SpecError("empty calendar spec", text)
    body = stripped
    tz: ZoneInfo | timezone = default_tz
    zone_suffix = ""
    explicit = False
    if body.lower().endswith(" utc"):
        body = body[:-4].rstrip()
        tz, zone_suffix, explicit = UTC, " UTC", True
    else:
        cut = body.rfind(" ")
        if cut >= 0:
            zone = zone_from_suffix(body[cut + 1 :])
            if zone is not None:
                body = body[:cut].rstrip()
                tz, explicit = zone, True
                zone_suffix = f" {zone.key}"
    if not body:
        raise SpecError("calendar spec has a time zone but no time", text)

    p = _Parser(text, body, offset)
    raw = _Raw()
    short = SHORTHANDS.get(body.lower())
    first_word, _, rest = body.partition(" ")
    if short is not None:
        raw.weekdays, raw.month, raw.day, raw.hour, raw.minute, raw.second = short
    elif first_word.lower() in SHORTHANDS:
        rest = rest.strip()
        raise p.error(
            f"{first_word!r} cannot be combined with {rest!r} (only a time zone may follow it)",
            body.index(rest, len(first_word)),
        )
    else:
        _parse_body(p, raw)
    if raw.utc_epoch:
        tz, zone_suffix, explicit = UTC, " UTC", True

    weekdays = raw.weekdays if 0 < raw.weekdays < ALL_WEEKDAYS else 0
    eom = raw.end_of_month and raw.day is not None
    year = _normalize(_fix_year(raw.year))
    month = _normalize(raw.month)
    day = _normalize(raw.day)
    hour = _normalize(raw.hour)
    minute = _normalize(raw.minute)
    second = _normalize(raw.second)
    _validate(p, _YEAR, year, False)
    _validate(p, _MONTH, month, False)
    _validate(p, _DAY, day, eom)
    _validate(p, _HOUR, hour, False)
    _validate(p, _MINUTE, minute, False)
    _validate(p, _SECOND, second, False)

    normalized = (
        (f"{_format_weekdays(weekdays)} " if weekdays else "")
        + f"{_format_chain(year, 4, False)}-{_format_chain(month, 2, False)}"
        + f"{'~' if eom else '-'}{_format_chain(day, 2, False)} "
        + f"{_format_chain(hour, 2, False)}:{_format_chain(minute, 2, False)}:"
        + f"{_format_chain(second, 2, True)}"
        + zone_suffix
    )
    usec_items = (
        ((0, -1, USEC_PER_SEC),)
        if second is None
        else tuple((c.start, c.stop, c.repeat) for c in second)
    )
    matcher = WallMatcher(
        _values(year, MIN_YEAR, MAX_YEAR),
        _values(month, 1, 12),
        _day_filter(day, eom, weekdays),
        _values(hour, 0, 23),
        _values(minute, 0, 59),
        UsecField(usec_items),
        _quirks(day, eom, hour, minute, second),
    )
    if not matcher.years or not matcher.months:
        raise SpecError("calendar spec selects no year or month", text)
    return CalendarEvent(normalized, tz, matcher, explicit)
