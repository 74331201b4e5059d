"""The store file deleted or replaced under a running borgd: put ours back, lose nothing.

SQLite refuses to go on with a database whose name was unlinked or now
names another file (a "disk I/O error"), and a new connection would open
whatever the name points at now: at the next start everything borgd knew
would be gone.  So borgd keeps a second name for its store, a hard link
``.NAME.keep`` beside it, and one connection open for its lifetime (the
anchor); before every transaction it checks that the path still names that
file, and when it does not:

* the store is unavailable ("the store file … was deleted/replaced") until
* the repair, run by the store's health probe: a file that replaced ours is
  moved aside as ``NAME.replaced-YYYYmmddTHHMMSS`` (never overwritten, never
  deleted), the path is linked to our file again, and every connection is
  closed and opened anew (so a deleted ``-wal`` file is checkpointed, not
  lost).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

import structlog
from sqlalchemy import Engine

log = structlog.get_logger(__name__)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class StoreFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.keep = path.with_name(f".{path.name}.keep")
        self.repairs = 0
        self._identity = _identity(path)
        if _identity(self.keep) != self._identity:
            with contextlib.suppress(FileNotFoundError):
                self.keep.unlink()  # left by another store file (a restore by hand)
            os.link(path, self.keep)
        self._anchor = sqlite3.connect(path, check_same_thread=False)

    def check(self) -> str | None:
        """None while the path names the file borgd opened; else what happened."""
        now = _identity(self.path)
        if now == self._identity:
            return None
        if now is None:
            return f"the store file {self.path} was deleted"
        return f"the store file {self.path} was replaced by another file"

    def restore(self, engine: Engine) -> None:
        """Give the path back to our file (see the module docstring)."""
        what = self.check()
        if what is None:
            return
        moved = None
        if self.path.exists():
            stamp = time.strftime("%Y%m%dT%H%M%S")
            moved = self.path.with_name(f"{self.path.name}.replaced-{stamp}")
            os.rename(self.path, moved)
        os.link(self.keep, self.path)
        # Close every connection: the last one checkpoints the WAL into our file through
        # the descriptors it holds, even if the -wal file's name is gone too.
        engine.dispose()
        self._anchor.close()
        self._anchor = sqlite3.connect(self.path, check_same_thread=False)
        self.repairs += 1
        log.error(
            "store.file_restored",
            what=what,
            path=str(self.path),
            moved_aside=str(moved) if moved else None,
        )

    def close(self) -> None:
        self._anchor.close()
