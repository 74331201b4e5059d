"""Open the SQLite store: file mode 0600, WAL, foreign keys, busy timeout, migrations.

Every store failure at run time (another process holds the write lock, the
disk is full, I/O fails, the file is no database any more) leaves the engine
as one exception, :class:`StoreUnavailable`, and is reported to the store's
:class:`~borgd.store.health.StoreHealth`.  The busy timeout is short because
store calls run on the event loop: a lock held elsewhere must turn into
"unavailable, try again" within the loop's 50 ms budget, never into a stall.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import IntegrityError

from borgd.store.health import StoreHealth, StoreUnavailable, StoreUnusable
from borgd.store.migrations import migrate

# Our own writers are all on the event loop; only another process waits us out.
BUSY_TIMEOUT_MS = 25


def store_cause(exc: BaseException) -> str:
    """SQLite's own words ("database is locked", "database or disk is full"), one line."""
    if isinstance(exc, StoreUnavailable):
        return exc.cause
    return " ".join(str(getattr(exc, "orig", None) or exc).split())


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


__all__ = ["StoreUnavailable", "StoreUnusable", "open_engine", "probe_write", "store_cause"]


def _report_errors(health: StoreHealth) -> Any:
    def on_error(context: ExceptionContext) -> BaseException | None:
        original = context.original_exception
        if isinstance(context.sqlalchemy_exception, IntegrityError):
            return None  # a constraint said no: the caller's business, not an outage
        if not isinstance(original, Exception) or not type(original).__module__.startswith(
            "sqlite3"
        ):
            return None
        cause = store_cause(original)
        health.failed(cause)
        return StoreUnavailable(cause)

    return on_error


def open_engine(
    path: Path | str, health: StoreHealth | None = None, *, checked: bool = False
) -> Engine:
    """An engine on `path` (or ':memory:') with the schema migrated to the latest version;
    its integrity checked first, unless `checked` says that was done."""
    if str(path) != ":memory:":
        _create_private_file(Path(path))
    engine = create_engine(f"sqlite:///{path}", future=True)
    event.listen(engine, "connect", _on_connect)
    try:
        with engine.begin() as conn:
            verdict = "ok" if checked else conn.exec_driver_sql("PRAGMA quick_check").scalar_one()
            if verdict != "ok":
                raise StoreUnavailable(f"integrity check failed: {verdict}")
            migrate(conn)
    except Exception as exc:
        engine.dispose()
        cause = " ".join(str(getattr(exc, "orig", None) or exc).split())  # one line, no URL
        raise StoreUnusable(f"cannot open the store {path}: {cause}") from exc
    if health is not None:
        event.listen(engine, "handle_error", _report_errors(health))
    return engine


def probe_write(engine: Engine) -> None:
    """A real write that commits: does the store take writes again (lock, disk space)?"""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT OR REPLACE INTO settings (key, value) VALUES ('store_probe', ?)",
            (str(time.time_ns()),),
        )
