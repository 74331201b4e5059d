"""The archive cache: each repository's archives as borg last reported them.

ListArchives answers from here at once, also while a backup holds borg's
exclusive lock.  The archive set comes from a `list` job (`replace_set`),
which is the authority on which archives exist; the figures of an archive
come from borg's `info` or from the `create` that made it (`record_made`),
and survive a later `replace_set` that lists the same archive (same borg id)
without figures.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from borgd.core.archives import ArchiveInfo
from borgd.core.records import Archive
from borgd.store import models

ARCHIVES = models.ARCHIVES
JOBS = models.JOBS

_FIGURES = ("nfiles", "original_size", "compressed_size", "deduplicated_size")


def _has_figures(info: ArchiveInfo) -> bool:
    return any(getattr(info, f) for f in _FIGURES)


def _values(info: ArchiveInfo) -> dict[str, object]:
    return {
        "name": info.name,
        "archive_id": info.id,
        "start": info.start,
        "end": info.end,
        "comment": info.comment,
        "checkpoint": info.checkpoint,
        **{f: getattr(info, f) for f in _FIGURES},
        "figures": _has_figures(info),
    }


def _link_jobs(conn: Connection, repository_id: int) -> None:
    """Archives not linked yet get the newest backup job that reported them by name."""
    maker = (
        select(func.max(JOBS.c.id))
        .where(
            JOBS.c.repository_id == ARCHIVES.c.repository_id,
            JOBS.c.archive == ARCHIVES.c.name,
            JOBS.c.type == "backup",
            # a stopped backup's `archive` names the checkpoint it left, if any
            JOBS.c.status.in_(("succeeded", "warning", "cancelled", "interrupted")),
        )
        .scalar_subquery()
    )
    conn.execute(
        update(ARCHIVES)
        .where(ARCHIVES.c.repository_id == repository_id, ARCHIVES.c.job_id == 0)
        .values(job_id=func.coalesce(maker, 0))
    )


class ArchiveCache:
    """Only borgd writes its store, and archives only through here: `query` answers are
    kept until the next write (a desktop widget asks for 1,000 archives often)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._answers: dict[tuple[int, str | None, bool, int], tuple[Archive, ...]] = {}
        self._writes = 0  # a query's answer is kept only if no write began meanwhile
        self._lock = threading.Lock()  # jobs write from worker threads

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Connection]:
        self._forget()
        try:
            with self._engine.begin() as conn:
                yield conn
        finally:
            self._forget()  # also after a failed write: it may have been committed

    def _forget(self) -> None:
        with self._lock:
            self._writes += 1
            self._answers.clear()

    def replace_set(
        self,
        repository_id: int,
        listed: Iterable[ArchiveInfo],
        profiles: Mapping[str, str],
    ) -> tuple[int, int]:
        """Make the cache hold exactly `listed` (borg's current set); `profiles`: name →
        profile for the archives to (re)link. Returns (added, removed)."""
        listed = list(listed)
        with self._writing() as conn:
            known = {
                r.name: r
                for r in conn.execute(
                    select(ARCHIVES).where(ARCHIVES.c.repository_id == repository_id)
                )
            }
            names = {a.name for a in listed}
            gone = [row.id for name, row in known.items() if name not in names]
            if gone:
                conn.execute(delete(ARCHIVES).where(ARCHIVES.c.id.in_(gone)))
            added = 0
            for info in listed:
                values = _values(info)
                values["profile"] = profiles.get(info.name, "")
                row = known.get(info.name)
                if row is None:
                    conn.execute(insert(ARCHIVES).values(repository_id=repository_id, **values))
                    added += 1
                    continue
                if row.archive_id == info.id and not _has_figures(info):
                    for f in (*_FIGURES, "figures"):
                        values.pop(f)  # the same archive: keep the figures known
                if row.archive_id != info.id:
                    values["job_id"] = 0  # another archive under a reused name
                conn.execute(update(ARCHIVES).where(ARCHIVES.c.id == row.id).values(**values))
            _link_jobs(conn, repository_id)
        return added, len(gone)

    def record_made(
        self, repository_id: int, info: ArchiveInfo, *, profile: str, job_id: int
    ) -> None:
        """An archive one of borgd's jobs made (its figures from `create --json`)."""
        # create's report is borg's word on the figures, even all 0 (an empty source)
        values = {**_values(info), "profile": profile, "job_id": job_id}
        values["figures"] = not info.checkpoint
        with self._writing() as conn:
            found = conn.execute(
                select(ARCHIVES.c.id).where(
                    ARCHIVES.c.repository_id == repository_id, ARCHIVES.c.name == info.name
                )
            ).scalar_one_or_none()
            if found is None:
                conn.execute(insert(ARCHIVES).values(repository_id=repository_id, **values))
            else:
                if not info.id:
                    values.pop("archive_id")
                conn.execute(update(ARCHIVES).where(ARCHIVES.c.id == found).values(**values))

    def record_figures(self, repository_id: int, info: ArchiveInfo) -> bool:
        """borg's figures of an archive borgd did not make (`info`); False when the cache
        no longer holds that archive (deleted, or its name reused, meanwhile)."""
        values = {f: getattr(info, f) for f in _FIGURES}
        with self._writing() as conn:
            done = conn.execute(
                update(ARCHIVES)
                .where(
                    ARCHIVES.c.repository_id == repository_id,
                    ARCHIVES.c.name == info.name,
                    ARCHIVES.c.archive_id.in_((info.id, "")),
                )
                .values(**values, figures=True)
            )
            return bool(done.rowcount)

    def remove(self, repository_id: int, name: str) -> None:
        """An archive borgd deleted."""
        with self._writing() as conn:
            conn.execute(
                delete(ARCHIVES).where(
                    ARCHIVES.c.repository_id == repository_id, ARCHIVES.c.name == name
                )
            )

    def get(self, repository_id: int, name: str) -> Archive | None:
        stmt = select(ARCHIVES).where(
            ARCHIVES.c.repository_id == repository_id, ARCHIVES.c.name == name
        )
        with self._engine.connect() as conn:
            row = conn.execute(stmt).mappings().one_or_none()
        return None if row is None else Archive.from_row(dict(row))

    def count(self, repository_id: int) -> int:
        """The repository's archives, checkpoints not counted."""
        stmt = select(func.count()).where(
            ARCHIVES.c.repository_id == repository_id, ARCHIVES.c.checkpoint.is_(False)
        )
        with self._engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def without_figures(self, repository_id: int, limit: int) -> list[str]:
        """The newest archives whose figures borg has not told yet (checkpoints aside:
        the next backup deletes them)."""
        stmt = (
            select(ARCHIVES.c.name)
            .where(
                ARCHIVES.c.repository_id == repository_id,
                ARCHIVES.c.figures.is_(False),
                ARCHIVES.c.checkpoint.is_(False),
            )
            .order_by(ARCHIVES.c.start.desc())
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return list(conn.execute(stmt).scalars())

    def query(
        self,
        repository_id: int,
        *,
        profile: str | None = None,
        checkpoints: bool = False,
        limit: int = 0,
    ) -> tuple[Archive, ...]:
        """Newest first; checkpoints only when asked for."""
        key = (repository_id, profile, checkpoints, limit)
        with self._lock:
            known = self._answers.get(key)
            writes = self._writes
        if known is not None:
            return known
        stmt = select(ARCHIVES).where(ARCHIVES.c.repository_id == repository_id)
        if profile is not None:
            stmt = stmt.where(ARCHIVES.c.profile == profile)
        if not checkpoints:
            stmt = stmt.where(ARCHIVES.c.checkpoint.is_(False))
        stmt = stmt.order_by(ARCHIVES.c.start.desc(), ARCHIVES.c.id.desc())
        if limit:
            stmt = stmt.limit(limit)
        with self._engine.connect() as conn:
            # Plain tuples in column order (the record's field order, which a test checks).
            answer = tuple(Archive(*r) for r in conn.execute(stmt))
        with self._lock:
            if writes == self._writes:
                if len(self._answers) >= 64:  # every `limit` a client tried: keep it small
                    self._answers.clear()
                self._answers[key] = answer
        return answer
