"""Blackout windows: times when scheduled backups must not start.

A window is written ``"SPEC DURATION"``: a calendar (or cron) spec for its
starts and how long each lasts, e.g. ``"Mon..Fri 09:00 8h"``.  Pure: "now"
is an argument, and wall-clock times are read in the spec's zone (default:
the system's local zone, as for schedules).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from borgd.clock import from_datetime, to_datetime
from borgd.core.schedule import Spec, SpecError, parse_spec
from borgd.core.schedule.interval import parse_interval

US = 1_000_000
MAX_WINDOW = timedelta(days=7)
MAX_WINDOWS = 50
# Windows that overlap or touch make one longer window; stop following a chain this long.
MAX_CHAIN = 1000


class BlackoutError(ValueError):
    """A window that cannot be read; the message names it and says what is wrong."""


@dataclass(frozen=True)
class Window:
    text: str
    spec: Spec
    length_us: int

    def containing_end(self, at: int) -> int | None:
        """The end of this window's span that contains ``at``, or None when outside."""
        start = self.spec.next_after(to_datetime(at - self.length_us))
        if start is None:
            return None
        begin = from_datetime(start)
        return begin + self.length_us if begin <= at else None


def parse_window(text: str, default_tz: str | None = None) -> Window:
    """``"Mon..Fri 09:00 8h"`` → a window; raise :class:`BlackoutError` saying why not."""
    if not isinstance(text, str) or not text.strip():
        raise BlackoutError("a blackout window must be 'SPEC DURATION', e.g. 'Mon..Fri 09:00 8h'")
    spec_text, _, length = text.strip().rpartition(" ")
    if not spec_text.strip():
        raise BlackoutError(
            f"blackout window {text!r} needs a start and a length, e.g. 'Mon..Fri 09:00 8h'"
        )
    try:
        seconds, _ = parse_interval("every " + length)
    except SpecError:
        raise BlackoutError(
            f"blackout window {text!r}: {length!r} is not a length such as 30m, 8h or 2d"
        ) from None
    if not 0 < seconds <= MAX_WINDOW.total_seconds():
        raise BlackoutError(f"blackout window {text!r}: the length must be at most 7 days")
    try:
        spec = parse_spec(spec_text.strip(), default_tz=default_tz)
    except SpecError as exc:
        raise BlackoutError(f"blackout window {text!r}: {exc}") from None
    if spec.kind not in ("calendar", "cron"):
        raise BlackoutError(
            f"blackout window {text!r}: the start must be a calendar time such as "
            "'Mon..Fri 09:00' or 'daily', not an interval or an event"
        )
    return Window(text.strip(), spec, seconds * US)


def parse_windows(texts: Sequence[str], default_tz: str | None = None) -> list[Window]:
    if len(texts) > MAX_WINDOWS:
        raise BlackoutError(f"at most {MAX_WINDOWS} blackout windows")
    return [parse_window(t, default_tz) for t in texts]


def window_end(windows: Iterable[Window], at: int) -> int | None:
    """When the blackout that holds at ``at`` ends (windows that overlap or touch count
    as one), or None when no window holds."""
    items = list(windows)
    end: int | None = None
    probe = at
    for _ in range(MAX_CHAIN):
        ends = [e for w in items if (e := w.containing_end(probe)) is not None]
        if not ends:
            return end
        end = max(ends)
        probe = end
    return end


__all__ = ["BlackoutError", "Window", "parse_window", "parse_windows", "window_end"]
