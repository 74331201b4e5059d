"""An archive's contents, kept as a small SQLite file so every page is quick.

borg lists an archive only whole (``borg list --json-lines``), which takes
seconds for a large one; ListArchiveContents pages through it.  The first
call writes every entry into ``<cache>/<archive id>.sqlite`` (an archive
never changes, so the file stays true for as long as the archive exists),
indexed by parent folder; later pages are one indexed query.  Folders that
borg did not store (``home`` and ``home/u`` above a source ``/home/u/docs``)
are added, so a browser can walk down from the top.  Runs in worker threads.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from borgd.core.archives import ArchiveEntry

_SCHEMA = """
CREATE TABLE entries (
    path TEXT PRIMARY KEY,
    parent TEXT NOT NULL,
    type TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    user TEXT NOT NULL,
    grp TEXT NOT NULL,
    target TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX entries_parent ON entries (parent, path);
"""
_COLUMNS = ("path", "type", "size", "mtime", "mode", "user", "grp", "target")
_KEYS = ("path", "type", "size", "mtime", "mode", "user", "group", "target")  # the reply's
_DIR_MODE = 0o040755


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def write_listing(target: Path, entries: Iterable[ArchiveEntry]) -> int:
    """Write a listing file atomically (a reader never sees half of one); returns its size."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    conn = sqlite3.connect(partial)
    try:
        conn.executescript(_SCHEMA)
        seen: set[str] = set()
        implied: set[str] = set()
        rows: list[tuple[Any, ...]] = []
        for e in entries:
            path = e.path.strip("/")
            if not path or path == "." or path in seen:
                continue
            seen.add(path)
            parent = _parent(path)
            while parent and parent not in implied:
                implied.add(parent)
                parent = _parent(parent)
            rows.append(
                (path, _parent(path), e.type, e.size, e.mtime, e.mode, e.user, e.group, e.target)
            )
            if len(rows) >= 5000:
                conn.executemany("INSERT INTO entries VALUES (?,?,?,?,?,?,?,?,?)", rows)
                rows.clear()
        rows += [(d, _parent(d), "d", 0, 0, _DIR_MODE, "", "", "") for d in sorted(implied - seen)]
        conn.executemany("INSERT INTO entries VALUES (?,?,?,?,?,?,?,?,?)", rows)
        conn.commit()
        count = int(conn.execute("SELECT count(*) FROM entries").fetchone()[0])
    finally:
        conn.close()
    os.replace(partial, target)
    return count


def _glob(pattern: str) -> str:
    """A shell pattern as SQLite GLOB spells it (``[!x]`` is ``[^x]`` there)."""
    return pattern.replace("[!", "[^")


def read_page(
    listing: Path,
    path: str,
    *,
    recursive: bool,
    pattern: str,
    offset: int,
    limit: int,
) -> list[dict[str, Any]]:
    """One page of entries under `path` ('' = the top), in path order."""
    path = path.strip("/")
    where: list[str] = []
    args: list[Any] = []
    if recursive:
        if path:
            where.append("path > ? AND path < ?")  # everything below path/
            args += [f"{path}/", f"{path}0"]  # '0' sorts right after '/'
    else:
        where.append("parent = ?")
        args.append(path)
    if pattern:
        where.append("path GLOB ?")
        args.append(_glob(pattern))
    sql = f"SELECT {', '.join(_COLUMNS)} FROM entries"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY path LIMIT ? OFFSET ?"
    args += [limit, offset]
    conn = sqlite3.connect(f"file:{listing}?mode=ro", uri=True)
    try:
        return [dict(zip(_KEYS, row, strict=True)) for row in conn.execute(sql, args)]
    finally:
        conn.close()


def has_path(listing: Path, path: str) -> bool:
    conn = sqlite3.connect(f"file:{listing}?mode=ro", uri=True)
    try:
        found = conn.execute("SELECT 1 FROM entries WHERE path = ?", (path.strip("/"),))
        return found.fetchone() is not None
    finally:
        conn.close()
