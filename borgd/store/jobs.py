"""Job rows: creation, compare-and-set transitions, queries.

Every status change is `UPDATE … WHERE id = ? AND status IN (…)`; a lost
race raises `StaleState` instead of running anything twice.  The partial
unique indexes in the schema turn a second running job per repository or a
second intent per schedule into `StaleState` too.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    Table,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from borgd import errors
from borgd.core.exit_codes import INCOMPLETE_BACKUP_EXITS
from borgd.core.jobs import LIVE, JobStatus, JobType, check_transition, sources_for
from borgd.core.records import Job
from borgd.store import models

JOBS: Table = models.JOBS

# Columns a caller may set alongside a transition or a progress update.
WRITABLE = frozenset(c.name for c in JOBS.columns) - {"id", "status"}


class StaleState(errors.InvalidState):
    """The job is not in a state that allows the change (lost a race, or wrong state)."""


class NoSuchJob(errors.NotFound):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"no job with id {job_id}")
        self.job_id = job_id


@dataclass(frozen=True)
class JobFilter:
    profiles: tuple[str, ...] = ()
    repositories: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    since: int = 0
    until: int = 0
    limit: int = 0
    offset: int = 0


def _row(mapping: Any) -> Job:
    return Job.from_row(mapping)


def _rows(result: Any) -> list[Job]:
    """The records of a result's rows, read as tuples against its column names (a
    RowMapping's look-ups took a fifth of ListJobs' time): every list of jobs."""
    keys = tuple(result.keys())
    return [Job.from_row(dict(zip(keys, row, strict=True))) for row in result]


class JobStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- creation ---------------------------------------------------------

    def create(self, **fields: Any) -> Job:
        unknown = set(fields) - WRITABLE - {"status"}
        if unknown:
            raise ValueError(f"unknown job fields: {sorted(unknown)}")
        try:
            with self._engine.begin() as conn:
                key = conn.execute(insert(JOBS).values(**fields)).inserted_primary_key
                assert key is not None
                new_id = key[0]
                return _row(conn.execute(select(JOBS).where(JOBS.c.id == new_id)).mappings().one())
        except IntegrityError as exc:
            raise StaleState(f"cannot create the job: {exc.orig}") from exc

    def queue(self, *, now: int, **fields: Any) -> Job:
        """A new `queued` job (a manual run, a requeue, a recovery, a chained task)."""
        return self.create(status=JobStatus.QUEUED.value, created_at=now, queued_at=now, **fields)

    # -- transitions ----------------------------------------------------------

    def transition(
        self,
        job_id: int,
        dst: JobStatus,
        *,
        expect: Iterable[JobStatus] | None = None,
        **fields: Any,
    ) -> Job:
        """Move a job to `dst` if its current status allows it; returns the new row."""
        allowed = sources_for(dst)
        if expect is not None:
            allowed = allowed & frozenset(expect)
        bad = set(fields) - WRITABLE
        if bad:
            raise ValueError(f"unknown job fields: {sorted(bad)}")
        stmt = (
            update(JOBS)
            .where(JOBS.c.id == job_id, JOBS.c.status.in_([s.value for s in allowed]))
            .values(status=dst.value, **fields)
        )
        try:
            with self._engine.begin() as conn:
                if conn.execute(stmt).rowcount != 1:
                    current = conn.execute(
                        select(JOBS.c.status).where(JOBS.c.id == job_id)
                    ).scalar_one_or_none()
                    if current is None:
                        raise NoSuchJob(job_id)
                    check_transition(JobStatus(current), dst)  # raises with a clear message
                    raise StaleState(f"job {job_id} is {current}")
                return _row(conn.execute(select(JOBS).where(JOBS.c.id == job_id)).mappings().one())
        except IntegrityError as exc:
            raise StaleState(f"job {job_id} cannot become {dst}: {exc.orig}") from exc

    def update_fields(self, job_id: int, **fields: Any) -> None:
        """Non-status fields (progress, blocked_by, pid …) of a live job."""
        bad = set(fields) - WRITABLE
        if bad:
            raise ValueError(f"unknown job fields: {sorted(bad)}")
        with self._engine.begin() as conn:
            conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(**fields))

    # -- queries --------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        with self._engine.connect() as conn:
            row = conn.execute(select(JOBS).where(JOBS.c.id == job_id)).mappings().one_or_none()
        if row is None:
            raise NoSuchJob(job_id)
        return _row(row)

    def find(self, job_id: int) -> Job | None:
        try:
            return self.get(job_id)
        except NoSuchJob:
            return None

    def with_status(self, *statuses: JobStatus) -> list[Job]:
        with self._engine.connect() as conn:
            return _rows(
                conn.execute(
                    select(JOBS)
                    .where(JOBS.c.status.in_([s.value for s in statuses]))
                    .order_by(JOBS.c.id)
                )
            )

    def live(self) -> list[Job]:
        return self.with_status(*LIVE)

    def queued_in_lane_order(self) -> list[Job]:
        """Queued jobs in the order lanes take them: chain jobs first, then by id."""
        with self._engine.connect() as conn:
            return _rows(
                conn.execute(
                    select(JOBS)
                    .where(JOBS.c.status == JobStatus.QUEUED.value)
                    .order_by((JOBS.c.trigger != "chain"), JOBS.c.queued_at, JOBS.c.id)
                )
            )

    def query(self, flt: JobFilter) -> list[Job]:
        """Scheduled, active and finished jobs in one list, newest first."""
        conds: list[ColumnElement[bool]] = []
        for column, values in (
            (JOBS.c.profile, flt.profiles),
            (JOBS.c.repository, flt.repositories),
            (JOBS.c.type, flt.types),
            (JOBS.c.status, flt.statuses),
        ):
            if values:
                conds.append(column.in_(values))
        if flt.since:
            conds.append(JOBS.c.created_at >= flt.since)
        if flt.until:
            conds.append(JOBS.c.created_at < flt.until)
        stmt = select(JOBS).where(and_(True, *conds)).order_by(JOBS.c.id.desc())
        if flt.limit:
            stmt = stmt.limit(flt.limit)
        if flt.offset:
            stmt = stmt.offset(flt.offset).limit(flt.limit or -1)
        with self._engine.connect() as conn:
            return _rows(conn.execute(stmt))

    def last_success(self, profile: str) -> Job | None:
        """The profile's newest successful backup (`exit_codes.counts_as_success`)."""
        with self._engine.connect() as conn:
            row = (
                conn.execute(
                    select(JOBS)
                    .where(JOBS.c.profile == profile, *_successful_backup(JOBS))
                    .order_by(JOBS.c.finished_at.desc(), JOBS.c.id.desc())
                    .limit(1)
                )
                .mappings()
                .one_or_none()
            )
        return None if row is None else _row(row)

    def last_successes(self) -> dict[str, Job]:
        """`last_success` of every profile in the catalog (name → job; none: absent) in
        one statement, an index walk per profile: ListProfiles, the overdue watcher
        and the metrics file ask for all of them at once."""
        with self._engine.connect() as conn:
            rows = _rows(conn.execute(_last_successes()))
        return {str(job.profile): job for job in rows}

    def last_success_times(self) -> dict[str, int]:
        """When `last_success` of every profile in the catalog finished (name → time,
        0 = never): the times alone, without building 20 job records to read one field."""
        with self._engine.connect() as conn:
            return {str(name): int(t or 0) for name, t in conn.execute(_last_success_times())}

    def last_finished(self, repository_id: int) -> dict[str, int]:
        """When each kind of job that changes a repository last ended well on it
        (type → finished_at, 0 = never); one statement over
        ix_jobs_repository_type_status_finished."""
        kinds = ("init", "backup", "prune", "compact", "check")
        stmt = (
            select(JOBS.c.type, func.max(JOBS.c.finished_at))
            .where(
                JOBS.c.repository_id == repository_id,
                JOBS.c.type.in_(kinds),
                JOBS.c.status.in_((JobStatus.SUCCEEDED.value, JobStatus.WARNING.value)),
            )
            .group_by(JOBS.c.type)
        )
        out = dict.fromkeys(kinds, 0)
        with self._engine.connect() as conn:
            for job_type, finished_at in conn.execute(stmt):
                out[str(job_type)] = int(finished_at or 0)
        return out

    def backups_since(self, repository_id: int, since: int) -> list[Job]:
        """A repository's backups that made an archive and ended at `since` or later,
        oldest first (RepositoryStats)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(JOBS)
                .where(
                    JOBS.c.repository_id == repository_id,
                    JOBS.c.type == JobType.BACKUP.value,
                    JOBS.c.status.in_((JobStatus.SUCCEEDED.value, JobStatus.WARNING.value)),
                    JOBS.c.finished_at >= since,
                    JOBS.c.archive != "",
                )
                .order_by(JOBS.c.finished_at, JOBS.c.id)
            )
            return _rows(rows)

    def archives_of_repository(self, repository_id: int, limit: int = 200) -> set[str]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(JOBS.c.archive)
                .where(JOBS.c.repository_id == repository_id, JOBS.c.archive != "")
                .order_by(JOBS.c.id.desc())
                .limit(limit)
            )
            return {r[0] for r in rows}

    def was_requeued(self, job_id: int) -> bool:
        """Some job names this one as requeued_from (a requeue or a recovery)."""
        with self._engine.connect() as conn:
            return (
                conn.execute(
                    select(JOBS.c.id).where(JOBS.c.requeued_from == job_id).limit(1)
                ).scalar_one_or_none()
                is not None
            )

    def count(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(JOBS)).scalar_one())

    def counts(self) -> dict[tuple[str, str], int]:
        """How many rows of each (type, status) there are (the metrics file): one scan."""
        stmt = select(JOBS.c.type, JOBS.c.status, func.count()).group_by(
            JOBS.c.type, JOBS.c.status
        )
        with self._engine.connect() as conn:
            return {(r[0], r[1]): int(r[2]) for r in conn.execute(stmt)}

    def expired_ids(self, *, older_than: int, keep_per_profile: int) -> list[int]:
        """Finished jobs older than `older_than` or beyond the newest N per profile.

        Only reads: retention runs it in a worker thread (a long history takes a
        while to rank) without holding the write lock the event loop needs.
        """
        finished = [s.value for s in JobStatus if s not in LIVE]
        rank = (
            func.row_number()
            .over(partition_by=JOBS.c.profile, order_by=JOBS.c.id.desc())
            .label("rank")
        )
        ranked = select(JOBS.c.id, rank).where(JOBS.c.status.in_(finished)).subquery()
        with self._engine.connect() as conn:
            return [
                r[0]
                for r in conn.execute(
                    select(JOBS.c.id)
                    .join(ranked, ranked.c.id == JOBS.c.id)
                    .where(
                        or_(
                            and_(JOBS.c.finished_at > 0, JOBS.c.finished_at < older_than),
                            ranked.c.rank > keep_per_profile,
                        )
                    )
                    .order_by(JOBS.c.id)
                )
            ]

    def delete_finished(self, ids: Sequence[int]) -> list[Job]:
        """Delete these jobs if they are still finished; returns the deleted rows (the
        caller removes their log files).  A short write: callers pass small batches."""
        finished = [s.value for s in JobStatus if s not in LIVE]
        where = and_(JOBS.c.id.in_(list(ids)), JOBS.c.status.in_(finished))
        with self._engine.begin() as conn:
            rows = _rows(conn.execute(select(JOBS).where(where)))
            if rows:
                conn.execute(delete(JOBS).where(JOBS.c.id.in_([r.id for r in rows])))
            return rows

    def expire(self, *, older_than: int, keep_per_profile: int) -> list[Job]:
        """Delete finished jobs older than `older_than` or beyond the newest N per profile."""
        ids = self.expired_ids(older_than=older_than, keep_per_profile=keep_per_profile)
        return self.delete_finished(ids) if ids else []


def _settle(
    conn: Any,
    intent_id: int,
    dst: JobStatus,
    fields: dict[str, Any],
) -> None:
    if dst is not JobStatus.SCHEDULED:  # re-planned in place (a catch-up) is no transition
        check_transition(JobStatus.SCHEDULED, dst)
    stmt = (
        update(JOBS)
        .where(JOBS.c.id == intent_id, JOBS.c.status == JobStatus.SCHEDULED.value)
        .values(status=dst.value, **fields)
    )
    if conn.execute(stmt).rowcount != 1:
        raise StaleState(f"intent {intent_id} is no longer scheduled")


class IntentStore:
    """Scheduled intents: one transaction settles an occurrence and writes the next."""

    def __init__(self, engine: Engine, schedules_table: Table) -> None:
        self._engine = engine
        self._schedules = schedules_table

    def settle(
        self,
        *,
        schedule_id: int,
        anchor: int | None,
        intent_id: int | None = None,
        dst: JobStatus | None = None,
        fields: dict[str, Any] | None = None,
        audit: list[dict[str, Any]] = (),  # type: ignore[assignment]
        next_intent: dict[str, Any] | None = None,
    ) -> tuple[Job | None, list[Job]]:
        """Returns the settled intent (if any) and every row created, in order."""
        created_ids: list[int] = []
        try:
            with self._engine.begin() as conn:
                if intent_id is not None and dst is not None:
                    _settle(conn, intent_id, dst, fields or {})
                for row in audit:
                    key = conn.execute(insert(JOBS).values(**row)).inserted_primary_key
                    assert key is not None
                    created_ids.append(int(key[0]))
                if anchor is not None:
                    conn.execute(
                        update(self._schedules)
                        .where(self._schedules.c.id == schedule_id)
                        .values(anchor=anchor)
                    )
                if next_intent is not None:
                    key = conn.execute(insert(JOBS).values(**next_intent)).inserted_primary_key
                    assert key is not None
                    created_ids.append(int(key[0]))
                settled = None
                if intent_id is not None:
                    settled = _row(
                        conn.execute(select(JOBS).where(JOBS.c.id == intent_id)).mappings().one()
                    )
                created = _rows(
                    conn.execute(
                        select(JOBS).where(JOBS.c.id.in_(created_ids)).order_by(JOBS.c.id)
                    )
                )
                return settled, created
        except IntegrityError as exc:
            raise StaleState(f"schedule {schedule_id}: {exc.orig}") from exc


def _successful_backup(table: Any) -> tuple[ColumnElement[bool], ...]:
    """A backup that counts as a success (`exit_codes.counts_as_success`): succeeded, or
    a warning that is not an incomplete archive."""
    return (
        table.c.type == JobType.BACKUP.value,
        or_(
            table.c.status == JobStatus.SUCCEEDED.value,
            and_(
                table.c.status == JobStatus.WARNING.value,
                table.c.exit_code.not_in(sorted(INCOMPLETE_BACKUP_EXITS)),
            ),
        ),
    )


def _newest_success(column: str) -> Any:
    """A column of the newest successful backup of the profile of the enclosing query
    (over PROFILES): a walk back along ix_jobs_profile_finished."""
    j = JOBS.alias("j")
    return (
        select(j.c[column])
        .where(j.c.profile == models.PROFILES.c.name, *_successful_backup(j))
        .order_by(j.c.finished_at.desc(), j.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


# Built once: building an alias's columns anew took as long as running the statement.
@functools.cache
def _last_successes() -> Select[Any]:
    newest = select(_newest_success("id")).select_from(models.PROFILES)
    return select(JOBS).where(JOBS.c.id.in_(newest))


@functools.cache
def _last_success_times() -> Select[Any]:
    return select(models.PROFILES.c.name, _newest_success("finished_at"))
