"""The `borgd` command: check the store's integrity while the rest of borgd is imported.

`PRAGMA quick_check` reads the whole store (about 0.1 s for 100,000 jobs) and
SQLite releases the GIL while it runs, so a thread started before the imports
(SQLAlchemy, dbus-fast, borgd itself: about 0.3 s) overlaps the two on a
second core.  Only an "ok" from it is trusted; anything else (a lock, an
error) is checked again the usual way when the store is opened, so its
message and the wait for a lock do not change.  Standard library only,
until the daemon is imported.
"""

from __future__ import annotations

import sqlite3
import threading

from borgd.paths import Paths


class EarlyIntegrityCheck:
    def __init__(self, store: str) -> None:
        self.store = store
        self.verdict: str | None = None
        self._thread = threading.Thread(target=self._run, name="borgd-quick-check", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(f"file:{self.store}?mode=ro", uri=True, timeout=0)
            try:
                self.verdict = str(conn.execute("PRAGMA quick_check").fetchone()[0])
            finally:
                conn.close()
        except Exception as exc:  # missing, locked, not a database: the open says why
            self.verdict = f"not checked: {exc}"

    def passed(self) -> bool:
        self._thread.join()
        return self.verdict == "ok"


def main(argv: list[str] | None = None) -> int:
    check = EarlyIntegrityCheck(str(Paths.from_env().store))
    from borgd.daemon import main as daemon_main

    return daemon_main(argv, store_checked=check.passed)
