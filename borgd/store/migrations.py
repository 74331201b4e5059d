"""Schema migrations: numbered steps recorded in SQLite's `PRAGMA user_version`.

Why not Alembic: the store is one embedded SQLite file owned by one daemon;
a list of steps applied in one transaction each (with the new user_version),
at start, is all it needs and is read at a glance.  A step is a tuple of SQL
statements, or a `Rebuild` for what SQLite's ALTER TABLE cannot do.  A step
is never edited once released: a change is a new step.
`tests/unit/test_store.py` checks that the migrated schema equals `models.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Rebuild:
    """Give a table a new definition by SQLite's 12-step procedure
    (https://www.sqlite.org/lang_altertable.html#otheralter): with foreign keys
    off, in one transaction, create `new_<table>`, copy every row, drop the old
    table, rename the new one, re-create the old table's indexes from their
    own SQL (partial ones included), then `PRAGMA foreign_key_check`.

    `create` is the new CREATE TABLE statement, naming the table `new_<table>`.
    `id_floor` lists the (table, column) pairs whose values are ids of this
    table: an AUTOINCREMENT table's sqlite_sequence starts at their maximum,
    so an id some row still names (an old job's schedule_id) is never handed
    out again.
    """

    table: str
    create: str
    id_floor: tuple[tuple[str, str], ...] = ()


def _rebuild(conn: Connection, step: Rebuild) -> None:
    new = f"new_{step.table}"
    indexes = [
        row[0]
        for row in conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger')"
            " AND sql IS NOT NULL",
            (step.table,),
        )
    ]
    columns = ", ".join(
        f'"{row[1]}"' for row in conn.exec_driver_sql(f'PRAGMA table_info("{step.table}")')
    )
    conn.exec_driver_sql(step.create)
    conn.exec_driver_sql(
        f'INSERT INTO "{new}" ({columns}) SELECT {columns} FROM "{step.table}" ORDER BY rowid'
    )
    conn.exec_driver_sql(f'DROP TABLE "{step.table}"')
    conn.exec_driver_sql(f'ALTER TABLE "{new}" RENAME TO "{step.table}"')
    for sql in indexes:
        conn.exec_driver_sql(sql)
    if step.id_floor:
        floor = " UNION ALL ".join(
            f'SELECT MAX("{column}") AS n FROM "{table}"' for table, column in step.id_floor
        )
        conn.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = ?", (step.table,))
        conn.exec_driver_sql(
            "INSERT INTO sqlite_sequence (name, seq)"
            f" SELECT ?, COALESCE(MAX(n), 0) FROM ({floor})",
            (step.table,),
        )


# Version 3: ids are never reused.  Every table with an integer id becomes
# `INTEGER PRIMARY KEY AUTOINCREMENT`; rows, indexes and foreign keys are kept,
# and each sequence starts at the highest id still in the store or named by
# another row.  (Before this version SQLite handed the highest id out again
# once its row was deleted; an id reused that way before the upgrade stays
# as it is.)
_V3: tuple[Rebuild, ...] = (
    Rebuild(
        "repositories",
        """
        CREATE TABLE new_repositories (
        id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
        name VARCHAR NOT NULL,
        url VARCHAR NOT NULL,
        encryption VARCHAR NOT NULL,
        ssh_command VARCHAR,
        lock_wait INTEGER,
        passcommand VARCHAR,
        has_passphrase BOOLEAN NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (name),
        UNIQUE (url)
        )
        """,
        id_floor=(
            ("repositories", "id"),
            ("profiles", "repository_id"),
            ("jobs", "repository_id"),
        ),
    ),
    Rebuild(
        "profiles",
        """
        CREATE TABLE new_profiles (
        id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
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
        UNIQUE (name),
        FOREIGN KEY(repository_id) REFERENCES repositories (id) ON DELETE RESTRICT
        )
        """,
        id_floor=(("profiles", "id"), ("schedules", "profile_id")),
    ),
    Rebuild(
        "schedules",
        """
        CREATE TABLE new_schedules (
        id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
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
        FOREIGN KEY(profile_id) REFERENCES profiles (id) ON DELETE CASCADE
        )
        """,
        id_floor=(("schedules", "id"), ("jobs", "schedule_id")),
    ),
    Rebuild(
        "jobs",
        """
        CREATE TABLE new_jobs (
        id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
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
        log_path VARCHAR NOT NULL
        )
        """,
        id_floor=(("jobs", "id"), ("jobs", "parent_id"), ("jobs", "requeued_from")),
    ),
)

# Version 4: the archive cache, and an index for ListRepositories' last_* times.
_V4: tuple[str, ...] = (
    """
    CREATE TABLE archives (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    repository_id INTEGER NOT NULL,
    name VARCHAR NOT NULL,
    archive_id VARCHAR NOT NULL,
    profile VARCHAR NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    nfiles INTEGER NOT NULL,
    original_size INTEGER NOT NULL,
    compressed_size INTEGER NOT NULL,
    deduplicated_size INTEGER NOT NULL,
    comment TEXT NOT NULL,
    job_id INTEGER NOT NULL,
    checkpoint BOOLEAN NOT NULL,
    UNIQUE (repository_id, name),
    FOREIGN KEY(repository_id) REFERENCES repositories (id) ON DELETE CASCADE
    )
    """,
    "CREATE INDEX ix_archives_repository_start ON archives (repository_id, start)",
    "ALTER TABLE jobs ADD COLUMN repository_size INTEGER DEFAULT 0 NOT NULL",
    "CREATE INDEX ix_jobs_repository_type_status_finished "
    "ON jobs (repository_id, type, status, finished_at)",
)

# Version 5: which archives' figures are known, so those of archives borgd did not
# make are read once with `borg info` (an empty archive's figures are all 0).
_V5: tuple[str, ...] = (
    "ALTER TABLE archives ADD COLUMN figures BOOLEAN DEFAULT 0 NOT NULL",
    "UPDATE archives SET figures = 1 "
    "WHERE nfiles > 0 OR original_size > 0 OR compressed_size > 0 OR deduplicated_size > 0",
)

# Version 6: notifiers and the outbox of their deliveries.
_V6: tuple[str, ...] = (
    """
    CREATE TABLE notifiers (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    name VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    events JSON NOT NULL,
    profiles JSON NOT NULL,
    enabled BOOLEAN NOT NULL,
    host VARCHAR NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (name)
    )
    """,
    """
    CREATE TABLE deliveries (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    notifier_id INTEGER NOT NULL,
    notifier VARCHAR NOT NULL,
    event VARCHAR NOT NULL,
    job_id INTEGER NOT NULL,
    "key" VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    sent_at INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    payload JSON NOT NULL,
    UNIQUE ("key")
    )
    """,
    "CREATE INDEX ix_deliveries_status_notifier ON deliveries (status, notifier_id, id)",
)

# Version 7: limits: a profile's nice and ionice, a repository's upload rate limit.
_V7: tuple[str, ...] = (
    "ALTER TABLE profiles ADD COLUMN nice INTEGER DEFAULT 0 NOT NULL",
    "ALTER TABLE profiles ADD COLUMN ionice VARCHAR DEFAULT '' NOT NULL",
    "ALTER TABLE repositories ADD COLUMN upload_ratelimit INTEGER DEFAULT 0 NOT NULL",
)

# Version 8: triggers, retries, windows: a repository's removable disk, a schedule's
# retries and on-connect interval, a profile's blackout windows.
_V8: tuple[str, ...] = (
    "ALTER TABLE repositories ADD COLUMN device VARCHAR DEFAULT '' NOT NULL",
    "ALTER TABLE repositories ADD COLUMN automount BOOLEAN DEFAULT 0 NOT NULL",
    "ALTER TABLE repositories ADD COLUMN eject_after BOOLEAN DEFAULT 0 NOT NULL",
    "ALTER TABLE profiles ADD COLUMN blackout JSON DEFAULT '[]' NOT NULL",
    "ALTER TABLE schedules ADD COLUMN retries INTEGER DEFAULT 0 NOT NULL",
    "ALTER TABLE schedules ADD COLUMN retry_delay INTEGER DEFAULT 300000000 NOT NULL",
    "ALTER TABLE schedules ADD COLUMN min_interval INTEGER DEFAULT 86400000000 NOT NULL",
    # A retry waits as a `scheduled` row beside its schedule's next occurrence.
    "DROP INDEX ix_jobs_one_intent_per_schedule",
    """
    CREATE UNIQUE INDEX ix_jobs_one_intent_per_schedule ON jobs (schedule_id)
    WHERE status = 'scheduled' AND schedule_id != 0 AND "trigger" != 'retry'
    """,
)

Step = tuple[str, ...] | tuple[Rebuild, ...]
MIGRATIONS: tuple[Step, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8)
LATEST = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    """The store was written by a newer borgd."""


class MigrationFailed(RuntimeError):
    """A step left the store inconsistent; it was rolled back."""


def current_version(conn: Connection) -> int:
    return int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())


@contextmanager
def _step_transaction(conn: Connection, *, foreign_keys_off: bool) -> Iterator[None]:
    """One explicit transaction for one step, foreign keys off around it if asked.

    Explicit because Python's sqlite3 opens transactions only before DML, so
    DDL would otherwise commit statement by statement.  `PRAGMA foreign_keys`
    is a no-op inside a transaction, so it is switched (and checked) outside.
    """
    restore_fk = False
    if foreign_keys_off:  # SQLite's 12-step rebuild: steps 1, 2, 10, 11 and 12
        restore_fk = bool(conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one())
        conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
        if conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one():
            raise MigrationFailed("cannot turn foreign keys off: a transaction is open")
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield
            if foreign_keys_off:
                bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if bad:
                    raise MigrationFailed(f"foreign keys broken by the migration: {bad[:5]}")
        except BaseException:
            conn.exec_driver_sql("ROLLBACK")
            raise
        conn.exec_driver_sql("COMMIT")
    finally:
        if restore_fk:
            conn.exec_driver_sql("PRAGMA foreign_keys = ON")


def migrate(conn: Connection) -> int:
    """Bring the schema to LATEST; returns the version found before."""
    found = current_version(conn)
    if found > LATEST:
        raise SchemaTooNew(
            f"the store has schema version {found}, this borgd knows up to {LATEST}: "
            "upgrade borgd or move the store aside"
        )
    for version in range(found + 1, LATEST + 1):
        step = MIGRATIONS[version - 1]
        rebuilds = [part for part in step if isinstance(part, Rebuild)]
        with _step_transaction(conn, foreign_keys_off=bool(rebuilds)):
            for part in step:
                if isinstance(part, Rebuild):
                    _rebuild(conn, part)
                else:
                    conn.execute(text(part))
            conn.exec_driver_sql(f"PRAGMA user_version = {version}")
    return found
