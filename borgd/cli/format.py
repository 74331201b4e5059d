"""Human output for borgctl: relative times, sizes, tables. Pure functions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any


def human_time(us: int, now: datetime) -> str:
    """'in 3 h', '5 min ago', 'yesterday 14:05', '2026-03-01 09:00' — local time."""
    if not us:
        return "-"
    when = datetime.fromtimestamp(us / 1e6, tz=UTC).astimezone(now.tzinfo)
    delta = (when - now).total_seconds()
    ahead = delta >= 0
    secs = abs(delta)
    if secs < 45:
        return "now" if secs < 2 else (f"in {secs:.0f} s" if ahead else f"{secs:.0f} s ago")
    if secs < 3600:
        mins = round(secs / 60)
        return f"in {mins} min" if ahead else f"{mins} min ago"
    if secs < 6 * 3600:
        hours = round(secs / 3600, 1)
        text = f"{hours:g} h"
        return f"in {text}" if ahead else f"{text} ago"
    day = when.date()
    today = now.date()
    if day == today:
        return f"today {when:%H:%M}"
    if day == today - timedelta(days=1):
        return f"yesterday {when:%H:%M}"
    if day == today + timedelta(days=1):
        return f"tomorrow {when:%H:%M}"
    if abs((day - today).days) < 7:
        return f"{when:%a %H:%M}"
    return f"{when:%Y-%m-%d %H:%M}"


def iso_time(us: int) -> str | None:
    if not us:
        return None
    return datetime.fromtimestamp(us / 1e6, tz=UTC).astimezone().isoformat(timespec="seconds")


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} PB"


def human_duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


TIME_KEYS = frozenset(
    {
        "scheduled_for",
        "created_at",
        "queued_at",
        "started_at",
        "finished_at",
        "next_run",
        "paused_until",
        "last_success",
    }
)


def json_ready(item: dict[str, Any]) -> dict[str, Any]:
    """Timestamps as ISO 8601 (null for none) for --json output."""
    return {k: (iso_time(v) if k in TIME_KEYS else v) for k, v in item.items()}


def emit_json(data: Any) -> None:
    """What a call answered, for --json (times as ISO 8601)."""
    if isinstance(data, list):
        data = [json_ready(d) if isinstance(d, dict) else d for d in data]
    elif isinstance(data, dict):
        data = json_ready(data)
    print(json.dumps(data, indent=2, sort_keys=True))


def progress_bar(fraction: float, width: int = 24) -> str:
    if fraction < 0:
        return "[" + "?" * 3 + " " * (width - 3) + "]"
    filled = round(min(max(fraction, 0.0), 1.0) * width)
    return "[" + "#" * filled + "-" * (width - filled) + f"] {fraction * 100:5.1f}%"
