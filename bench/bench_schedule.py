"""Benchmark the schedule core: ``python bench/bench_schedule.py``.

Prints next_after calls per second for typical calendar, cron and interval
specs, and the time ``upcoming`` takes for 50 schedules over 30 days.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from borgd.core.schedule import parse_spec, upcoming

SPECS = (
    ("daily", "Europe/Berlin"),
    ("Mon..Fri *-*-* 09:00", "Europe/Berlin"),
    ("*:0/15", "America/New_York"),
    ("*-*-01 03:00:00", "UTC"),
    ("Sat *-*~07/1 04:30 Australia/Sydney", "UTC"),
    ("0 2 * * 1-5", "Europe/Berlin"),
    ("30 */6 1,15 * *", "UTC"),
    ("every 6h", "UTC"),
)
START = datetime(2024, 1, 1, tzinfo=UTC)


def rate(text: str, zone: str, seconds: float = 0.5) -> float:
    spec = parse_spec(text, zone)
    step = timedelta(minutes=37)  # fresh 'after' values, not just the chain of results
    calls = 0
    t = START
    begin = time.perf_counter()
    deadline = begin + seconds
    while time.perf_counter() < deadline:
        for _ in range(500):
            spec.next_after(t, START)
            t += step
        calls += 500
    return calls / (time.perf_counter() - begin)


def bench_upcoming() -> tuple[float, int, bool]:
    templates = [
        "*-*-* {h:02d}:{m:02d}",
        "Mon..Fri *-*-* {h:02d}:{m:02d}",
        "{m} {h} * * *",
        "every {e}h",
        "*:{q:02d}/30",
    ]
    entries = []
    for i in range(50):
        text = templates[i % len(templates)].format(
            h=i % 24, m=(i * 7) % 60, q=(i * 7) % 30, e=1 + i % 12
        )
        entries.append((i, parse_spec(text, "Europe/Berlin"), START if "every" in text else None))
    begin = time.perf_counter()
    items, truncated = upcoming(entries, START, START + timedelta(days=30), limit=100_000)
    return time.perf_counter() - begin, len(items), truncated


def main() -> None:
    print(f"{'spec':40} {'zone':18} {'next_after/s':>14}")
    for text, zone in SPECS:
        print(f"{text:40} {zone:18} {rate(text, zone):>14,.0f}")
    elapsed, count, truncated = bench_upcoming()
    print(
        f"\nupcoming: 50 schedules x 30 days -> {count} instants"
        f"{' (truncated)' if truncated else ''} in {elapsed * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
