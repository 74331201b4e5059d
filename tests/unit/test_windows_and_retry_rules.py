"""The pure rules: blackout windows, which failures pass, when a retry is due."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from borgd.clock import from_datetime
from borgd.core.blackout import BlackoutError, parse_window, parse_windows, window_end
from borgd.core.exit_codes import passing_cause
from borgd.core.jobs import JobStatus, Trigger
from borgd.core.retries import MAX_DELAY_US, next_retry, retry_delay

MIN = 60 * 1_000_000


def at(day: int, hour: int, minute: int = 0) -> int:
    """December 2026: the 3rd is a Thursday, the 5th a Saturday."""
    return from_datetime(datetime(2026, 12, day, hour, minute, tzinfo=UTC))


@pytest.mark.parametrize(
    ("when", "end"),
    [
        (at(3, 8, 59), None),
        (at(3, 9), at(3, 17)),  # a window includes its start...
        (at(3, 16, 59), at(3, 17)),
        (at(5, 10), None),  # Saturday: no window
    ],
)
def test_a_weekday_window(when: int, end: int | None) -> None:
    assert window_end([parse_window("Mon..Fri 09:00 8h", "UTC")], when) == end


def test_windows_that_touch_or_overlap_are_one_blackout() -> None:
    windows = parse_windows(["Mon..Fri 09:00 8h", "*-*-* 17:00 1h", "*-*-* 17:30 1h"], "UTC")
    assert window_end(windows, at(3, 10)) == at(3, 18, 30)
    assert window_end(windows, at(3, 17)) == at(3, 18, 30)  # ...and ends before its end
    assert window_end(windows, at(3, 18, 30)) is None


def test_a_window_across_midnight_and_in_its_own_zone() -> None:
    night = parse_window("*-*-* 22:00 Europe/Berlin 10h")
    assert window_end([night], at(3, 23)) == at(4, 7)  # 22:00 CET is 21:00 UTC
    assert window_end([night], at(4, 7)) is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("8h", "needs a start and a length"),
        ("daily", "needs a start and a length"),
        ("daily 8x", "not a length"),
        ("daily 8d", "at most 7 days"),
        ("every 2h 1h", "calendar time"),
        ("on-connect 1h", "calendar time"),
        ("Mon 25:00 1h", "out of range"),
    ],
)
def test_bad_windows_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(BlackoutError, match=says):
        parse_window(text, "UTC")


@pytest.mark.parametrize(
    ("rc", "msgids", "last_error", "cause"),
    [
        (73, (), "Failed to create/acquire the lock /r/lock (timeout).", "lock"),
        (2, ("LockTimeout",), None, "lock"),  # borg 1.2, or a remote server
        (81, (), "ssh: connect to host nas port 22: Connection refused", "connection"),
        (2, (), "ssh: Could not resolve hostname nas: Name or service not known", "network"),
        (2, ("Exception",), "OSError: [Errno 5] Input/output error", "io"),
        (2, (), "OSError: [Errno 107] Transport endpoint is not connected", "disk-gone"),
        (52, (), "passphrase supplied in BORG_PASSPHRASE is incorrect", None),
        (2, ("PassphraseWrong",), "Connection refused", None),  # the passphrase decides
        (21, (), "Permission denied", None),
        (13, (), "Repository /x does not exist.", None),
        (2, (), "usage: borg create ... error: unrecognized arguments", None),
        (107, (), "source missing", None),
    ],
)
def test_which_failures_pass_by_themselves(
    rc: int, msgids: tuple[str, ...], last_error: str | None, cause: str | None
) -> None:
    assert passing_cause(rc, msgids=msgids, last_error=last_error) == cause


def test_retry_delays_double_up_to_six_hours() -> None:
    assert [retry_delay(5 * MIN, n) for n in (1, 2, 3)] == [5 * MIN, 10 * MIN, 20 * MIN]
    assert retry_delay(5 * MIN, 10) == MAX_DELAY_US


def test_only_passing_failures_of_scheduled_runs_with_attempts_left_retry() -> None:
    def retry(**over: object) -> object:
        args: dict[str, object] = {
            "status": JobStatus.FAILED,
            "trigger": Trigger.SCHEDULE,
            "options": {"passing": "lock"},
            "finished_at": 1_000,
            "retries": 2,
            "base_delay_us": MIN,
        }
        args.update(over)
        return next_retry(**args)  # type: ignore[arg-type]

    first = retry()
    assert (first.attempt, first.due, first.cause) == (1, 1_000 + MIN, "lock")  # type: ignore[attr-defined]
    assert retry(options={"passing": "lock", "attempt": 1}).due == 1_000 + 2 * MIN  # type: ignore[attr-defined]
    assert retry(options={"passing": "lock", "attempt": 2}) is None
    assert retry(options={}) is None
    assert retry(status=JobStatus.WARNING) is None
    assert retry(trigger=Trigger.MANUAL) is None
    assert retry(trigger=Trigger.CHAIN) is None
    assert retry(retries=0) is None
