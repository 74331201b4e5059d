"""Per-job log files under $XDG_STATE_HOME/borgd/logs: every line borg and the hooks print.

Written here line by line; read back for the bus in bounded pieces (pages
from a byte offset, or the tail read backwards), never whole.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO


class JobLog:
    """Append-only, line-buffered by us: flushed on close and every few hundred lines."""

    FLUSH_EVERY = 256

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending = 0
        self.failed: str | None = None  # why the log is incomplete; the job runs on
        self._file: IO[str] | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:  # a file in the way, a read-only or full disk
            self.failed = _describe(exc)
            return
        self._file = os.fdopen(fd, "w", encoding="utf-8", errors="replace")

    def write(self, line: str, prefix: str = "") -> None:
        if self.failed is not None or self._file is None:
            return
        try:
            self._file.write(prefix + line + "\n")
            self._pending += 1
            if self._pending >= self.FLUSH_EVERY:
                self._file.flush()
                self._pending = 0
        except OSError as exc:  # disk full, unwritable: the job goes on, the loss is said
            self.failed = _describe(exc)

    def flush(self) -> None:
        """Make what was written visible to GetJobLog (called with each progress tick)."""
        if self.failed is not None or self._file is None or not self._pending:
            return
        try:
            self._file.flush()
            self._pending = 0
        except OSError as exc:
            self.failed = _describe(exc)

    def close(self) -> None:
        if self._file is None:
            return
        try:
            self._file.close()
        except OSError as exc:
            self.failed = self.failed or _describe(exc)
            with contextlib.suppress(OSError):
                self._file.close()  # the buffer is gone; release the descriptor
        self._file = None


def _describe(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return f"{text}: {exc.filename}" if exc.filename else text


def log_path(logs_dir: Path, job_id: int) -> Path:
    return logs_dir / f"{job_id}.log"


# -- reading: bounded in lines and bytes, so a huge log never reaches the bus whole --

MAX_LINES = 10_000  # per call, for ReadJobLog pages and for GetJobLog's tail
MAX_BYTES = 4 << 20  # of file data per call; the reply stays far below D-Bus's message limit
BLOCK = 64 << 10  # reading backwards, this much at a time


@dataclass(frozen=True)
class Page:
    """Lines of a log and the byte offset where the next read should start."""

    lines: list[str]
    next_offset: int


def line_cap(requested: int) -> int:
    """0 (or anything above the cap) means the cap."""
    return MAX_LINES if requested <= 0 or requested > MAX_LINES else requested


def read_page(
    path: Path,
    offset: int,
    max_lines: int = 0,
    *,
    finished: bool,
    max_bytes: int = MAX_BYTES,
) -> Page:
    """Complete lines from byte `offset` on, and the offset just after the last one.

    A last line without its newline is still being written: it is left for a
    later call, unless the job is `finished` (the log will not grow), when it is
    returned too.  A line longer than `max_bytes` comes in pieces of about
    `max_bytes`, cut between characters, so that every call moves on.  An offset
    past the end returns no lines and, as next_offset, the start of the first line
    not yet complete (the end, for a finished job): a client that wants only new
    lines asks with the largest offset.  An offset inside a line is the caller's
    choice: reading starts there.  A missing file is an empty log; other read
    errors (OSError) are the caller's to report.
    """
    limit = line_cap(max_lines)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except (FileNotFoundError, NotADirectoryError):  # not written yet, or never: empty
        return Page([], 0)
    with f:
        size = os.fstat(f.fileno()).st_size
        if offset > size:
            return Page([], size if finished else _complete_end(f, size, max_bytes))
        data = _read_on(f, offset, min(max_bytes, size - offset), newlines=limit)
    parts = data.split(b"\n", limit)
    rest = parts.pop()  # after the last newline (or after the limit-th line)
    used = len(data) - len(rest)
    if len(parts) < limit and rest:
        at_end = offset + len(data) >= size
        if at_end and finished:
            parts.append(rest)
            used = len(data)
        elif not parts and len(data) >= max_bytes:  # one line longer than the budget
            cut = _char_boundary(data)
            parts.append(data[:cut])
            used = cut
    text = b"\n".join(parts).decode("utf-8", "replace")
    return Page(_bus_safe(text).split("\n") if parts else [], offset + used)


def tail(
    path: Path, lines: int, *, finished: bool = True, max_bytes: int = MAX_BYTES
) -> list[str]:
    """The last `lines` lines (0 or more than MAX_LINES: MAX_LINES), read backwards.

    At most `max_bytes` of the file's end are read, so memory stays bounded
    whatever the file's size; older lines beyond that are left out, and a last
    line longer than that is cut to its end.  While the job runs (`finished`
    false) a last line without its newline is left out: it is still being written.
    """
    limit = line_cap(lines)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except (FileNotFoundError, NotADirectoryError):  # never written (no log folder), or gone
        return []
    with f:
        size = os.fstat(f.fileno()).st_size
        start, data = _read_back(f, size, max_bytes, newlines=limit + 2)
    if not finished:
        data = data[: data.rfind(b"\n") + 1]
    if data.endswith(b"\n"):
        data = data[:-1]
    elif not data:
        return []
    parts = data.split(b"\n")
    if start > 0:  # the first part may begin inside a line
        if len(parts) > 1:
            parts.pop(0)
        else:  # a single line longer than the budget: its end, from a character's start
            parts[0] = parts[0][_lead_continuations(parts[0]) :]
    text = b"\n".join(parts[-limit:]).decode("utf-8", "replace")
    return _bus_safe(text).split("\n")


def _read_on(f: BinaryIO, offset: int, budget: int, *, newlines: int) -> bytes:
    """Up to `budget` bytes from `offset`, block by block, stopping once `newlines` are in."""
    f.seek(offset)
    blocks: list[bytes] = []
    have, seen = 0, 0
    while have < budget and seen < newlines:
        block = f.read(min(BLOCK, budget - have))
        if not block:
            break
        blocks.append(block)
        have += len(block)
        seen += block.count(b"\n")
    return b"".join(blocks)


def _read_back(f: BinaryIO, size: int, max_bytes: int, *, newlines: int) -> tuple[int, bytes]:
    """The file's last bytes, block by block, until `newlines` newlines or `max_bytes`.

    Returns where the data starts and the data.
    """
    blocks: list[bytes] = []
    pos, have, seen = size, 0, 0
    while pos > 0 and have < max_bytes and seen < newlines:
        step = min(BLOCK, pos, max_bytes - have)
        pos -= step
        f.seek(pos)
        block = f.read(step)
        blocks.append(block)
        have += len(block)
        seen += block.count(b"\n")
    return pos, b"".join(reversed(blocks))


def _complete_end(f: BinaryIO, size: int, max_bytes: int) -> int:
    """The offset just after the file's last newline (0 when it has none yet).

    Past `max_bytes` without a newline the last line is one giant piece: its
    end is taken as it is.
    """
    start, data = _read_back(f, size, max_bytes, newlines=1)
    last = data.rfind(b"\n")
    if last >= 0:
        return start + last + 1
    return 0 if start == 0 else size


def _char_boundary(data: bytes) -> int:
    """len(data), or less so that a UTF-8 character is not cut in two."""
    end = len(data)
    for back in range(1, min(4, end) + 1):
        byte = data[end - back]
        if byte & 0xC0 != 0x80:  # not a continuation byte: the last character starts here
            width = 2 if byte >= 0xC0 else 1
            width = 3 if byte >= 0xE0 else width
            width = 4 if byte >= 0xF0 else width
            cut = end - back if width > back else end
            return cut or end  # never an empty piece
    return end


def _lead_continuations(data: bytes) -> int:
    """How many continuation bytes (at most 3) begin `data`: the rest of a cut character."""
    n = 0
    while n < min(3, len(data)) and data[n] & 0xC0 == 0x80:
        n += 1
    return n


def _bus_safe(text: str) -> str:
    """D-Bus strings cannot hold NUL: dbus-fast refuses such a reply, and the page is lost."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def remove(path: str) -> None:
    if path:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
