"""The persistent store: SQLite through SQLAlchemy 2."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from borgd.store.catalog import Catalog
from borgd.store.engine import open_engine
from borgd.store.jobs import JobStore


class Store:
    """The store's two halves over one engine: configuration and jobs."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.catalog = Catalog(engine)
        self.jobs = JobStore(engine)

    @classmethod
    def open(cls, path: Path | str) -> Store:
        return cls(open_engine(path))

    def close(self) -> None:
        self.engine.dispose()
