"""Notifiers and the outbox of their deliveries."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from borgd import errors
from borgd.core.notifications import NotifierSettings
from borgd.core.records import Delivery, Notifier
from borgd.store import models

NOTIFIERS = models.NOTIFIERS
DELIVERIES = models.DELIVERIES
DEFAULT_LIMIT = 100


class NotifierStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- notifiers -----------------------------------------------------------

    def add(self, name: str, settings: NotifierSettings, host: str, now: int) -> Notifier:
        values = _settings(settings) | {"name": name, "host": host, "created_at": now}
        try:
            with self._engine.begin() as conn:
                key = conn.execute(insert(NOTIFIERS).values(**values)).inserted_primary_key
        except IntegrityError:
            raise errors.AlreadyExists(f"a notifier named {name!r} exists") from None
        assert key is not None
        return self.get(name)

    def update(self, name: str, settings: NotifierSettings, host: str | None) -> Notifier:
        values = _settings(settings) | ({"host": host} if host is not None else {})
        with self._engine.begin() as conn:
            conn.execute(update(NOTIFIERS).where(NOTIFIERS.c.name == name).values(**values))
        return self.get(name)

    def remove(self, name: str, why: str) -> Notifier:
        """The notifier goes; its deliveries still waiting are dropped (kept, for the log)."""
        found = self.get(name)
        with self._engine.begin() as conn:
            conn.execute(delete(NOTIFIERS).where(NOTIFIERS.c.id == found.id))
            conn.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.notifier_id == found.id, DELIVERIES.c.status == "pending")
                .values(status="dropped", last_error=why)
            )
        return found

    def get(self, name: str) -> Notifier:
        with self._engine.connect() as conn:
            row = conn.execute(select(NOTIFIERS).where(NOTIFIERS.c.name == name)).mappings()
            found = row.one_or_none()
        if found is None:
            raise errors.NotFound(f"no notifier named {name!r}")
        return Notifier.from_row(dict(found))

    def by_id(self, notifier_id: int) -> Notifier | None:
        with self._engine.connect() as conn:
            stmt = select(NOTIFIERS).where(NOTIFIERS.c.id == notifier_id)
            found = conn.execute(stmt).mappings().one_or_none()
        return None if found is None else Notifier.from_row(dict(found))

    def all(self) -> list[Notifier]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(NOTIFIERS).order_by(NOTIFIERS.c.name)).mappings()
            return [Notifier.from_row(dict(r)) for r in rows]

    # -- the outbox ----------------------------------------------------------

    def enqueue(
        self, notifier: Notifier, event: str, job_id: int, key: str, payload: Any, now: int
    ) -> int | None:
        """A new delivery; None when one with that key exists (sent or not): once only."""
        stmt = (
            sqlite_insert(DELIVERIES)
            .values(
                notifier_id=notifier.id,
                notifier=notifier.name,
                event=event,
                job_id=job_id,
                key=key,
                status="pending",
                attempts=0,
                last_error="",
                created_at=now,
                sent_at=0,
                next_attempt_at=now,
                payload=payload,
            )
            .on_conflict_do_nothing(index_elements=["key"])
        )
        with self._engine.begin() as conn:
            result = conn.execute(stmt)
            if not result.rowcount:
                return None
            key_row = result.inserted_primary_key
            return None if key_row is None else int(key_row[0])

    def waiting(self) -> dict[int, int]:
        """Each notifier with deliveries waiting: when its oldest may go (in order: a
        notifier's later deliveries wait behind its first)."""
        oldest = (
            select(DELIVERIES.c.notifier_id, func.min(DELIVERIES.c.id).label("first"))
            .where(DELIVERIES.c.status == "pending")
            .group_by(DELIVERIES.c.notifier_id)
            .subquery()
        )
        stmt = select(oldest.c.notifier_id, DELIVERIES.c.next_attempt_at).join(
            DELIVERIES, DELIVERIES.c.id == oldest.c.first
        )
        with self._engine.connect() as conn:
            return {int(n): int(t) for n, t in conn.execute(stmt)}

    def first_waiting(self, notifier_id: int) -> Delivery | None:
        stmt = (
            select(DELIVERIES)
            .where(DELIVERIES.c.notifier_id == notifier_id, DELIVERIES.c.status == "pending")
            .order_by(DELIVERIES.c.id)
            .limit(1)
        )
        with self._engine.connect() as conn:
            found = conn.execute(stmt).mappings().one_or_none()
        return None if found is None else Delivery.from_row(dict(found))

    def settle(self, delivery_id: int, **values: Any) -> None:
        """An attempt's outcome: sent, retry later, failed or dropped."""
        with self._engine.begin() as conn:
            conn.execute(update(DELIVERIES).where(DELIVERIES.c.id == delivery_id).values(**values))

    def delivery(self, delivery_id: int) -> Delivery | None:
        with self._engine.connect() as conn:
            stmt = select(DELIVERIES).where(DELIVERIES.c.id == delivery_id)
            found = conn.execute(stmt).mappings().one_or_none()
        return None if found is None else Delivery.from_row(dict(found))

    def deliveries(
        self, *, notifier: str | None = None, status: str | None = None, limit: int = 0
    ) -> list[Delivery]:
        """Newest first."""
        stmt = select(DELIVERIES)
        if notifier is not None:
            stmt = stmt.where(DELIVERIES.c.notifier == notifier)
        if status is not None:
            stmt = stmt.where(DELIVERIES.c.status == status)
        stmt = stmt.order_by(DELIVERIES.c.id.desc()).limit(limit or DEFAULT_LIMIT)
        with self._engine.connect() as conn:
            return [Delivery.from_row(dict(r)) for r in conn.execute(stmt).mappings()]

    def forget(self, older_than: int) -> int:
        """Deliveries that ended before `older_than` (job retention's horizon)."""
        with self._engine.begin() as conn:
            gone = conn.execute(
                delete(DELIVERIES).where(
                    DELIVERIES.c.status != "pending", DELIVERIES.c.created_at < older_than
                )
            )
            return int(gone.rowcount or 0)


def _settings(s: NotifierSettings) -> dict[str, Any]:
    return {
        "kind": s.kind,
        "events": list(s.events),
        "profiles": list(s.profiles),
        "enabled": s.enabled,
    }
