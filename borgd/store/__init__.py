"""The persistent store: SQLite through SQLAlchemy 2."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, event

from borgd.store.archives import ArchiveCache
from borgd.store.catalog import Catalog
from borgd.store.engine import StoreUnavailable, open_engine, probe_write
from borgd.store.file_guard import StoreFile
from borgd.store.health import StoreHealth
from borgd.store.jobs import JobStore
from borgd.store.notifiers import NotifierStore


class Store:
    """The store over one engine: configuration, jobs and the archive cache; its health."""

    def __init__(
        self, engine: Engine, health: StoreHealth | None = None, file: StoreFile | None = None
    ) -> None:
        self.engine = engine
        self.health = health or StoreHealth()
        self.file = file
        self.catalog = Catalog(engine)
        self.jobs = JobStore(engine)
        self.archives = ArchiveCache(engine)
        self.notifiers = NotifierStore(engine)
        if file is not None:
            event.listen(engine, "begin", self._check_file)

    @classmethod
    def open(cls, path: Path | str, *, checked: bool = False) -> Store:
        """`checked`: its integrity was checked already, moments ago (`borgd.launch`)."""
        health = StoreHealth()
        engine = open_engine(path, health, checked=checked)
        return cls(engine, health, None if str(path) == ":memory:" else StoreFile(Path(path)))

    def _check_file(self, _conn: object) -> None:
        """Before every transaction: is the path still our file? (two stats)"""
        assert self.file is not None
        try:
            self.file.relink()
        except StoreUnavailable as exc:
            self.health.failed(exc.cause)
            raise
        lost = self.file.wal_lost()
        if lost is not None:
            self.health.failed(lost)
            raise StoreUnavailable(lost)

    def probe(self) -> None:
        """Put a deleted or replaced store file back, then try a real write."""
        if self.file is not None:
            self.file.reopen(self.engine)
        probe_write(self.engine)

    async def watch_health(self) -> None:
        """Probe the store while it is unavailable, until it takes writes again."""
        await self.health.run(self.probe)

    def close(self) -> None:
        self.engine.dispose()
        if self.file is not None:
            self.file.close()


__all__ = ["Store", "StoreHealth", "StoreUnavailable"]
