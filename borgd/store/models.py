"""SQLAlchemy models: the shape of the store.

Timestamps and durations are integer microseconds since the epoch (the
D-Bus `t` convention), 0 meaning "none".  Jobs keep denormalised profile and
repository names so history survives a removed profile.  The migrations in
`migrations.py` create exactly these tables; a test compares the two.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Repository(Base):
    __tablename__ = "repositories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True, nullable=False)
    url: Mapped[str] = mapped_column(String, unique=True, nullable=False)
    encryption: Mapped[str] = mapped_column(String, nullable=False, default="repokey-blake2")
    ssh_command: Mapped[str | None] = mapped_column(String)
    lock_wait: Mapped[int | None] = mapped_column(Integer)
    passcommand: Mapped[str | None] = mapped_column(String)
    has_passphrase: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class Profile(Base):
    __tablename__ = "profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True, nullable=False)
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="RESTRICT"), nullable=False
    )
    sources: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    excludes: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    compression: Mapped[str | None] = mapped_column(String)
    archive_template: Mapped[str] = mapped_column(String, nullable=False)
    keep_within: Mapped[str | None] = mapped_column(String)
    keep_hourly: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    keep_daily: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    keep_weekly: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    keep_monthly: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    keep_yearly: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    prune_after: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    compact_after: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    check_every: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    backups_since_check: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    pre_command: Mapped[str | None] = mapped_column(Text)
    post_command: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    max_age: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    inhibit_sleep: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    one_file_system: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class Schedule(Base):
    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    profile_id: Mapped[int] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), nullable=False
    )
    action: Mapped[str] = mapped_column(String, nullable=False)
    spec: Mapped[str] = mapped_column(String, nullable=False)
    timezone: Mapped[str | None] = mapped_column(String)
    catch_up: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    catch_up_window: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    randomized_delay: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    skip_on_battery: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    skip_on_metered: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    paused: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    paused_until: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The last occurrence handled (run, skipped or coalesced): catch-up counts from here.
    anchor: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String, nullable=False)
    status: Mapped[str] = mapped_column(String, nullable=False)
    trigger: Mapped[str] = mapped_column(String, nullable=False)
    profile: Mapped[str] = mapped_column(String, nullable=False, default="")
    repository: Mapped[str] = mapped_column(String, nullable=False)
    repository_id: Mapped[int] = mapped_column(Integer, nullable=False)
    schedule_id: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    parent_id: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    requeued_from: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    scheduled_for: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    queued_at: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    started_at: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    finished_at: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    skip_reason: Mapped[str] = mapped_column(String, nullable=False, default="")
    blocked_by: Mapped[str] = mapped_column(String, nullable=False, default="")
    message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    exit_code: Mapped[int] = mapped_column(Integer, nullable=False, default=-1)
    archive: Mapped[str] = mapped_column(String, nullable=False, default="")
    progress: Mapped[float] = mapped_column(Float, nullable=False, default=-1.0)
    progress_message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    current_file: Mapped[str] = mapped_column(Text, nullable=False, default="")
    nfiles: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    original_size: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    compressed_size: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    deduplicated_size: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    rate: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    eta: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    duration: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    options: Mapped[dict[str, object]] = mapped_column(JSON, nullable=False, default=dict)
    pid: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    pid_start_time: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    log_path: Mapped[str] = mapped_column(String, nullable=False, default="")

    __table_args__ = (
        # The store itself guarantees "never two borg processes on one repository".
        Index(
            "ix_jobs_one_running_per_repository",
            "repository_id",
            unique=True,
            sqlite_where=text("status = 'running'"),
        ),
        # ...and "one scheduled intent per schedule".
        Index(
            "ix_jobs_one_intent_per_schedule",
            "schedule_id",
            unique=True,
            sqlite_where=text("status = 'scheduled' AND schedule_id != 0"),
        ),
        Index("ix_jobs_status", "status"),
        Index("ix_jobs_profile", "profile", "id"),
        Index("ix_jobs_repository", "repository", "id"),
        Index("ix_jobs_created", "created_at"),
        # "The newest successful backup of a profile" (overdue, ListProfiles, restore).
        Index("ix_jobs_profile_finished", "profile", "finished_at", "id"),
    )


class Setting(Base):
    """Small persisted daemon state: the global pause."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)
