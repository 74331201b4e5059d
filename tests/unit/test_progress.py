"""Progress model: fractions, phases, rates and ETAs from events with a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from borgd.core.borg_output import (
    ArchiveProgress,
    ArchiveResult,
    LogMessage,
    ProgressMessage,
    ProgressPercent,
    parse_line,
)
from borgd.core.jobs import JobType
from borgd.core.progress import (
    UNKNOWN,
    Progress,
    ProgressTracker,
    Throttle,
    check_phases,
)

DATA = Path(__file__).parent.parent / "data" / "borg-1.4"
MB = 1_000_000


def ap(size: int, nfiles: int = 1, path: str = "f", finished: bool = False) -> ArchiveProgress:
    return ArchiveProgress(size, size // 2, size // 4, nfiles, path, 0.0, finished)


def pp(
    current: int,
    total: int,
    msgid: str,
    message: str = "",
    info: tuple[str, ...] = (),
    finished: bool = False,
) -> ProgressPercent:
    return ProgressPercent(current, total, info, message, msgid, 1, finished)


def test_initial_snapshot_is_unknown() -> None:
    for job_type in JobType:
        assert ProgressTracker(job_type).snapshot() == UNKNOWN


def test_backup_with_expectation() -> None:
    t = ProgressTracker(JobType.BACKUP, expected_size=100 * MB)
    assert t.feed(ProgressMessage("Initializing cache transaction", "cache", 1, False), 0.0)
    assert t.snapshot().message == "Initializing cache transaction"
    assert t.feed(ap(0, 0, "src"), 0.1)
    for i in range(1, 11):  # 5 MB/s for 10 s
        assert t.feed(ap(i * 5 * MB, i, f"f{i}"), 0.1 + i)
    s = t.snapshot()
    assert s.fraction == pytest.approx(0.5)
    assert (s.original_size, s.compressed_size, s.deduplicated_size) == (
        50 * MB,
        25 * MB,
        12.5 * MB,
    )
    assert s.nfiles == 10 and s.current_file == "f10"
    assert s.message == "Backing up files"
    assert s.rate == pytest.approx(5 * MB, rel=0.01)
    assert s.eta == pytest.approx(10_000_000, rel=0.01)  # 50 MB left at 5 MB/s, in µs


def test_percent_lines_during_a_backup_do_not_move_its_fraction() -> None:
    t = ProgressTracker(JobType.BACKUP, expected_size=100 * MB)
    t.feed(ap(10 * MB), 0.0)
    assert t.feed(pp(9, 10, "cache.sync", "Syncing chunks cache"), 1.0)
    t.feed(pp(0, 0, "cache.sync", finished=True), 1.5)
    s = t.snapshot()
    assert s.fraction == pytest.approx(0.1)
    assert s.original_size == 10 * MB
    t.feed(ap(20 * MB), 2.0)
    assert t.snapshot().rate == pytest.approx(5 * MB)


def test_backup_fraction_caps_until_finished() -> None:
    t = ProgressTracker(JobType.BACKUP, expected_size=10 * MB)
    t.feed(ap(0), 0.0)
    t.feed(ap(30 * MB, 7), 3.0)
    s = t.snapshot()
    assert s.fraction == 0.99
    assert s.eta == 0  # beyond the expectation: unknown
    # the finished archive_progress has no figures: keep ours
    assert t.feed(ap(0, 0, "", finished=True), 3.1)
    assert t.snapshot().original_size == 30 * MB
    assert t.snapshot().message == "Finishing the archive"
    done = t.finish(ArchiveResult("a", 31 * MB, 20 * MB, 1 * MB, 8, 3.2))
    assert done.fraction == 1.0
    assert (done.original_size, done.compressed_size, done.deduplicated_size, done.nfiles) == (
        31 * MB,
        20 * MB,
        1 * MB,
        8,
    )
    assert done.eta == 0 and done.message == ""


def test_backup_without_expectation_is_unknown_but_has_a_rate() -> None:
    t = ProgressTracker(JobType.BACKUP)
    for i in range(6):
        t.feed(ap(i * MB), float(i))
    s = t.snapshot()
    assert s.fraction == -1
    assert s.eta == 0
    assert s.rate == pytest.approx(MB)
    assert t.finish().fraction == 1.0


def test_rate_is_a_sliding_window() -> None:
    t = ProgressTracker(JobType.BACKUP)
    # 10 s at 1 MB/s, then 10 s at 10 MB/s: the window only sees the fast part
    size = 0
    for i in range(100):
        t.feed(ap(size), i * 0.1)
        size += MB // 10
    for i in range(100):
        t.feed(ap(size), 10 + i * 0.1)
        size += MB
    assert t.snapshot().rate == pytest.approx(10 * MB, rel=0.1)


def test_rate_needs_some_time() -> None:
    t = ProgressTracker(JobType.BACKUP)
    t.feed(ap(0), 0.0)
    t.feed(ap(MB), 0.1)
    assert t.snapshot().rate == 0.0


def test_compact_fraction_from_segments() -> None:
    t = ProgressTracker(JobType.COMPACT)
    msgid = "repository.compact_segments"
    assert t.feed(pp(1, 4, msgid, "Compacting segments   0%"), 0.0)
    assert t.snapshot().fraction == 0.25
    assert t.feed(pp(2, 4, msgid, "Compacting segments  25%"), 1.0)
    t.feed(pp(3, 4, msgid, "Compacting segments  50%"), 2.0)
    s = t.snapshot()
    assert s.fraction == 0.75
    assert s.rate == 0.0  # segments are not bytes
    assert s.eta == pytest.approx(1_000_000, rel=0.01)  # 0.25 per second, 0.25 left
    assert t.feed(pp(0, 0, msgid, finished=True), 2.1)
    assert t.snapshot().fraction == 1.0
    assert t.snapshot().message == ""


def test_extract_bytes_rate_and_current_file() -> None:
    t = ProgressTracker(JobType.RESTORE)
    t.feed(pp(0, 0, "extract", "Calculating total archive size"), 0.0)
    assert t.snapshot().fraction == -1
    assert t.snapshot().message == "Calculating total archive size"
    t.feed(pp(10 * MB, 100 * MB, "extract", " 10.0% Extracting: a", ("a",)), 1.0)
    t.feed(pp(30 * MB, 100 * MB, "extract", " 30.0% Extracting: b", ("b",)), 3.0)
    s = t.snapshot()
    assert s.fraction == pytest.approx(0.3)
    assert s.current_file == "b"
    assert s.rate == pytest.approx(10 * MB)
    assert s.eta == pytest.approx(7_000_000, rel=0.01)


def test_check_phases_are_laid_end_to_end() -> None:
    phases = check_phases(verify_data=True)
    assert phases == ("repository.check", "check.verify_data", "check.rebuild_refcounts")
    t = ProgressTracker(JobType.CHECK, phases=phases)
    t.feed(pp(5, 10, "repository.check"), 0.0)
    assert t.snapshot().fraction == pytest.approx(0.5 / 3)
    t.feed(pp(0, 0, "repository.check", finished=True), 1.0)
    assert t.snapshot().fraction == pytest.approx(1 / 3)
    t.feed(pp(1, 2, "check.verify_data"), 2.0)
    assert t.snapshot().fraction == pytest.approx(1.5 / 3)
    t.feed(pp(1, 2, "check.rebuild_refcounts"), 3.0)
    assert t.snapshot().fraction == pytest.approx(2.5 / 3)
    # an unknown phase changes the message but not the fraction
    assert t.feed(pp(1, 100, "check.something_new", "Something new"), 4.0)
    assert t.snapshot().fraction == pytest.approx(2.5 / 3)
    assert t.snapshot().message == "Something new"


@pytest.mark.parametrize(
    ("kwargs", "phases"),
    [
        ({}, ("repository.check", "check.rebuild_refcounts")),
        ({"repository_only": True}, ("repository.check",)),
        ({"archives_only": True}, ("check.rebuild_refcounts",)),
        ({"archives_only": True, "verify_data": True}, ("check.verify_data",
                                                         "check.rebuild_refcounts")),
    ],
)  # fmt: skip
def test_check_phases(kwargs: dict[str, bool], phases: tuple[str, ...]) -> None:
    assert check_phases(**kwargs) == phases


def test_fraction_never_goes_backwards() -> None:
    t = ProgressTracker(JobType.PRUNE)
    t.feed(pp(3, 4, "prune"), 0.0)
    assert not t.feed(pp(1, 4, "prune"), 0.1)
    assert t.snapshot().fraction == 0.75


def test_feed_reports_only_meaningful_changes() -> None:
    t = ProgressTracker(JobType.COMPACT)
    msgid = "repository.compact_segments"
    assert t.feed(pp(1, 100_000, msgid, "m"), 0.0)
    assert not t.feed(pp(2, 100_000, msgid, "m"), 0.0)  # 0.001 % more: not meaningful
    assert t.feed(pp(200, 100_000, msgid, "m"), 0.0)
    assert not t.feed(LogMessage("INFO", "borg", "x", "", 0.0), 0.0)
    b = ProgressTracker(JobType.BACKUP)
    assert b.feed(ap(5, 1, "a"), 0.0)
    assert not b.feed(ap(5, 1, "a"), 0.1)
    assert b.feed(ap(5, 1, "b"), 0.2)


def test_remote_prefix_is_not_shown() -> None:
    t = ProgressTracker(JobType.COMPACT)
    for line in (DATA / "remote.jsonl").read_text().splitlines()[:2]:
        t.feed(parse_line(line), 0.0)
    assert t.snapshot().message == "Compacting segments   4%"


@pytest.mark.parametrize(
    ("fixture", "job_type", "fraction"),
    [
        ("compact.jsonl", JobType.COMPACT, 1.0),
        ("extract.jsonl", JobType.RESTORE, 1.0),
        ("prune.jsonl", JobType.PRUNE, 1.0),
        ("check.jsonl", JobType.CHECK, 1.0),
        ("create.jsonl", JobType.BACKUP, -1.0),
    ],
)
def test_real_output(fixture: str, job_type: JobType, fraction: float) -> None:
    t = ProgressTracker(job_type)
    previous = -1.0
    for i, line in enumerate((DATA / fixture).read_text().splitlines()):
        t.feed(parse_line(line), i * 0.01)
        snap = t.snapshot()
        assert isinstance(snap, Progress)
        assert snap.fraction >= previous
        assert snap.fraction == -1 or 0 <= snap.fraction <= 1
        previous = snap.fraction
    assert t.snapshot().fraction == fraction


def test_throttle() -> None:
    th = Throttle(1.0)
    assert th.due(10.0)
    assert not th.due(10.5)
    assert not th.due(10.99)
    assert th.due(11.0)
    assert not th.due(11.5)
    assert th.due(13.0)
    th.reset()
    assert th.due(13.1)
    assert th.due(5.0)  # a clock that went backwards does not block forever
    assert Throttle(0).due(1.0) and Throttle(0).due(1.0)
    with pytest.raises(ValueError):
        Throttle(-1)
