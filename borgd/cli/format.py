"""Human output for borgctl: relative times, sizes, tables. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

TYPE_CHECKING = False  # importing typing costs borgctl ~3 ms at start (cli/entry.py)
if TYPE_CHECKING:
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


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], width: int | None = None) -> str:
    """Columns padded to their widest cell; with ``width`` (a terminal's), the last
    column is cut to fit, with "…" where it was cut."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    if width is not None and cells:
        room = max(12, width - sum(widths[:-1]) - 2 * (len(widths) - 1))
        for row in cells:
            row[-1] = clip(row[-1], room)
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def terminal_width() -> int | None:
    """The terminal's width when stdout is one; None (no cutting) for a pipe or file."""
    import sys

    return columns() if sys.stdout.isatty() else None


def columns() -> int:
    """The terminal's width as shutil.get_terminal_size finds it ($COLUMNS first, else
    stdout's terminal, else 80), without importing shutil: that pulls in bz2, lzma and
    zlib, ~3 ms of every borgctl command."""
    import os

    try:
        return int(os.environ.get("COLUMNS", "")) or os.get_terminal_size(1).columns
    except (ValueError, OSError):
        return 80


def rate_and_eta(job: dict[str, Any]) -> str:
    """' 12.3 MB/s, 2 min left' for a running job that knows them, else ''."""
    parts = []
    if job.get("rate"):
        parts.append(f"{human_size(int(job['rate']))}/s")
    if job.get("eta", 0) > 0:
        parts.append(f"{human_duration(job['eta'] / 1e6)} left")
    return (" " + ", ".join(parts)) if parts else ""


# --json has one convention (borgctl(1), JSON OUTPUT): a time is ISO 8601 in the
# local zone, a duration is seconds, and "none" is null, whatever borgd's own
# sentinel for it (0 for a time, a link or an unset duration, "" for no text,
# -1 for no exit code).
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
        "last_backup",
        "last_prune",
        "last_compact",
        "last_check",
        "start",
        "end",
        "sent_at",
        "next_attempt_at",
        "deferred_to",
        "mtime",
        "PausedUntil",
        "NextRun",
    }
)
DURATION_US_KEYS = frozenset(
    {"max_age", "catch_up_window", "randomized_delay", "retry_delay", "min_interval"}
)
LINK_KEYS = frozenset({"schedule_id", "parent_id", "requeued_from"})
NONE_TEXT_KEYS = frozenset(
    {"skip_reason", "blocked_by", "archive", "message", "progress_message", "current_file"}
)


def json_value(key: str, value: Any) -> Any:
    if key in TIME_KEYS and isinstance(value, int):
        return iso_time(value)
    if key in DURATION_US_KEYS and isinstance(value, int):
        return value / 1e6 if value else None
    if key == "eta" and isinstance(value, int | float):
        return value / 1e6 if value > 0 else None  # µs, as its job's other times
    if key in LINK_KEYS and value == 0:
        return None
    if key in NONE_TEXT_KEYS and value == "":
        return None
    if key == "exit_code" and value == -1:
        return None
    return value


def json_ready(item: dict[str, Any]) -> dict[str, Any]:
    """One row for --json: times ISO 8601, durations in seconds, none as null."""
    return {k: json_value(k, v) for k, v in item.items()}


def readable_log_line(line: str) -> str | None:
    """A job log's line as a person reads it: borg's JSON events as their messages,
    its progress left out (``borgctl watch`` shows it); other lines as they are."""
    if not line.startswith("{"):
        return line
    import json  # here, not at the top: quick commands without --json never need it

    try:
        event = json.loads(line)
    except ValueError:
        return line  # a line of borg's final --json document
    if not isinstance(event, dict) or "type" not in event:
        return line
    kind = event["type"]
    stamp = ""
    if isinstance(event.get("time"), int | float):
        stamp = datetime.fromtimestamp(event["time"]).strftime("%H:%M:%S ")
    if kind == "log_message":
        level = str(event.get("levelname", "")).upper()
        return (
            f"{stamp}{level + ': ' if level not in ('', 'INFO') else ''}{event.get('message', '')}"
        )
    if kind == "file_status":
        return f"{stamp}{event.get('status', '?')} {event.get('path', '')}"
    if kind == "progress_message" and event.get("message") and not event.get("finished"):
        return f"{stamp}{event['message']}"
    if kind in ("archive_progress", "progress_message", "progress_percent"):
        return None
    return line


def emit_json(data: Any) -> None:
    """What a call answered, for --json (times as ISO 8601)."""
    if isinstance(data, list):
        data = [json_ready(d) if isinstance(d, dict) else d for d in data]
    elif isinstance(data, dict):
        data = json_ready(data)
    import json

    print(json.dumps(data, indent=2, sort_keys=True))


def progress_line(job: dict[str, Any]) -> str:
    """A running job in one line: bar (or what is done when the total is unknown),
    rate, time left, and what borg is at."""
    if job.get("progress", -1) >= 0:
        head = progress_bar(job["progress"])
    else:
        done = int(job.get("original_size") or 0)
        head = f"[working] {human_size(done)} read" if done else "[working]"
    what = job.get("current_file") or job.get("progress_message") or ""
    return head + rate_and_eta(job) + (f"  {what}" if what else "")


def progress_bar(fraction: float, width: int = 24) -> str:
    if fraction < 0:
        return "[" + "?" * 3 + " " * (width - 3) + "]"
    filled = round(min(max(fraction, 0.0), 1.0) * width)
    return "[" + "#" * filled + "-" * (width - filled) + f"] {fraction * 100:5.1f}%"
