"""Schema migrations: numbered steps recorded in SQLite's `PRAGMA user_version`.

Why not Alembic: the store is one embedded SQLite file owned by one daemon;
a list of SQL steps applied in one transaction each, at start, is all it
needs and is read at a glance.  A step is never edited once released: a
change is a new step.  `tests/unit/test_store_migrations.py` checks that the
migrated schema equals `models.py`.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

# Version 1: the first schema.
_V1: tuple[str, ...] = (
    """
        CREATE TABLE jobs (
        id INTEGER NOT NULL,
        type VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        "trigger" VARCHAR NOT NULL,
        profile VARCHAR NOT NULL,
        repository VARCHAR NOT NULL,
        repository_id INTEGER NOT NULL,
        schedule_id INTEGER NOT NULL,
        parent_id INTEGER NOT NULL,
        requeued_from INTEGER NOT NULL,
        scheduled_for INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        queued_at INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        skip_reason VARCHAR NOT NULL,
        blocked_by VARCHAR NOT NULL,
        message TEXT NOT NULL,
        exit_code INTEGER NOT NULL,
        archive VARCHAR NOT NULL,
        progress FLOAT NOT NULL,
        progress_message TEXT NOT NULL,
        current_file TEXT NOT NULL,
        nfiles INTEGER NOT NULL,
        original_size INTEGER NOT NULL,
        compressed_size INTEGER NOT NULL,
        deduplicated_size INTEGER NOT NULL,
        rate FLOAT NOT NULL,
        eta INTEGER NOT NULL,
        duration FLOAT NOT NULL,
        options JSON NOT NULL,
        pid INTEGER NOT NULL,
        pid_start_time INTEGER NOT NULL,
        log_path VARCHAR NOT NULL,
        PRIMARY KEY (id)
        )
        """,
    """
        CREATE INDEX ix_jobs_created ON jobs (created_at)
        """,
    """
        CREATE UNIQUE INDEX ix_jobs_one_intent_per_schedule ON jobs (schedule_id)
        WHERE status = 'scheduled' AND schedule_id != 0
        """,
    """
        CREATE UNIQUE INDEX ix_jobs_one_running_per_repository ON jobs (repository_id)
        WHERE status = 'running'
        """,
    """
        CREATE INDEX ix_jobs_profile ON jobs (profile, id)
        """,
    """
        CREATE INDEX ix_jobs_repository ON jobs (repository, id)
        """,
    """
        CREATE INDEX ix_jobs_status ON jobs (status)
        """,
    """
        CREATE TABLE repositories (
        id INTEGER NOT NULL,
        name VARCHAR NOT NULL,
        url VARCHAR NOT NULL,
        encryption VARCHAR NOT NULL,
        ssh_command VARCHAR,
        lock_wait INTEGER,
        passcommand VARCHAR,
        has_passphrase BOOLEAN NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (name),
        UNIQUE (url)
        )
        """,
    """
        CREATE TABLE settings (
        "key" VARCHAR NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY ("key")
        )
        """,
    """
        CREATE TABLE profiles (
        id INTEGER NOT NULL,
        name VARCHAR NOT NULL,
        repository_id INTEGER NOT NULL,
        sources JSON NOT NULL,
        excludes JSON NOT NULL,
        compression VARCHAR,
        archive_template VARCHAR NOT NULL,
        keep_within VARCHAR,
        keep_hourly INTEGER NOT NULL,
        keep_daily INTEGER NOT NULL,
        keep_weekly INTEGER NOT NULL,
        keep_monthly INTEGER NOT NULL,
        keep_yearly INTEGER NOT NULL,
        prune_after BOOLEAN NOT NULL,
        compact_after BOOLEAN NOT NULL,
        check_every INTEGER NOT NULL,
        backups_since_check INTEGER NOT NULL,
        pre_command TEXT,
        post_command TEXT,
        enabled BOOLEAN NOT NULL,
        max_age INTEGER NOT NULL,
        inhibit_sleep BOOLEAN NOT NULL,
        one_file_system BOOLEAN NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (name),
        FOREIGN KEY(repository_id) REFERENCES repositories (id) ON DELETE RESTRICT
        )
        """,
    """
        CREATE TABLE schedules (
        id INTEGER NOT NULL,
        profile_id INTEGER NOT NULL,
        action VARCHAR NOT NULL,
        spec VARCHAR NOT NULL,
        timezone VARCHAR,
        catch_up BOOLEAN NOT NULL,
        catch_up_window INTEGER NOT NULL,
        randomized_delay INTEGER NOT NULL,
        skip_on_battery BOOLEAN NOT NULL,
        skip_on_metered BOOLEAN NOT NULL,
        enabled BOOLEAN NOT NULL,
        paused BOOLEAN NOT NULL,
        paused_until INTEGER NOT NULL,
        anchor INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(profile_id) REFERENCES profiles (id) ON DELETE CASCADE
        )
        """,
)

# Version 2: find a profile's newest finished job without scanning its history.
_V2: tuple[str, ...] = (
    "CREATE INDEX ix_jobs_profile_finished ON jobs (profile, finished_at, id)",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2)
LATEST = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    """The store was written by a newer borgd."""


def current_version(conn: Connection) -> int:
    return int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())


def migrate(conn: Connection) -> int:
    """Bring the schema to LATEST; returns the version found before."""
    found = current_version(conn)
    if found > LATEST:
        raise SchemaTooNew(
            f"the store has schema version {found}, this borgd knows up to {LATEST}: "
            "upgrade borgd or move the store aside"
        )
    for version in range(found + 1, LATEST + 1):
        for statement in MIGRATIONS[version - 1]:
            conn.execute(text(statement))
        conn.exec_driver_sql(f"PRAGMA user_version = {version}")
    return found
