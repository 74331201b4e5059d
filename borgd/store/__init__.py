"""The persistent store: SQLite through SQLAlchemy 2."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from borgd.store.catalog import Catalog
from borgd.store.engine import StoreUnavailable, open_engine, probe_write
from borgd.store.health import StoreHealth
from borgd.store.jobs import JobStore


class Store:
    """The store's two halves over one engine: configuration and jobs; and its health."""

    def __init__(self, engine: Engine, health: StoreHealth | None = None) -> None:
        self.engine = engine
        self.health = health or StoreHealth()
        self.catalog = Catalog(engine)
        self.jobs = JobStore(engine)

    @classmethod
    def open(cls, path: Path | str) -> Store:
        health = StoreHealth()
        return cls(open_engine(path, health), health)

    def probe(self) -> None:
        probe_write(self.engine)

    async def watch_health(self) -> None:
        """Probe the store while it is unavailable, until it takes writes again."""
        await self.health.run(self.probe)

    def close(self) -> None:
        self.engine.dispose()


__all__ = ["Store", "StoreHealth", "StoreUnavailable"]
