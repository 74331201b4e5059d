"""What the store hands out: typed, immutable records (no I/O).

Rows leave the store only as these: a status is a `JobStatus`, never a
string to compare by hand, and a misspelt field is a type error, not a
`KeyError` at run time.  Writes still name columns (`status=`, `message=`):
the store checks those against the schema.  `as_dict` gives the plain
values the D-Bus adapter and the event publisher speak.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Self, TypeVar

from borgd.core.config import ProfileConfig, RepoConfig, Retention
from borgd.core.jobs import JobStatus, JobType, SkipReason, Trigger


class _Record:
    """`from_row` and `as_dict`, shared by every record."""

    __slots__ = ()

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        """The record of one store row (an extra or a missing column is an error: the
        schema and the record must agree, which a test checks).  Built from positional
        arguments: matching 35 keyword arguments by name took two thirds of the time
        ListJobs spent making its records."""
        return _build(cls, row)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _field_names(type(self))}

    def but(self, **changes: Any) -> Self:
        """A copy with some fields changed (a row as it is after a write), the changed
        values converted as the store's would be."""
        return self.from_row({**_Record.as_dict(self), **changes})


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_R = TypeVar("_R", bound=_Record)


def _build(cls: type[_R], row: Mapping[str, Any]) -> _R:
    """`cls` from a row, its values passed in field order."""
    names = _field_names(cls)
    try:
        values = [row[name] for name in names]
    except KeyError as exc:
        raise TypeError(f"{cls.__name__}: no value for field {exc}") from None
    if len(row) != len(names):
        raise TypeError(f"{cls.__name__}: unknown fields {sorted(set(row) - set(names))}")
    return cls(*values)


def _field_names(cls: type) -> tuple[str, ...]:
    """A record's field names, once per class (`fields` builds them anew each call, and
    ListJobs turns thousands of jobs into dictionaries)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


@dataclass(frozen=True, slots=True)
class Repository(_Record):
    id: int
    name: str
    url: str
    encryption: str
    ssh_command: str | None
    lock_wait: int | None
    passcommand: str | None
    has_passphrase: bool
    created_at: int
    upload_ratelimit: int
    device: str
    automount: bool
    eject_after: bool

    def config(self) -> RepoConfig:
        return RepoConfig(
            name=self.name,
            url=self.url,
            encryption=self.encryption,
            ssh_command=self.ssh_command,
            lock_wait=self.lock_wait,
            has_passphrase=bool(self.has_passphrase),
            passcommand=self.passcommand,
            upload_ratelimit=self.upload_ratelimit,
        )


@dataclass(frozen=True, slots=True)
class Profile(_Record):
    id: int
    name: str
    repository_id: int
    sources: list[str]
    excludes: list[str]
    compression: str | None
    archive_template: str
    keep_within: str | None
    keep_hourly: int
    keep_daily: int
    keep_weekly: int
    keep_monthly: int
    keep_yearly: int
    prune_after: bool
    compact_after: bool
    check_every: int
    backups_since_check: int
    pre_command: str | None
    post_command: str | None
    enabled: bool
    max_age: int
    inhibit_sleep: bool
    one_file_system: bool
    created_at: int
    nice: int
    ionice: str
    blackout: list[str]

    def config(self, repository: str) -> ProfileConfig:
        return ProfileConfig(
            name=self.name,
            repository=repository,
            sources=tuple(self.sources),
            excludes=tuple(self.excludes),
            compression=self.compression,
            archive_template=self.archive_template,
            retention=Retention(
                keep_within=self.keep_within,
                keep_hourly=self.keep_hourly,
                keep_daily=self.keep_daily,
                keep_weekly=self.keep_weekly,
                keep_monthly=self.keep_monthly,
                keep_yearly=self.keep_yearly,
            ),
            prune_after=bool(self.prune_after),
            compact_after=bool(self.compact_after),
            check_every=self.check_every,
            pre_command=self.pre_command,
            post_command=self.post_command,
            enabled=bool(self.enabled),
            max_age=self.max_age,
            inhibit_sleep=bool(self.inhibit_sleep),
            one_file_system=bool(self.one_file_system),
            nice=self.nice,
            ionice=self.ionice,
        )


@dataclass(frozen=True, slots=True)
class Schedule(_Record):
    id: int
    profile_id: int
    action: JobType
    spec: str
    timezone: str | None
    catch_up: bool
    catch_up_window: int
    randomized_delay: int
    skip_on_battery: bool
    skip_on_metered: bool
    enabled: bool
    paused: bool
    paused_until: int
    anchor: int  # the last occurrence handled (run, skipped or coalesced)
    created_at: int
    retries: int
    retry_delay: int
    min_interval: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        return _build(cls, {**row, "action": JobType(row["action"])})


@dataclass(frozen=True, slots=True)
class Job(_Record):
    id: int
    type: JobType
    status: JobStatus
    trigger: Trigger
    profile: str
    repository: str
    repository_id: int
    schedule_id: int
    parent_id: int
    requeued_from: int
    scheduled_for: int
    created_at: int
    queued_at: int
    started_at: int
    finished_at: int
    skip_reason: SkipReason | None
    blocked_by: str
    message: str
    exit_code: int
    archive: str
    progress: float
    progress_message: str
    current_file: str
    nfiles: int
    original_size: int
    compressed_size: int
    deduplicated_size: int
    rate: float
    eta: int
    duration: float
    options: dict[str, Any]
    pid: int
    pid_start_time: int
    log_path: str
    repository_size: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        return _build(
            cls,
            {
                **row,
                "type": JobType(row["type"]),
                "status": JobStatus(row["status"]),
                "trigger": Trigger(row["trigger"]),
                "skip_reason": SkipReason(row["skip_reason"]) if row["skip_reason"] else None,
            },
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain values; no skip reason is "" (the D-Bus convention)."""
        out = _Record.as_dict(self)
        out["skip_reason"] = self.skip_reason or ""
        return out

    @property
    def live(self) -> bool:
        return self.status in (JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.RUNNING)


@dataclass(frozen=True, slots=True)
class Archive(_Record):
    """One row of the archive cache: an archive borg reported, or one of borgd's jobs made."""

    id: int
    repository_id: int
    name: str
    archive_id: str  # borg's own id (hex)
    profile: str  # '' when no profile's template matches
    start: int
    end: int
    nfiles: int
    original_size: int
    compressed_size: int
    deduplicated_size: int
    comment: str
    job_id: int  # the job that made it; 0 when not made by borgd
    checkpoint: bool
    figures: bool  # borg's figures are known (from its `create`, or an `info` of it)


@dataclass(frozen=True, slots=True)
class Notifier(_Record):
    """Where borgd tells the world; its URL is a secret, kept apart (only `host` shows)."""

    id: int
    name: str
    kind: str
    events: list[str]
    profiles: list[str]
    enabled: bool
    host: str
    created_at: int


@dataclass(frozen=True, slots=True)
class Delivery(_Record):
    """One event on its way to one notifier (the outbox row)."""

    id: int
    notifier_id: int
    notifier: str
    event: str
    job_id: int
    key: str
    status: str  # pending, sent, failed (gave up), dropped (no longer wanted)
    attempts: int
    last_error: str
    created_at: int
    sent_at: int
    next_attempt_at: int
    payload: dict[str, Any]
