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
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.path = path
        self._file: IO[str] = os.fdopen(fd, "w", encoding="utf-8", errors="replace")
        self._pending = 0
        self.failed: str | None = None

    def write(self, line: str, prefix: str = "") -> None:
        if self.failed is not None:
            return
        try:
            self._file.write(prefix + line + "\n")
            self._pending += 1
            if self._pending >= self.FLUSH_EVERY:
                self._file.flush()
                self._pending = 0
        except OSError as exc:  # disk full, unwritable: the job goes on, the loss is said
            self.failed = str(exc)

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as exc:
            self.failed = self.failed or str(exc)


def log_path(logs_dir: Path, job_id: int) -> Path:
    return logs_dir / f"{job_id}.log"


def tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines (all when 0), read from the end so huge logs stay cheap."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return []
    with open(path, "rb") as f:
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
