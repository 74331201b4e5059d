"""The early integrity check of `borgd` (launch.py): only an "ok" is trusted."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from borgd.launch import EarlyIntegrityCheck
from borgd.store import Store


def test_a_sound_store_passes(tmp_path: Path) -> None:
    Store.open(tmp_path / "s.db").close()
    assert EarlyIntegrityCheck(str(tmp_path / "s.db")).passed()


def test_anything_else_is_checked_again_when_opened(tmp_path: Path) -> None:
    missing = EarlyIntegrityCheck(str(tmp_path / "none.db"))
    assert not missing.passed()
    assert missing.verdict is not None and missing.verdict.startswith("not checked:")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not an SQLite database".ljust(4096, b"!"))
    assert not EarlyIntegrityCheck(str(garbage)).passed()
    locked = tmp_path / "locked.db"
    Store.open(locked).close()
    holder = sqlite3.connect(locked, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("CREATE TABLE t (x)")
    try:
        assert not EarlyIntegrityCheck(str(locked)).passed()
    finally:
        holder.rollback()
        holder.close()
