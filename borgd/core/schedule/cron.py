"""Five-field cron expressions (Vixie/Debian cron semantics).

``minute hour day-of-month month day-of-week``, each field ``*`` or a comma
list of ``N``, ``N-M``, with an optional ``/STEP`` (``*/15``, ``1-30/2``, and
``5/10`` meaning ``5-MAX/10``).  Months accept ``jan``…``dec`` and weekdays
``sun``…``sat`` (0 and 7 are Sunday), case-insensitively.  Macros: ``@hourly
@daily @midnight @weekly @monthly @yearly @annually``.

Cron's day rule: when both day-of-month and day-of-week are restricted (the
field does not start with ``*``), a day matches if EITHER matches; otherwise
both must.  Times are wall-clock times in the spec's zone; the DST rule is the
package's (see :mod:`borgd.core.schedule`).
"""

from __future__ import annotations

from dataclasses import dataclass

from borgd.core.schedule._wall import (
    MAX_YEAR,
    MIN_YEAR,
    DayFilter,
    UsecField,
    WallMatcher,
)
from borgd.core.schedule.errors import SpecError

__all__ = ["MACROS", "CronExpr", "looks_like_cron", "parse_cron"]

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DOWS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MAX_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True)
class _CronField:
    name: str
    lo: int
    hi: int
    names: tuple[str, ...] = ()
    name_base: int = 0


_FIELDS = (
    _CronField("minute", 0, 59),
    _CronField("hour", 0, 23),
    _CronField("day-of-month", 1, 31),
    _CronField("month", 1, 12, _MONTHS, 1),
    _CronField("day-of-week", 0, 7, _DOWS, 0),
)


@dataclass(frozen=True)
class CronExpr:
    normalized: str
    matcher: WallMatcher


def looks_like_cron(text: str) -> bool:
    """True if ``text`` should be parsed as cron rather than as a calendar event."""
    s = text.strip()
    if s.lower() in MACROS or s.lower() == "@reboot":
        return True
    # A calendar event has at most 4 words (weekday, date, time, zone), and with 4
    # the time has a ':'; so 5 or more words, or 4 without ':', are meant as cron.
    words = len(s.split())
    return words >= 5 or (words == 4 and not any(c in s for c in ":.~"))


def _fail(reason: str, text: str, pos: int) -> SpecError:
    return SpecError(reason, text, pos + 1)


def _number(field: _CronField, tok: str, text: str, pos: int) -> int:
    low = tok.lower()
    if field.names and low in field.names:
        return field.names.index(low) + field.name_base
    if not tok.isascii() or not tok.isdigit():
        what = "a number or name" if field.names else "a number"
        raise _fail(f"{field.name}: expected {what}, found {tok!r}", text, pos)
    value = int(tok)
    if not field.lo <= value <= field.hi:
        raise _fail(
            f"{field.name} {value} out of range {field.lo}-{field.hi}",
            text,
            pos,
        )
    return value


def _parse_field(field: _CronField, raw: str, text: str, pos: int) -> tuple[set[int], str]:
    values: set[int] = set()
    shown: list[str] = []
    p = pos
    for item in raw.split(","):
        if not item:
            raise _fail(f"{field.name}: empty list item", text, p)
        base, slash, step_s = item.partition("/")
        step = 1
        if slash:
            step_pos = p + len(base) + 1
            if not step_s.isascii() or not step_s.isdigit():
                raise _fail(f"{field.name}: bad step {step_s!r}", text, step_pos)
            step = int(step_s)
            if step == 0:
                raise _fail(f"{field.name}: step must be greater than zero", text, step_pos)
        if base == "*":
            lo, hi = field.lo, field.hi
            shown.append("*" if step == 1 else f"*/{step}")
        else:
            first, dash, last = base.partition("-")
            lo = _number(field, first, text, p)
            if dash:
                hi = _number(field, last, text, p + len(first) + 1)
                if hi < lo:
                    raise _fail(f"{field.name} range {base} ends before it starts", text, p)
            elif slash:
                hi = field.hi
            else:
                hi = lo
            if lo == hi and not slash:
                shown.append(str(lo % 7 if field.names == _DOWS else lo))
            elif step == 1:
                shown.append(f"{lo}-{hi}")
            else:
                shown.append(f"{lo}-{hi}/{step}")
        values.update(range(lo, hi + 1, step))
        p += len(item) + 1
    return values, ",".join(shown)


def parse_cron(text: str) -> CronExpr:
    """Parse a five-field cron expression or macro; raise :class:`SpecError` if invalid."""
    stripped = text.strip()
    macro = stripped.lower()
    if macro == "@reboot":
        raise SpecError("@reboot is not a schedule", text)
    if macro.startswith("@"):
        if macro not in MACROS:
            raise SpecError(f"unknown cron macro {stripped!r}", text, text.find("@") + 1)
        expr = MACROS[macro]
        return _build(expr, expr)
    return _build(text, text)


def _build(text: str, source: str) -> CronExpr:
    fields: list[tuple[str, int]] = []
    i = 0
    while i < len(source):
        if source[i].isspace():
            i += 1
            continue
        j = i
        while j < len(source) and not source[j].isspace():
            j += 1
        fields.append((source[i:j], i))
        i = j
    if len(fields) != 5:
        extra = " (a seconds or year field is not supported)" if len(fields) > 5 else ""
        raise SpecError(
            "a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
            f"found {len(fields)}{extra}",
            text,
        )
    sets: list[set[int]] = []
    shown: list[str] = []
    for spec_field, (raw, pos) in zip(_FIELDS, fields, strict=True):
        values, norm = _parse_field(spec_field, raw, text, pos)
        sets.append(values)
        shown.append(norm)
    minutes, hours, doms, months, dows = sets
    dow_bits = 0
    for v in dows:
        dow_bits |= 1 << ((v + 6) % 7)  # cron Sunday=0 -> Monday=0 bit order
    dom_star = fields[2][0].startswith("*")
    dow_star = fields[4][0].startswith("*")
    day_and = dom_star or dow_star
    if day_and and min(doms) > max(_MAX_DAYS[m] for m in months):
        raise SpecError(
            f"day-of-month {min(doms)} never occurs in the selected months", text, fields[2][1] + 1
        )

    def allowed(length: int, first_weekday: int) -> tuple[int, ...]:
        out: list[int] = []
        for d in range(1, length + 1):
            dom_ok = d in doms
            dow_ok = bool(dow_bits & (1 << ((first_weekday + d - 1) % 7)))
            if (dom_ok and dow_ok) if day_and else (dom_ok or dow_ok):
                out.append(d)
        return tuple(out)

    day_filter: DayFilter = allowed
    matcher = WallMatcher(
        tuple(range(MIN_YEAR, MAX_YEAR + 1)),
        tuple(sorted(months)),
        day_filter,
        tuple(sorted(hours)),
        tuple(sorted(minutes)),
        UsecField(((0, -1, 0),)),
    )
    return CronExpr(" ".join(shown), matcher)
