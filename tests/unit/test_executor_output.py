"""One borg run's stderr: every line logged, progress published ≤ 1/s and stored ≤ 1/2 s."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

from borgd.core.exit_codes import interpret_exit
from borgd.core.jobs import JobStatus, JobType
from borgd.execution.joblog import JobLog
from borgd.execution.output import BorgOutput

DATA = Path(__file__).resolve().parent.parent / "data" / "borg-1.4"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def segment_lines(total: int) -> Iterator[str]:
    """compact's per-segment lines, shaped like the real one in compact.jsonl."""
    real = json.loads((DATA / "compact.jsonl").read_text().splitlines()[0])
    for i in range(1, total + 1):
        line = {**real, "current": i, "total": total}
        line["message"] = f"Compacting segments {100 * i // total:3d}%"
        yield json.dumps(line)
    yield json.dumps(
        {
            "operation": real["operation"],
            "msgid": real["msgid"],
            "type": "progress_percent",
            "finished": True,
            "time": real["time"],
        }
    )


def test_unthrottled_segment_lines_are_published_at_most_once_a_second(tmp_path):
    clock = FakeClock()
    jlog = JobLog(tmp_path / "1.log")
    out = BorgOutput(JobType.COMPACT, jlog, clock=clock)
    published: list[tuple[float, float]] = []
    stored: list[tuple[float, float]] = []

    def tick(now: float) -> None:
        due = out.due(now)
        if due.publish is not None:
            published.append((now, due.publish["progress"]))
        if due.store is not None:
            stored.append((now, due.store["progress"]))

    # 20,000 segments in 10 s (borg prints 65 in 7 ms), the executor looks every 0.25 s.
    lines = list(segment_lines(20_000))
    next_tick = 0.25
    for i, line in enumerate(lines):
        clock.now = i * 0.0005
        out.stderr(line)
        if clock.now >= next_tick:
            tick(clock.now)
            next_tick += 0.25
    end = clock.now
    for k in range(1, 13):  # borg exited: the ticker keeps looking until it is stopped
        tick(end + 0.25 * k)
    jlog.close()

    logged = (tmp_path / "1.log").read_text().splitlines()
    assert len(logged) == len(lines)  # every line is in the log
    times = [t for t, _ in published]
    assert all(b - a >= 1.0 for a, b in pairwise(times)), times
    assert 9 <= len(published) <= 12
    assert all(b - a >= 2.0 for a, b in pairwise(t for t, _ in stored))
    fractions = [f for _, f in published]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # Nothing stays unstored: the last state reaches the store too.
    assert stored[-1][1] == 1.0
    assert out.due(end + 100).publish is None  # and nothing is sent twice


def test_backup_progress_is_estimated_from_the_previous_archive(tmp_path):
    clock = FakeClock()
    out = BorgOutput(JobType.BACKUP, None, expected_size=1000, clock=clock)
    for i, size in enumerate((100, 500, 1000, 1500)):
        clock.now = float(i)
        out.stderr(
            json.dumps(
                {
                    "type": "archive_progress",
                    "original_size": size,
                    "compressed_size": size // 2,
                    "deduplicated_size": size // 4,
                    "nfiles": i + 1,
                    "path": f"home/u/f{i}",
                    "time": 1.0,
                    "finished": False,
                }
            )
        )
        due = out.due(clock.now).publish
        assert due is not None
        # The previous size gives the fraction; never 1 before borg is done.
        assert due["progress"] == min(0.99, size / 1000)
        assert (due["nfiles"], due["current_file"]) == (i + 1, f"home/u/f{i}")
    assert due["rate"] > 0


def error_line(msgid: str) -> str:
    lines = (DATA / "errors.jsonl").read_text().splitlines()
    return next(line for line in lines if json.loads(line)["msgid"] == msgid)


def test_what_the_exit_code_table_needs_is_kept():
    out = BorgOutput(JobType.BACKUP, None, clock=FakeClock())
    out.stderr((DATA / "prompt-glued.txt").read_text().splitlines()[0])  # a warning
    out.stderr(error_line("PassphraseWrong"))
    out.stderr("a plain line after the error")
    outcome = interpret_exit(52, msgids=out.msgids, last_error=out.last_error)
    assert outcome.status is JobStatus.FAILED
    assert outcome.message == (
        "wrong passphrase: Passphrase supplied in BORG_PASSPHRASE, by BORG_PASSCOMMAND, "
        "or via BORG_PASSPHRASE_FD is incorrect."
    )

    warned = BorgOutput(JobType.BACKUP, None, clock=FakeClock())
    warned.stderr(error_line("BackupFileNotFoundError"))
    outcome = interpret_exit(107, msgids=warned.msgids, last_error=warned.last_error)
    assert outcome.status is JobStatus.WARNING
    assert outcome.message.startswith("some source paths do not exist")
    assert "/tmp/bx/missing" in outcome.message
