"""Per-job log files under $XDG_STATE_HOME/borgd/logs: every line borg and the hooks print."""

from __future__ import annotations

import contextlib
import os
from collections import deque
from pathlib import Path
from typing import IO


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


def tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines (all when 0), read from the end so huge logs stay cheap."""
    try:
        size = path.stat().st_size
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError:  # never written (the log directory was unusable), or removed
        return []
    with f:
        if lines <= 0:
            return f.read().decode("utf-8", "replace").splitlines()
        block = 65536
        data = b""
        pos = size
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    text = data.decode("utf-8", "replace").splitlines()
    return list(deque(text, maxlen=lines))


def remove(path: str) -> None:
    if path:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
