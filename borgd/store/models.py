"""The shape of the store: SQLAlchemy Core tables on one `MetaData`.

Core tables, not ORM classes: the store speaks SQL statements and plain row
mappings, and `sqlalchemy.orm` would add ~6 MiB and a tenth of a second to
every start for nothing.

Timestamps and durations are integer microseconds since the epoch (the
D-Bus `t` convention), 0 meaning "none".  Jobs keep denormalised profile and
repository names so history survives a removed profile.  Every integer id is
`AUTOINCREMENT`: an id is never handed out twice, even after the row holding
the highest one is deleted, so an old job's `schedule_id` or `parent_id`
never comes to name a newer row.  The migrations in `migrations.py` create
exactly these tables; a test compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

REPOSITORIES = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String, unique=True, nullable=False),
    Column("url", String, unique=True, nullable=False),
    Column("encryption", String, nullable=False, default="repokey-blake2"),
    Column("ssh_command", String),
    Column("lock_wait", Integer),
    Column("passcommand", String),
    Column("has_passphrase", Boolean, nullable=False, default=False),
    Column("created_at", Integer, nullable=False, default=0),
    Column("upload_ratelimit", Integer, nullable=False, default=0, server_default=text("0")),
    # The filesystem UUID of the removable disk it lives on ('' = not removable).
    Column("device", String, nullable=False, default="", server_default=text("''")),
    Column("automount", Boolean, nullable=False, default=False, server_default=text("0")),
    Column("eject_after", Boolean, nullable=False, default=False, server_default=text("0")),
    sqlite_autoincrement=True,
)

PROFILES = Table(
    "profiles",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String, unique=True, nullable=False),
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="RESTRICT"),
        nullable=False,
    ),
    Column("sources", JSON, nullable=False),
    Column("excludes", JSON, nullable=False, default=list),
    Column("compression", String),
    Column("archive_template", String, nullable=False),
    Column("keep_within", String),
    Column("keep_hourly", Integer, nullable=False, default=0),
    Column("keep_daily", Integer, nullable=False, default=0),
    Column("keep_weekly", Integer, nullable=False, default=0),
    Column("keep_monthly", Integer, nullable=False, default=0),
    Column("keep_yearly", Integer, nullable=False, default=0),
    Column("prune_after", Boolean, nullable=False, default=False),
    Column("compact_after", Boolean, nullable=False, default=False),
    Column("check_every", Integer, nullable=False, default=0),
    Column("backups_since_check", Integer, nullable=False, default=0),
    Column("pre_command", Text),
    Column("post_command", Text),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("max_age", Integer, nullable=False, default=0),
    Column("inhibit_sleep", Boolean, nullable=False, default=True),
    Column("one_file_system", Boolean, nullable=False, default=False),
    Column("created_at", Integer, nullable=False, default=0),
    Column("nice", Integer, nullable=False, default=0, server_default=text("0")),
    Column("ionice", String, nullable=False, default="", server_default=text("''")),
    Column("blackout", JSON, nullable=False, default=list, server_default=text("'[]'")),
    sqlite_autoincrement=True,
)

SCHEDULES = Table(
    "schedules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "profile_id",
        Integer,
        ForeignKey("profiles.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("action", String, nullable=False),
    Column("spec", String, nullable=False),
    Column("timezone", String),
    Column("catch_up", Boolean, nullable=False, default=True),
    Column("catch_up_window", Integer, nullable=False, default=0),
    Column("randomized_delay", Integer, nullable=False, default=0),
    Column("skip_on_battery", Boolean, nullable=False, default=False),
    Column("skip_on_metered", Boolean, nullable=False, default=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("paused", Boolean, nullable=False, default=False),
    Column("paused_until", Integer, nullable=False, default=0),
    # The last occurrence handled (run, skipped or coalesced): catch-up counts from here.
    Column("anchor", Integer, nullable=False, default=0),
    Column("created_at", Integer, nullable=False, default=0),
    Column("retries", Integer, nullable=False, default=0, server_default=text("0")),
    Column(
        "retry_delay",
        Integer,
        nullable=False,
        default=300_000_000,
        server_default=text("300000000"),
    ),
    Column(
        "min_interval",
        Integer,
        nullable=False,
        default=86_400_000_000,
        server_default=text("86400000000"),
    ),
    sqlite_autoincrement=True,
)

JOBS = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("type", String, nullable=False),
    Column("status", String, nullable=False),
    Column("trigger", String, nullable=False),
    Column("profile", String, nullable=False, default=""),
    Column("repository", String, nullable=False),
    Column("repository_id", Integer, nullable=False),
    Column("schedule_id", Integer, nullable=False, default=0),
    Column("parent_id", Integer, nullable=False, default=0),
    Column("requeued_from", Integer, nullable=False, default=0),
    Column("scheduled_for", Integer, nullable=False, default=0),
    Column("created_at", Integer, nullable=False, default=0),
    Column("queued_at", Integer, nullable=False, default=0),
    Column("started_at", Integer, nullable=False, default=0),
    Column("finished_at", Integer, nullable=False, default=0),
    Column("skip_reason", String, nullable=False, default=""),
    Column("blocked_by", String, nullable=False, default=""),
    Column("message", Text, nullable=False, default=""),
    Column("exit_code", Integer, nullable=False, default=-1),
    Column("archive", String, nullable=False, default=""),
    Column("progress", Float, nullable=False, default=-1.0),
    Column("progress_message", Text, nullable=False, default=""),
    Column("current_file", Text, nullable=False, default=""),
    Column("nfiles", Integer, nullable=False, default=0),
    Column("original_size", Integer, nullable=False, default=0),
    Column("compressed_size", Integer, nullable=False, default=0),
    Column("deduplicated_size", Integer, nullable=False, default=0),
    Column("rate", Float, nullable=False, default=0.0),
    Column("eta", Integer, nullable=False, default=0),
    Column("duration", Float, nullable=False, default=0.0),
    Column("options", JSON, nullable=False, default=dict),
    Column("pid", Integer, nullable=False, default=0),
    Column("pid_start_time", Integer, nullable=False, default=0),
    Column("log_path", String, nullable=False, default=""),
    # A backup's repository size after it (borg's unique_csize), for RepositoryStats.
    Column("repository_size", Integer, nullable=False, default=0, server_default=text("0")),
    # The store itself guarantees "never two borg processes on one repository".
    Index(
        "ix_jobs_one_running_per_repository",
        "repository_id",
        unique=True,
        sqlite_where=text("status = 'running'"),
    ),
    # ...and "one scheduled intent per schedule" (a retry waits beside it).
    Index(
        "ix_jobs_one_intent_per_schedule",
        "schedule_id",
        unique=True,
        sqlite_where=text("status = 'scheduled' AND schedule_id != 0 AND \"trigger\" != 'retry'"),
    ),
    Index("ix_jobs_status", "status"),
    Index("ix_jobs_profile", "profile", "id"),
    Index("ix_jobs_repository", "repository", "id"),
    Index("ix_jobs_created", "created_at"),
    # "The newest successful backup of a profile" (overdue, ListProfiles, restore).
    Index("ix_jobs_profile_finished", "profile", "finished_at", "id"),
    # "When did a backup, prune, compact or check last end well here" (ListRepositories).
    Index(
        "ix_jobs_repository_type_status_finished", "repository_id", "type", "status", "finished_at"
    ),
    sqlite_autoincrement=True,
)

# The archive cache: what `borg list`/`info` and borgd's own jobs said each repository
# holds, so ListArchives answers at once (also while a backup holds borg's lock).
# `archive_id` is borg's hex id; `job_id` the job that made it (0: not made by borgd).
ARCHIVES = Table(
    "archives",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String, nullable=False),
    Column("archive_id", String, nullable=False),
    Column("profile", String, nullable=False, default=""),
    Column("start", Integer, nullable=False, default=0),
    Column("end", Integer, nullable=False, default=0),
    Column("nfiles", Integer, nullable=False, default=0),
    Column("original_size", Integer, nullable=False, default=0),
    Column("compressed_size", Integer, nullable=False, default=0),
    Column("deduplicated_size", Integer, nullable=False, default=0),
    Column("comment", Text, nullable=False, default=""),
    Column("job_id", Integer, nullable=False, default=0),
    Column("checkpoint", Boolean, nullable=False, default=False),
    # borg's figures are known (from the `create` that made it, or an `info` of it)
    Column("figures", Boolean, nullable=False, default=False, server_default=text("0")),
    UniqueConstraint("repository_id", "name"),
    Index("ix_archives_repository_start", "repository_id", "start"),
    sqlite_autoincrement=True,
)

# Notifiers: where borgd tells the world.  The URL carries tokens: it is kept with
# the secrets (like a passphrase), never here; `host` is what may be shown of it.
NOTIFIERS = Table(
    "notifiers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String, nullable=False, unique=True),
    Column("kind", String, nullable=False),
    Column("events", JSON, nullable=False),
    Column("profiles", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("host", String, nullable=False, default=""),
    Column("created_at", Integer, nullable=False, default=0),
    sqlite_autoincrement=True,
)

# The outbox: every event a notifier wants is a row here before anything is sent.
# `key` (notifier, event, subject) makes a second insert of the same event a no-op,
# so a restart or a replay sends it once; rows of a removed notifier stay (dropped).
DELIVERIES = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("notifier_id", Integer, nullable=False),
    Column("notifier", String, nullable=False),
    Column("event", String, nullable=False),
    Column("job_id", Integer, nullable=False, default=0),
    Column("key", String, nullable=False, unique=True),
    Column("status", String, nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=False, default=""),
    Column("created_at", Integer, nullable=False),
    Column("sent_at", Integer, nullable=False, default=0),
    Column("next_attempt_at", Integer, nullable=False, default=0),
    Column("payload", JSON, nullable=False),
    Index("ix_deliveries_status_notifier", "status", "notifier_id", "id"),
    sqlite_autoincrement=True,
)

# Small persisted daemon state: the global pause.  Its key is a name, not an id.
SETTINGS = Table(
    "settings",
    metadata,
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
)
