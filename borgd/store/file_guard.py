"""The store file deleted or replaced under a running borgd: put ours back, lose nothing.

SQLite refuses to go on with a database whose name was unlinked or now
names another file (a "disk I/O error"), and a new connection would open
whatever the name points at now: at the next start everything borgd knew
would be gone.  So borgd keeps a second name for its store, a hard link
``.NAME.keep`` beside it, and one connection open for its lifetime (the
anchor); before every transaction it checks that the path still names that
file, and when it does not:

* a file that replaced ours is moved aside as ``NAME.replaced-YYYYmmddTHHMMSS``
  (never overwritten, never deleted) and the path is linked to our file
  again, at once: the transaction goes on;
* if the ``-wal`` file went too, the store is unavailable until the health
  probe closes every connection and opens anew (the last one to close
  checkpoints the old log into our file, so nothing in it is lost).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path

import structlog
from sqlalchemy import Engine

from borgd.store.health import StoreUnavailable

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
        self.wal = Path(f"{path}-wal")
        self._relinking = threading.Lock()  # the loop and a retention thread may both see it
        self._identity = _identity(path)
        if _identity(self.keep) != self._identity:
            with contextlib.suppress(FileNotFoundError):
                self.keep.unlink()  # left by another store file (a restore by hand)
            try:
                os.link(path, self.keep)
            except OSError as exc:  # a file system without hard links: only detect, then
                log.warning("store.no_second_name", path=str(self.keep), error=str(exc))
        self._open_anchor()

    def _open_anchor(self) -> None:
        self._anchor = sqlite3.connect(self.path, check_same_thread=False)
        self._anchor.execute("SELECT count(*) FROM sqlite_master").fetchall()  # opens the WAL
        self._wal_identity = _identity(self.wal)

    def check(self) -> str | None:
        """None while the path names the file borgd opened; else what happened."""
        now = _identity(self.path)
        if now == self._identity:
            return None
        if now is None:
            return f"the store file {self.path} was deleted"
        return f"the store file {self.path} was replaced by another file"

    def relink(self) -> str | None:
        """Before every transaction (two stats): give the path back to our file at once if
        it lost it; returns what happened, or None.  The open connections go on.  Raises
        StoreUnavailable when it cannot (the store stays unavailable, borgd serves on)."""
        if self.check() is None:
            return None
        with self._relinking:
            return self._relink()

    def _relink(self) -> str | None:
        what = self.check()
        if what is None:
            return None  # the other thread did it
        moved = None
        try:
            if os.path.lexists(self.path):
                stamp = time.strftime("%Y%m%dT%H%M%S")
                moved = self.path.with_name(f"{self.path.name}.replaced-{stamp}")
                os.rename(self.path, moved)
            os.link(self.keep, self.path)
        except OSError as exc:  # the whole folder gone, no second name, no hard links
            raise StoreUnavailable(f"{what} and cannot be put back ({exc})") from exc
        log.error(
            "store.file_restored",
            what=what,
            path=str(self.path),
            moved_aside=str(moved) if moved else None,
        )
        return what

    def wal_lost(self) -> str | None:
        """The -wal file's name no longer names the one the connections write to: new
        connections would not see what it holds until everything is reopened."""
        if _identity(self.wal) == self._wal_identity:
            return None
        return f"the store's write-ahead log {self.wal} was deleted or replaced"

    def reopen(self, engine: Engine) -> None:
        """Close every connection and open anew: the last one to close checkpoints the
        old write-ahead log into our file through the descriptors it holds."""
        if self.wal_lost() is None or self.check() is not None:
            return  # nothing lost; or our file has no name again yet: keep it open
        engine.dispose()
        self._anchor.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.wal)  # somebody else's, if anything: ours is checkpointed
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{self.path}-shm")
        self._open_anchor()
        log.error("store.reopened", why="write-ahead log lost", path=str(self.path))

    def close(self) -> None:
        self._anchor.close()
