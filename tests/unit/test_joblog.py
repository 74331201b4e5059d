"""Reading job logs in bounded pieces: ReadJobLog's pages and GetJobLog's tail."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from borgd.execution.joblog import MAX_BYTES, MAX_LINES, Page, read_page, tail


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def read_all(path: Path, max_lines: int = 0, max_bytes: int = MAX_BYTES) -> tuple[list[str], int]:
    """Page from 0 until a page is empty, as `borgctl logs` does; checks offsets move on."""
    lines: list[str] = []
    offset = 0
    while True:
        page = read_page(path, offset, max_lines, finished=True, max_bytes=max_bytes)
        if not page.lines:
            assert page.next_offset == offset
            return lines, offset
        assert page.next_offset > offset
        lines += page.lines
        offset = page.next_offset


def file_lines(path: Path) -> list[str]:
    text = path.read_bytes().decode("utf-8", "replace")
    return text.removesuffix("\n").split("\n") if text else []


def test_pages_from_zero_give_back_the_file_line_for_line(tmp_path):
    log = write(tmp_path / "1.log", b"".join(b"line %d\n" % i for i in range(1, 101)) + b"\n")
    lines, end = read_all(log, max_lines=7)
    assert lines == [f"line {i}" for i in range(1, 101)] + [""]  # an empty line is a line
    assert end == log.stat().st_size


def test_next_offset_is_just_after_the_last_line_returned(tmp_path):
    log = write(tmp_path / "1.log", b"one\ntwo\nthree\n")
    assert read_page(log, 0, 2, finished=False) == Page(["one", "two"], 8)
    assert read_page(log, 8, 2, finished=False) == Page(["three"], 14)
    assert read_page(log, 14, 2, finished=False) == Page([], 14)


def test_a_line_being_written_comes_once_it_is_complete(tmp_path):
    log = write(tmp_path / "1.log", b"a\nb\npar")
    page = read_page(log, 0, finished=False)
    assert page == Page(["a", "b"], 4)
    assert read_page(log, page.next_offset, finished=False) == Page([], 4)
    with open(log, "ab") as f:
        f.write(b"tial\nnext")
    assert read_page(log, 4, finished=False) == Page(["partial"], 12)


def test_a_finished_job_gives_its_last_line_even_without_a_newline(tmp_path):
    log = write(tmp_path / "1.log", b"a\nlast words")
    assert read_page(log, 0, finished=True) == Page(["a", "last words"], 12)
    assert read_page(log, 12, finished=True) == Page([], 12)


def test_an_offset_past_the_end_answers_where_the_next_line_starts(tmp_path):
    log = write(tmp_path / "1.log", b"one\ntwo\nhalf")
    # Running: the half line is not complete, so following starts at it.
    assert read_page(log, 2**64 - 1, finished=False) == Page([], 8)
    assert read_page(log, 100, finished=True) == Page([], 12)
    write(log, b"no newline yet")
    assert read_page(log, 2**64 - 1, finished=False) == Page([], 0)


def test_an_offset_inside_a_line_reads_from_there(tmp_path):
    log = write(tmp_path / "1.log", b"hello world\nbye\n")
    assert read_page(log, 6, finished=False) == Page(["world", "bye"], 16)


def test_a_missing_log_is_empty(tmp_path):
    assert read_page(tmp_path / "none.log", 0, finished=False) == Page([], 0)
    assert read_page(tmp_path / "none.log", 50, finished=True) == Page([], 0)
    assert tail(tmp_path / "none.log", 10) == []


@pytest.mark.parametrize("asked", [0, MAX_LINES + 1, 2**32 - 1])
def test_max_lines_zero_or_too_large_means_the_cap(tmp_path, asked):
    log = write(tmp_path / "1.log", b"".join(b"%d\n" % i for i in range(MAX_LINES + 500)))
    page = read_page(log, 0, asked, finished=True)
    assert page.lines == [str(i) for i in range(MAX_LINES)]
    rest = read_page(log, page.next_offset, asked, finished=True)
    assert rest.lines == [str(i) for i in range(MAX_LINES, MAX_LINES + 500)]


def test_a_page_stops_at_the_byte_budget_on_a_line_boundary(tmp_path):
    log = write(tmp_path / "1.log", b"".join(b"%04d-" % i + b"x" * 95 + b"\n" for i in range(50)))
    page = read_page(log, 0, finished=True, max_bytes=1000)
    assert len(page.lines) == 9  # ten lines of 101 bytes do not fit in 1000
    assert page.next_offset == 909
    lines, _ = read_all(log, max_bytes=1000)
    assert lines == file_lines(log)


def test_a_line_longer_than_the_budget_comes_in_pieces_cut_between_characters(tmp_path):
    giant = "é" * 1000 + "€" * 700  # two- and three-byte characters, 4100 bytes
    log = write(tmp_path / "1.log", b"before\n" + giant.encode() + b"\nafter\n")
    lines, _ = read_all(log, max_bytes=999)  # odd: a budget that ends inside a character
    assert lines[0] == "before" and lines[-1] == "after"
    pieces = lines[1:-1]
    assert len(pieces) >= 4 and "".join(pieces) == giant
    assert all("\ufffd" not in p for p in pieces)


def test_bytes_that_are_not_utf8_are_replaced_and_nul_never_reaches_the_bus(tmp_path):
    log = write(tmp_path / "1.log", b"ok \xff\xfe bad\nnul\x00here\ncut \xe2\x82\n")
    expected = ["ok \ufffd\ufffd bad", "nul\ufffdhere", "cut \ufffd"]
    assert read_page(log, 0, finished=True).lines == expected
    assert tail(log, 3) == expected


def test_tail_gives_the_last_lines(tmp_path):
    log = write(tmp_path / "1.log", b"".join(b"line %d\n" % i for i in range(1, 1001)))
    assert tail(log, 3) == ["line 998", "line 999", "line 1000"]
    assert tail(log, 1000) == file_lines(log)
    assert tail(log, 5000) == file_lines(log)
    assert tail(write(tmp_path / "2.log", b""), 5) == []
    assert tail(write(tmp_path / "3.log", b"\n"), 5) == [""]
    assert tail(write(tmp_path / "4.log", b"only"), 5) == ["only"]


def test_tail_leaves_out_the_line_being_written_while_the_job_runs(tmp_path):
    log = write(tmp_path / "1.log", b"a\nb\nhalf")
    assert tail(log, 2, finished=False) == ["a", "b"]
    assert tail(log, 2, finished=True) == ["b", "half"]
    assert tail(write(tmp_path / "2.log", b"half"), 2, finished=False) == []


@pytest.mark.parametrize("asked", [0, MAX_LINES + 1])
def test_tail_zero_or_too_large_gives_the_last_max_lines(tmp_path, asked):
    log = write(tmp_path / "1.log", b"".join(b"%d\n" % i for i in range(MAX_LINES + 500)))
    assert tail(log, asked) == [str(i) for i in range(500, MAX_LINES + 500)]


def test_tail_never_reads_more_than_the_byte_budget(tmp_path):
    log = write(tmp_path / "1.log", b"".join(b"%05d-" % i + b"y" * 94 + b"\n" for i in range(100)))
    # 100 lines of 101 bytes: 2000 bytes hold 19 whole lines (the first one read is cut).
    got = tail(log, 50, max_bytes=2000)
    assert got == file_lines(log)[-19:]
    giant = write(tmp_path / "2.log", b"z" * 5000 + "é".encode() * 3000 + b"\n")
    end = tail(giant, 5, max_bytes=3001)  # starts inside a two-byte character
    assert end == ["é" * 1500]


def big_log(path: Path, size: int) -> list[bytes]:
    """About `size` bytes of 100-byte lines, written in 1 MiB chunks; returns the last 10."""
    n = 0
    chunk_lines = (1 << 20) // 100
    with open(path, "wb") as f:
        while f.tell() < size:
            chunk = [b"%09d " % (n + i) + b"x" * 89 + b"\n" for i in range(chunk_lines)]
            f.write(b"".join(chunk))
            n += chunk_lines
    return [b"%09d " % i + b"x" * 89 for i in range(n - 10, n)]


def test_the_tail_of_a_50_mb_log_is_read_from_its_end_in_bounded_memory(tmp_path):
    log = tmp_path / "big.log"
    last = big_log(log, 50 << 20)
    assert log.stat().st_size >= 50 << 20
    tracemalloc.start()
    try:
        assert tail(log, 10) == [b.decode() for b in last]
        _, peak_small = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        capped = tail(log, 0)
        _, peak_capped = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        page = read_page(log, 20 << 20, 0, finished=False)
        _, peak_page = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(capped) == MAX_LINES and capped[-10:] == [b.decode() for b in last]
    assert len(page.lines) == MAX_LINES
    # Ten lines need one 64 KiB block, not the file.  A capped tail or page holds its
    # 1 MB of lines a few times over (bytes, split bytes, text, split text; 5 and 7 MB
    # measured): bounds with room for that, yet far below the 50 MB of a whole read.
    assert peak_small < 1 << 20, peak_small
    assert peak_capped < 10 << 20, peak_capped
    assert peak_page < 10 << 20, peak_page
