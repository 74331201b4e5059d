"""``borgctl calendar SPEC``: show how a schedule spec is read and when it fires next.

The output is shaped like ``systemd-analyze calendar`` (Original form,
Normalized form, Next elapse, (in UTC), From now, Iter. #N), for every spec
kind borgd accepts (calendar events, cron, intervals).  The argparse wiring
lives in the borgctl entry point, which prints :func:`render_calendar`'s
string and exits 2 with the :class:`SpecError` message on a bad spec.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from borgd.core.schedule import SpecError, parse_spec
from borgd.core.schedule.zones import is_utc_zone, resolve_zone

__all__ = ["SpecError", "format_relative", "parse_base_time", "render_calendar"]

_USEC_PER_SEC = 1_000_000
_USEC_PER_MINUTE = 60 * _USEC_PER_SEC
_USEC_PER_HOUR = 60 * _USEC_PER_MINUTE
_USEC_PER_DAY = 24 * _USEC_PER_HOUR
_USEC_PER_WEEK = 7 * _USEC_PER_DAY
_USEC_PER_MONTH = 2_629_800 * _USEC_PER_SEC  # systemd's 30.44 days
_USEC_PER_YEAR = 31_557_600 * _USEC_PER_SEC  # systemd's 365.25 days


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def format_relative(when: datetime, now: datetime) -> str:
    """systemd's relative timestamp: ``3h 5min left``, ``1 year 2 months ago``, ``now``."""
    delta = when - now
    usec = (delta.days * 86400 + delta.seconds) * _USEC_PER_SEC + delta.microseconds
    suffix = " left" if usec >= 0 else " ago"
    d = abs(usec)
    if d >= _USEC_PER_YEAR:
        years, rest = divmod(d, _USEC_PER_YEAR)
        text = f"{_plural(years, 'year')} {_plural(rest // _USEC_PER_MONTH, 'month')}"
    elif d >= _USEC_PER_MONTH:
        months, rest = divmod(d, _USEC_PER_MONTH)
        text = f"{_plural(months, 'month')} {_plural(rest // _USEC_PER_DAY, 'day')}"
    elif d >= _USEC_PER_WEEK:
        weeks, rest = divmod(d, _USEC_PER_WEEK)
        text = f"{_plural(weeks, 'week')} {_plural(rest // _USEC_PER_DAY, 'day')}"
    elif d >= 2 * _USEC_PER_DAY:
        text = f"{d // _USEC_PER_DAY} days"
    elif d >= 25 * _USEC_PER_HOUR:
        text = f"1 day {(d - _USEC_PER_DAY) // _USEC_PER_HOUR}h"
    elif d >= 6 * _USEC_PER_HOUR:
        text = f"{d // _USEC_PER_HOUR}h"
    elif d >= _USEC_PER_HOUR:
        text = f"{d // _USEC_PER_HOUR}h {(d % _USEC_PER_HOUR) // _USEC_PER_MINUTE}min"
    elif d >= 5 * _USEC_PER_MINUTE:
        text = f"{d // _USEC_PER_MINUTE}min"
    elif d >= _USEC_PER_MINUTE:
        text = f"{d // _USEC_PER_MINUTE}min {(d % _USEC_PER_MINUTE) // _USEC_PER_SEC}s"
    elif d >= _USEC_PER_SEC:
        text = f"{d // _USEC_PER_SEC}s"
    elif d >= 1000:
        text = f"{d // 1000}ms"
    elif d > 0:
        text = f"{d}us"
    else:
        return "now"
    return text + suffix


def _stamp(when: datetime, tz: tzinfo) -> str:
    local = when.astimezone(tz)
    return local.strftime("%a %Y-%m-%d %H:%M:%S ") + (local.tzname() or "")


def render_calendar(
    spec: str,
    *,
    iterations: int = 1,
    base_time: datetime | None = None,
    tz: str | None = None,
    now: datetime,
) -> str:
    """Render ``spec`` like ``systemd-analyze calendar --iterations=N --base-time=T``.

    ``tz`` is the zone the spec is read in (unless it names its own) and the
    times are shown in, like ``$TZ`` for systemd-analyze; None: the local zone.
    ``base_time`` defaults to ``now``; "From now" is relative to ``now``.
    Raises :class:`SpecError` for a bad spec or zone, ValueError for iterations < 1.
    """
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    display = resolve_zone(tz)
    parsed = parse_spec(spec, tz)
    lines: list[str] = []
    if parsed.text != parsed.normalized:
        lines.append(f"  Original form: {parsed.text}")
    lines.append(f"Normalized form: {parsed.normalized}")
    show_utc = not is_utc_zone(display)
    current = base_time if base_time is not None else now
    for n in range(1, iterations + 1):
        label = "    Next elapse" if n == 1 else f"       Iter. #{n}"
        nxt = parsed.next_after(current, base_time if base_time is not None else now)
        if nxt is None:
            if n == 1:
                lines.append(f"{label}: never")
            break
        lines.append(f"{label}: {_stamp(nxt, display)}")
        if show_utc:
            lines.append(f"       (in UTC): {_stamp(nxt, UTC)}")
        lines.append(f"       From now: {format_relative(nxt, now)}")
        current = nxt
    return "\n".join(lines) + "\n"


def parse_base_time(text: str, tz: str | None) -> datetime:
    """Parse ``--base-time``: ``now``, ``@EPOCH`` (seconds, may be fractional) or ISO 8601.

    An ISO time without an offset is read in ``tz`` (None: the local zone).
    Returns an aware datetime; raises ValueError (SpecError for an unknown zone).
    """
    value = text.strip()
    if value.lower() == "now":
        return datetime.now(UTC)
    if value.startswith("@"):
        try:
            return datetime.fromtimestamp(float(value[1:]), UTC)
        except (ValueError, OverflowError, OSError) as exc:
            raise ValueError(f"bad epoch time {text!r}: {exc}") from None
    iso = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(
            f"bad base time {text!r}: use ISO 8601 (2024-05-01T03:00:00+02:00), @EPOCH or 'now'"
        ) from None
    if parsed.tzinfo is None:
        zone = resolve_zone(tz)
        parsed = parsed.replace(tzinfo=zone)
    return parsed
