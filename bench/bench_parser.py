"""Throughput of borg's stderr parser and of the progress tracker.

    .venv/bin/python bench/bench_parser.py [LINES]

Lines are real borg 1.4 lines (tests/data/borg-1.4) in the mix a busy job
produces: mostly per-segment ``progress_percent`` (compact, check, extract) and
``archive_progress``, some ``progress_message``/``log_message``/``file_status``,
and a little plain text.  Target: >= 200,000 lines/s for ``parse_line``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from borgd.core.borg_output import Event, parse_line
from borgd.core.jobs import JobType
from borgd.core.progress import ProgressTracker

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "borg-1.4"


def _lines(name: str) -> list[str]:
    return (DATA / name).read_text(encoding="utf-8").splitlines(keepends=True)


def mixed_lines() -> list[str]:
    percent = _lines("compact.jsonl") + _lines("check.jsonl") + _lines("extract.jsonl")
    percent = [line for line in percent if '"progress_percent"' in line]
    archive = [line for line in _lines("create.jsonl") if '"archive_progress"' in line]
    other = [line for line in _lines("create.jsonl") if '"archive_progress"' not in line]
    other += _lines("prune.jsonl")[:3] + _lines("errors.jsonl")[:2]
    plain = ["Warning: Password input may be echoed.\n", "Remote: old server text\n"]
    # ~60 % percent, ~30 % archive progress, ~9 % other JSON, ~1 % plain text
    return percent * 6 + archive * 10 + other * 1 + plain[:1]


def bench_parse(lines: list[str]) -> float:
    start = time.perf_counter()
    for line in lines:
        parse_line(line)
    return len(lines) / (time.perf_counter() - start)


def bench_feed(events: list[Event], job_type: JobType) -> float:
    tracker = ProgressTracker(job_type, expected_size=10**12)
    now = 0.0
    start = time.perf_counter()
    for event in events:
        now += 0.0001
        tracker.feed(event, now)
    return len(events) / (time.perf_counter() - start)


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    mix = mixed_lines()
    lines = (mix * (total // len(mix) + 1))[:total]
    print(f"parse_line: {total} mixed lines ({len(mix)} distinct)")
    best = max(bench_parse(lines) for _ in range(3))
    print(f"  {best:,.0f} lines/s (best of 3)")

    events = [parse_line(line) for line in lines]
    for job_type in (JobType.BACKUP, JobType.CHECK):
        rate = max(bench_feed(events, job_type) for _ in range(3))
        print(f"ProgressTracker.feed ({job_type}): {rate:,.0f} events/s (best of 3)")
    tracker = ProgressTracker(JobType.COMPACT)
    for i, event in enumerate(events[:1000]):
        tracker.feed(event, i * 0.01)
    start = time.perf_counter()
    for _ in range(100_000):
        tracker.snapshot()
    print(f"ProgressTracker.snapshot: {100_000 / (time.perf_counter() - start):,.0f} /s")


if __name__ == "__main__":
    main()
