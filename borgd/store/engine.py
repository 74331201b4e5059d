"""Open the SQLite store: file mode 0600, WAL, foreign keys, busy timeout, migrations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

from borgd.store.migrations import migrate

BUSY_TIMEOUT_MS = 5000


class StoreUnavailable(RuntimeError):
    """The store cannot be opened (corrupt, locked, unwritable)."""


def _create_private_file(path: Path) -> None:
    """Create the database file 0600 before SQLite does, so it is never world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
    else:
        os.close(fd)


def _on_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.close()


def open_engine(path: Path | str) -> Engine:
    """An engine on `path` (or ':memory:') with the schema migrated to the latest version."""
    if str(path) != ":memory:":
        _create_private_file(Path(path))
    engine = create_engine(f"sqlite:///{path}", future=True)
    event.listen(engine, "connect", _on_connect)
    try:
        with engine.begin() as conn:
            verdict = conn.exec_driver_sql("PRAGMA quick_check").scalar_one()
            if verdict != "ok":
                raise StoreUnavailable(f"integrity check failed: {verdict}")
            migrate(conn)
    except Exception as exc:
        engine.dispose()
        cause = " ".join(str(getattr(exc, "orig", None) or exc).split())  # one line, no URL
        raise StoreUnavailable(f"cannot open the store {path}: {cause}") from exc
    return engine
