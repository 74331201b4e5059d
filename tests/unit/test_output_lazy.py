"""Per-segment progress lines are folded lazily, without losing what a user sees."""

from __future__ import annotations

import json

from borgd.core.jobs import JobType
from borgd.execution.output import BorgOutput


def percent(
    current: int, total: int, msgid: str = "repository.compact_segments", finished: bool = False
) -> str:
    d = {
        "operation": 1,
        "msgid": msgid,
        "type": "progress_percent",
        "finished": finished,
        "time": 1.0,
    }
    if not finished:
        d.update(
            message=f"Compacting segments {100 * current / total:.1f}%",
            current=current,
            total=total,
            info=None,
        )
    return json.dumps(d)


def test_only_the_newest_segment_line_counts_and_every_line_is_logged():
    logged: list[str] = []

    class Log:
        def write(self, line: str) -> None:
            logged.append(line)

    out = BorgOutput(JobType.COMPACT, Log(), clock=lambda: 0.0)  # type: ignore[arg-type]
    for i in range(20_000):
        out.stderr(percent(i, 20_000))
    assert len(logged) == 20_000
    assert out.snapshot.fraction == 19_999 / 20_000
    assert "99.9" in out.snapshot.message or "100.0" in out.snapshot.message


def test_a_log_line_between_keeps_the_order_and_the_error():
    out = BorgOutput(JobType.COMPACT, None, clock=lambda: 0.0)
    out.stderr(percent(5, 10))
    out.stderr(
        json.dumps(
            {
                "type": "log_message",
                "levelname": "ERROR",
                "name": "borg",
                "message": "disk full",
                "msgid": "Error",
                "time": 1.0,
            }
        )
    )
    assert out.last_error == "disk full" and out.msgids == ["Error"]
    assert out.snapshot.fraction == 0.5
    assert out.due(10.0).publish is not None
