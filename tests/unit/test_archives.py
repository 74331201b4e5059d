"""Reading borg's archive output: real borg 1.4 output (tests/data/borg-1.4/archives),
borg 1.2's documented diff lines, and broken input."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from borgd.core.archives import (
    BadOutput,
    HostValues,
    made_archive,
    mode_from_text,
    parse_archive_info,
    parse_contents_line,
    parse_diff_line,
    profile_globs,
    profile_of,
)

DATA = Path(__file__).parent.parent / "data" / "borg-1.4" / "archives"
CREATE_STDOUT = DATA.parent / "create-stdout.json"
HOST = HostValues(hostname="vm", fqdn="vm.example.org", user="alice")


def micros(text: str, zone=UTC) -> int:
    return round(datetime.fromisoformat(text).replace(tzinfo=zone).timestamp() * 1_000_000)


def test_archive_info_has_every_archive_with_its_figures_oldest_first() -> None:
    archives = parse_archive_info((DATA / "info.json").read_text(), UTC)
    assert [a.name for a in archives] == [
        "web-2026-12-01T10:00:00",
        "web-2026-12-02T10:00:00",
        "other-2026-12-02T11:00:00",
    ]
    first = archives[0]
    assert (first.nfiles, first.original_size, first.compressed_size) == (5, 19, 34)
    assert first.deduplicated_size == 17
    assert len(first.id) == 64 and not first.checkpoint
    assert first.start == micros("2026-12-03T05:49:21") and first.end >= first.start


def test_the_fast_archive_list_has_the_same_archives_without_figures() -> None:
    info = parse_archive_info((DATA / "info.json").read_text(), UTC)
    listed = parse_archive_info((DATA / "list-archives.json").read_text(), UTC)
    assert [(a.name, a.id, a.start, a.end) for a in listed] == [
        (a.name, a.id, a.start, a.end) for a in info
    ]
    assert {(a.nfiles, a.original_size, a.deduplicated_size) for a in listed} == {(0, 0, 0)}


def test_archive_times_are_borgs_local_time_in_the_zone_given() -> None:
    text = (DATA / "info.json").read_text()
    utc = parse_archive_info(text, UTC)[0].start
    berlin = parse_archive_info(text, timezone(timedelta(hours=1)))[0].start
    assert utc - berlin == 3600 * 1_000_000


@pytest.mark.parametrize(
    "text", ["", "not json", "[]", '{"archives": 3}', '{"archives": [{"id": "x"}]}']
)
def test_broken_info_output_is_an_error_that_says_so(text: str) -> None:
    with pytest.raises(BadOutput, match=r"borg.* archive list"):
        parse_archive_info(text, UTC)


def test_checkpoints_are_marked() -> None:
    names = ["web-1.checkpoint", "web-2.checkpoint.3", "web-3"]
    text = json.dumps({"archives": [{"name": n} for n in names]})
    assert [a.checkpoint for a in parse_archive_info(text, UTC)] == [True, True, False]


def test_an_archive_belongs_to_the_profile_whose_template_it_matches() -> None:
    globs = profile_globs(
        {
            "web": "{profile}-{now}",
            "web-vm": "{profile}-{now}",
            "home": "{hostname}-{profile}-{now:%Y%m%d}",
            "unscoped": "{now}",  # no stable prefix: no glob, never guessed
        },
        HOST,
    )
    assert "unscoped" not in globs
    assert profile_of("web-2026-12-01T10:00:00", globs) == "web"
    assert profile_of("web-2026-12-01T10:00:00.2", globs) == "web"
    assert profile_of("web-2026-12-01T10:00:00.checkpoint", globs) == "web"
    assert profile_of("web-vm-2026-12-01T10:00:00", globs) == "web-vm"
    assert profile_of("vm-home-20261201", globs) == "home"
    assert profile_of("otherhost-home-20261201", globs) == ""
    assert profile_of("manual-archive", globs) == ""


@pytest.mark.parametrize(
    "text",
    [
        "-rw-r--r--",
        "drwxr-xr-x",
        "lrwxrwxrwx",
        "-rwsr-xr-x",
        "drwxrwxrwt",
        "-rw-r-S--T",
        "prw-------",
    ],
)
def test_mode_text_is_read_back_to_the_mode_it_shows(text: str) -> None:
    mode = mode_from_text(text)
    assert stat.filemode(mode) == text


@pytest.mark.parametrize("text", ["", "rw-r--r--", "?rw-r--r--", "-rw-r--r--x"])
def test_malformed_mode_text_is_zero(text: str) -> None:
    assert mode_from_text(text) == 0


def test_contents_lines_become_entries() -> None:
    entries = [
        parse_contents_line(line, UTC) for line in (DATA / "list.jsonl").read_text().splitlines()
    ]
    assert all(e is not None for e in entries)
    by_path = {e.path: e for e in entries if e is not None}
    a = by_path["docs/a.txt"]
    assert (a.type, a.size, a.user, a.group) == ("-", 6, "root", "root")
    assert a.mode == stat.S_IFREG | 0o640
    assert a.mtime == micros("2026-01-02T03:04:05")
    assert by_path["link"].type == "l" and by_path["link"].target == "docs/a.txt"
    assert by_path["docs"].type == "d" and by_path["docs"].mode == stat.S_IFDIR | 0o755
    assert "with space/f 1.txt" in by_path
    # borg prints an undecodable byte as '?': the entry is still listed
    assert "?raw" in by_path


@pytest.mark.parametrize("line", ["", "garbage", "[1, 2]", '{"type": "-"}', '{"path": 3}'])
def test_lines_that_are_not_items_are_none(line: str) -> None:
    assert parse_contents_line(line, UTC) is None


def test_diff_lines_of_borg_1_4() -> None:
    entries = [parse_diff_line(line) for line in (DATA / "diff.jsonl").read_text().splitlines()]
    by_path = {e.path: e for e in entries if e is not None}
    assert by_path["new.txt"].changes == ("added",) and by_path["new.txt"].size_delta == 4
    assert by_path["old.txt"].changes == ("removed",) and by_path["old.txt"].size_delta == -5
    grown = by_path["docs/a.txt"]
    assert grown.changes == ("modified", "ctime", "mtime") and grown.size_delta == 17 - 6
    assert by_path["docs/sub/b.txt"].changes == ("mode", "ctime")


def test_diff_lines_of_borg_1_2() -> None:
    """The lines borg 1.2's documentation shows for `diff --json-lines`."""
    lines = [
        '{"path": "file1", "changes": [{"type": "modified", "added": 17, "removed": 5}, '
        '{"type": "mode", "old_mode": "-rw-r--r--", "new_mode": "-rwxr-xr-x"}]}',
        '{"path": "dir", "changes": [{"type": "added directory"}]}',
        '{"path": "lnk", "changes": [{"type": "changed link"}]}',
        '{"path": "file3", "changes": [{"type": "removed", "size": 9}]}',
    ]
    entries = [parse_diff_line(line) for line in lines]
    assert [(e.path, e.changes, e.size_delta) for e in entries if e] == [
        ("file1", ("modified", "mode"), 12),
        ("dir", ("added",), 0),
        ("lnk", ("link",), 0),
        ("file3", ("removed",), -9),
    ]


@pytest.mark.parametrize("line", ["", "nope", '{"changes": []}', '{"path": 1}'])
def test_lines_that_are_not_differences_are_none(line: str) -> None:
    assert parse_diff_line(line) is None


def test_the_archive_a_create_reported_keeps_its_id_times_and_figures() -> None:
    from borgd.core.borg_output import parse_create_stdout

    result = parse_create_stdout(CREATE_STDOUT.read_text())
    assert result is not None
    made = made_archive(result, UTC)
    assert made.name == "web-1" and made.id.startswith("d51be34f")
    assert made.start == micros("2026-11-22T11:19:10") and made.end == made.start
    assert (made.nfiles, made.original_size, made.deduplicated_size) == (301, 13734816, 13735716)
