"""The store: migrations equal the models, file mode, CAS transitions, invariants in SQL,
ids never reused."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading

import pytest
from sqlalchemy import create_engine

from borgd.core.jobs import IllegalTransition, JobStatus
from borgd.store import Store
from borgd.store.catalog import SCHEDULES, Conflict
from borgd.store.engine import StoreUnavailable, open_engine
from borgd.store.jobs import IntentStore, JobFilter, StaleState
from borgd.store.migrations import LATEST, MIGRATIONS, SchemaTooNew
from borgd.store.models import metadata


def schema(conn: sqlite3.Connection) -> dict[str, object]:
    """Columns, AUTOINCREMENT, foreign keys, and every index with its columns,
    uniqueness and (for a partial index) its SQL, per table."""
    tables = {}
    rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type='table' ORDER BY name")
    for name, sql in rows.fetchall():
        cols = [tuple(r[1:6]) for r in conn.execute(f"PRAGMA table_info({name})")]
        fks = sorted(tuple(r[2:]) for r in conn.execute(f"PRAGMA foreign_key_list({name})"))
        idx = sorted(
            (
                r[1],
                r[2],
                [c[2] for c in conn.execute(f"PRAGMA index_info({r[1]})")],
                " ".join(
                    conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (r[1],))
                    .fetchone()[0]
                    .split()
                )
                if r[4]
                else "",
            )
            for r in conn.execute(f"PRAGMA index_list({name})")
            if not r[1].startswith("sqlite_")
        )
        autoincrement = "AUTOINCREMENT" in (sql or "").upper()
        tables[name] = (cols, autoincrement, fks, idx)
    return tables


def modelled_schema(tmp_path) -> dict[str, object]:
    modelled = tmp_path / "models.db"
    engine = create_engine(f"sqlite:///{modelled}")
    metadata.create_all(engine)
    engine.dispose()
    with sqlite3.connect(modelled) as conn:
        return schema(conn)


def test_migrated_schema_equals_models(tmp_path):
    migrated = tmp_path / "migrated.db"
    open_engine(migrated).dispose()
    with sqlite3.connect(migrated) as a:
        assert schema(a) == modelled_schema(tmp_path)
        assert a.execute("PRAGMA user_version").fetchone()[0] == LATEST
    integer_ids = {"repositories", "profiles", "schedules", "jobs", "archives"}
    integer_ids |= {"notifiers", "deliveries"}
    assert {name for name, t in schema(a).items() if t[1]} == integer_ids  # type: ignore[index]


def test_the_store_imports_no_orm():
    """sqlalchemy.orm costs ~6 MiB and a tenth of a second at every start."""
    code = "import sys, borgd.daemon; sys.exit('sqlalchemy.orm' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_store_file_is_private_and_uses_wal(tmp_path):
    path = tmp_path / "state" / "borgd.sqlite3"
    Store.open(path).close()
    assert os.stat(path).st_mode & 0o777 == 0o600
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "db"
    Store.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    with pytest.raises(StoreUnavailable) as err:
        Store.open(path)
    assert isinstance(err.value.__cause__, SchemaTooNew)


def test_corrupt_store_is_a_clear_error(tmp_path):
    path = tmp_path / "db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreUnavailable, match="cannot open the store"):
        Store.open(path)


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "db")
    yield s
    s.close()


def new_job(store: Store, **fields):
    base = dict(
        type="backup",
        status="queued",
        trigger="manual",
        profile="p",
        repository="r",
        repository_id=1,
        created_at=1,
        queued_at=1,
        options={},
    )
    return store.jobs.create(**{**base, **fields})


def test_transition_is_compare_and_set(store):
    job = new_job(store)
    store.jobs.transition(job.id, JobStatus.RUNNING, started_at=5)
    with pytest.raises(IllegalTransition):
        store.jobs.transition(job.id, JobStatus.QUEUED)
    done = store.jobs.transition(job.id, JobStatus.SUCCEEDED, finished_at=9)
    assert done.status == "succeeded" and done.finished_at == 9
    with pytest.raises(IllegalTransition):
        store.jobs.transition(job.id, JobStatus.CANCELLED)


def test_only_one_of_two_racing_transitions_wins(store):
    job = new_job(store)
    results = []

    def attempt(dst):
        while True:
            try:
                store.jobs.transition(job.id, dst, expect=[JobStatus.QUEUED])
                results.append(dst)
            except (StaleState, IllegalTransition):
                results.append(None)
            except StoreUnavailable:  # another writer held the lock past 25 ms: again,
                continue  # as the daemon's loops do once the store is back
            return

    threads = [
        threading.Thread(target=attempt, args=(d,))
        for d in (JobStatus.RUNNING, JobStatus.CANCELLED) * 4
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([r for r in results if r is not None]) == 1


def test_database_refuses_two_running_jobs_on_one_repository(store):
    a, b = new_job(store), new_job(store)
    other_repo = new_job(store, repository_id=2)
    store.jobs.transition(a.id, JobStatus.RUNNING)
    with pytest.raises(StaleState):
        store.jobs.transition(b.id, JobStatus.RUNNING)
    assert store.jobs.get(b.id).status == "queued"
    store.jobs.transition(other_repo.id, JobStatus.RUNNING)


def test_an_intent_settles_only_along_the_state_machine(store):
    intent = new_job(store, status="scheduled", schedule_id=7, scheduled_for=10)
    with pytest.raises(IllegalTransition):
        IntentStore(store.engine, SCHEDULES).settle(
            schedule_id=7, anchor=None, intent_id=intent.id, dst=JobStatus.RUNNING
        )
    assert store.jobs.get(intent.id).status == "scheduled"


def test_database_refuses_two_intents_for_one_schedule(store):
    new_job(store, status="scheduled", schedule_id=7)
    with pytest.raises(StaleState):
        new_job(store, status="scheduled", schedule_id=7)
    new_job(store, status="scheduled", schedule_id=8)


def test_query_filters_combine_newest_first(store):
    for i in range(6):
        new_job(
            store,
            profile="a" if i % 2 else "b",
            type="backup" if i < 4 else "prune",
            status="queued" if i < 3 else "skipped",
            created_at=100 + i,
        )
    rows = store.jobs.query(
        JobFilter(profiles=("a",), types=("backup",), statuses=("queued", "skipped"))
    )
    assert [r.created_at for r in rows] == [103, 101]
    page = store.jobs.query(JobFilter(limit=2, offset=1))
    assert [r.created_at for r in page] == [104, 103]
    assert [r.created_at for r in store.jobs.query(JobFilter(since=104))] == [105, 104]


def test_expire_keeps_the_newest_per_profile_and_live_jobs(store):
    for i in range(5):
        new_job(store, status="succeeded", finished_at=1000 + i, profile="p")
    live = new_job(store, status="queued", profile="p")
    gone = store.jobs.expire(older_than=0, keep_per_profile=2)
    assert len(gone) == 3
    left = store.jobs.query(JobFilter())
    assert live.id in {r.id for r in left}
    assert sorted(r.finished_at for r in left if r.status == "succeeded") == [1003, 1004]


def test_an_older_store_is_migrated_in_place_and_keeps_its_jobs(tmp_path):
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        conn.execute(
            'INSERT INTO jobs (type, status, "trigger", profile, repository, repository_id,'
            " schedule_id, parent_id, requeued_from, scheduled_for, created_at, queued_at,"
            " started_at, finished_at, skip_reason, blocked_by, message, exit_code, archive,"
            " progress, progress_message, current_file, nfiles, original_size, compressed_size,"
            " deduplicated_size, rate, eta, duration, options, pid, pid_start_time, log_path)"
            " VALUES ('backup','succeeded','manual','p','r',1,0,0,0,0,1,1,1,2,'','','',0,'a',"
            "1.0,'','',3,0,0,0,0,0,0,'{}',0,0,'')"
        )
    store = Store.open(path)
    try:
        assert store.jobs.get(1).nfiles == 3
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
    finally:
        store.close()


# -- ids are never reused ----------------------------------------------------


def add_repository(store: Store, name: str) -> int:
    return store.catalog.add_repository({"name": name, "url": f"/backups/{name}"})


def add_profile(store: Store, name: str, repo_id: int) -> int:
    return store.catalog.add_profile(
        {"name": name, "repository_id": repo_id, "sources": ["/src"], "archive_template": "a"}
    )


def add_schedule(store: Store, profile_id: int) -> int:
    return store.catalog.add_schedule(
        {"profile_id": profile_id, "action": "backup", "spec": "daily"}
    )


def test_a_removed_schedule_id_goes_to_no_new_schedule(store):
    profile = add_profile(store, "p", add_repository(store, "r"))
    first, newest = add_schedule(store, profile), add_schedule(store, profile)
    new_job(store, status="succeeded", schedule_id=newest, finished_at=5)
    store.catalog.remove_schedule(newest)
    again = add_schedule(store, profile)
    assert again not in (first, newest)
    old = store.jobs.query(JobFilter())[0]
    assert old.schedule_id == newest  # the old job names no live schedule
    assert [s.id for s in store.catalog.schedules()] == [first, again]


def test_removed_repository_and_profile_ids_are_not_reused(store):
    repos = [add_repository(store, "r1"), add_repository(store, "r2")]
    store.catalog.remove_repository(repos[-1])
    assert add_repository(store, "r3") > repos[-1]
    profiles = [add_profile(store, "p1", repos[0]), add_profile(store, "p2", repos[0])]
    store.catalog.remove_profile(profiles[-1])
    assert add_profile(store, "p3", repos[0]) > profiles[-1]


def test_a_job_id_removed_by_retention_is_not_reused(store):
    jobs = [new_job(store, status="succeeded", finished_at=10 + i) for i in range(3)]
    gone = store.jobs.expire(older_than=0, keep_per_profile=2)  # drops the oldest only
    assert [j.id for j in gone] == [jobs[0].id]
    gone = store.jobs.expire(older_than=100, keep_per_profile=100)  # now the newest too
    assert jobs[-1].id in {j.id for j in gone}
    assert store.jobs.count() == 0
    assert new_job(store).id > jobs[-1].id


def version_2_store(path) -> None:
    """A store as borgd wrote it at schema version 2, with rows in every table: two
    repositories, two profiles, three schedules (the newest removed, an old job still
    naming it), and jobs linked to schedules, parents and requeues."""
    with sqlite3.connect(path) as conn:
        for step in MIGRATIONS[:2]:
            for statement in step:
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 2")
        conn.execute(
            "INSERT INTO repositories VALUES (1,'r1','/b/r1','none',NULL,NULL,NULL,0,1),"
            " (2,'r2','/b/r2','none','ssh -i k',30,'pass',1,2)"
        )
        conn.execute(
            "INSERT INTO profiles VALUES"
            " (1,'p1',1,'[\"/a\"]','[]',NULL,'p1-{now}',NULL,"
            "0,7,4,0,0,1,1,0,0,NULL,NULL,1,0,1,0,1),"
            " (2,'p2',2,'[\"/b\"]','[]','lz4','p2-{now}','2d',0,0,0,0,0,0,0,3,1,'x','y',1,9,1,1,2)"
        )
        conn.execute(
            "INSERT INTO schedules VALUES (1,1,'backup','daily',NULL,1,0,0,0,0,1,0,0,0,1),"
            " (2,2,'prune','weekly','UTC',1,0,0,1,1,1,1,99,5,2),"
            " (3,2,'check','monthly',NULL,1,0,0,0,0,1,0,0,0,3)"
        )
        columns = (
            'type, status, "trigger", profile, repository, repository_id, schedule_id,'
            " parent_id, requeued_from, scheduled_for, created_at, queued_at, started_at,"
            " finished_at, skip_reason, blocked_by, message, exit_code, archive, progress,"
            " progress_message, current_file, nfiles, original_size, compressed_size,"
            " deduplicated_size, rate, eta, duration, options, pid, pid_start_time, log_path"
        )
        jobs = [
            # id 1: a finished scheduled backup of schedule 1; id 2 its chained prune
            ("backup", "succeeded", "schedule", "p1", "r1", 1, 1, 0, 0, 10, 10, 10, 11, 20),
            ("prune", "succeeded", "chain", "p1", "r1", 1, 0, 1, 0, 0, 20, 20, 21, 22),
            # id 3: a check of schedule 3 (removed since); id 4: a failed backup, id 5 its requeue
            ("check", "succeeded", "schedule", "p2", "r2", 2, 3, 0, 0, 30, 30, 30, 31, 32),
            ("backup", "failed", "manual", "p2", "r2", 2, 0, 0, 0, 0, 40, 40, 41, 42),
            ("backup", "running", "requeue", "p2", "r2", 2, 0, 0, 4, 0, 50, 50, 51, 0),
            # ids 6, 7: the intents of schedules 1 and 2
            ("backup", "scheduled", "schedule", "p1", "r1", 1, 1, 0, 0, 900, 60, 0, 0, 0),
            ("prune", "scheduled", "schedule", "p2", "r2", 2, 2, 0, 0, 950, 70, 0, 0, 0),
        ]
        for row in jobs:
            conn.execute(
                f"INSERT INTO jobs ({columns}) VALUES ({', '.join('?' * 14)},"
                " '', '', 'msg', 0, 'arch', 0.5, 'pm', '/f', 3, 4, 5, 6, 1.5, 7, 2.5,"
                " '{\"k\": 1}', 0, 0, '/log')",
                row,
            )
        conn.execute("INSERT INTO settings VALUES ('paused', '1'), ('paused_until', '77')")
        conn.execute("DELETE FROM schedules WHERE id = 3")  # removed; job 3 still names it


def dump(path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(path) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("repositories", "profiles", "schedules", "jobs", "settings")
        }


def test_a_version_2_store_is_rebuilt_keeping_rows_indexes_and_keys(tmp_path):
    path = tmp_path / "v2.db"
    version_2_store(path)
    before = dump(path)
    store = Store.open(path)
    try:
        after = dump(path)
        # Version 4 added jobs.repository_size, 0 for every older job.
        assert {row[-1] for row in after["jobs"]} == {0}
        after["jobs"] = [row[:-1] for row in after["jobs"]]
        # Version 7 added profiles.nice and .ionice, repositories.upload_ratelimit;
        # version 8 profiles.blackout, repositories.device, .automount, .eject_after and
        # schedules.retries, .retry_delay (5 min) and .min_interval (1 day).
        assert {row[-3:] for row in after["profiles"]} == {(0, "", "[]")}
        assert {row[-4:] for row in after["repositories"]} == {(0, "", 0, 0)}
        assert {row[-3:] for row in after["schedules"]} == {(0, 300_000_000, 86_400_000_000)}
        after["profiles"] = [row[:-3] for row in after["profiles"]]
        after["repositories"] = [row[:-4] for row in after["repositories"]]
        after["schedules"] = [row[:-3] for row in after["schedules"]]
        assert after == before  # every row, every value, every id
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert schema(conn) == modelled_schema(tmp_path)
            sequence = dict(conn.execute("SELECT name, seq FROM sqlite_sequence"))
        # The highest id in each table, or named by another row (job 3 still names schedule 3).
        assert sequence == {"repositories": 2, "profiles": 2, "schedules": 3, "jobs": 7}
        with store.engine.connect() as conn:  # the daemon's connections keep foreign keys on
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1

        # The invariants the indexes and keys carry still hold.
        with pytest.raises(StaleState):  # job 5 runs on repository 2
            new_job(store, status="running", repository_id=2)
        with pytest.raises(StaleState):  # schedule 1 has its intent (job 6)
            new_job(store, status="scheduled", schedule_id=1)
        with pytest.raises(Conflict):  # profile p1 uses repository 1
            store.catalog.remove_repository(1)
        store.catalog.remove_profile(2)  # cascades to schedule 2
        assert [s.id for s in store.catalog.schedules()] == [1]
        assert store.catalog.setting("paused_until") == "77"

        # No id comes back: not the removed schedule 3 that job 3 names, nor a removed top id.
        assert add_schedule(store, 1) == 4
        store.catalog.remove_schedule(4)
        assert add_schedule(store, 1) == 5
        assert store.jobs.get(3).schedule_id == 3
        assert new_job(store).id == 8
    finally:
        store.close()


def test_a_failed_rebuild_is_rolled_back_and_the_file_kept(tmp_path):
    path = tmp_path / "v2.db"
    version_2_store(path)
    with sqlite3.connect(path) as conn:  # a profile whose repository is gone (keys were off)
        conn.execute("DELETE FROM repositories WHERE id = 2")
    before = dump(path)
    with pytest.raises(StoreUnavailable, match="foreign keys"):
        Store.open(path)
    assert dump(path) == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert (
            "AUTOINCREMENT"
            not in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'jobs'").fetchone()[0]
        )


def test_a_state_folder_deleted_whole_leaves_the_store_unavailable_not_empty(tmp_path):
    """No second name to link back: the store says so, and no empty store takes its place
    (the open file still holds everything; a restart would otherwise start from nothing)."""
    state = tmp_path / "state"
    state.mkdir()
    store = Store.open(state / "db")
    store.catalog.set_setting("paused", "1")
    for name in os.listdir(state):
        os.unlink(state / name)
    state.rmdir()
    with pytest.raises(StoreUnavailable, match="was deleted and cannot be put back"):
        store.catalog.setting("paused")
    assert store.health.state.startswith("unavailable: the store file")
    state.mkdir()
    with pytest.raises(StoreUnavailable):
        store.probe()
    assert os.listdir(state) == []


def test_rows_come_back_as_typed_records(store):
    """A job read back has enum fields (a misspelt status cannot compare equal by
    accident), "no skip reason" is None, and a record changed in memory is converted
    as the store would (what the events carry)."""
    from borgd.core.jobs import JobType, SkipReason, Trigger

    job = store.jobs.get(new_job(store).id)
    assert job.status is JobStatus.QUEUED and job.type is JobType.BACKUP
    assert job.trigger is Trigger.MANUAL and job.skip_reason is None
    skipped = store.jobs.transition(
        job.id, JobStatus.SKIPPED, skip_reason="on-battery", finished_at=3
    )
    assert skipped.skip_reason is SkipReason.ON_BATTERY
    assert skipped.as_dict()["skip_reason"] == "on-battery"
    moved = job.but(status="running", trigger="chain")
    assert moved.status is JobStatus.RUNNING and moved.trigger is Trigger.CHAIN
    assert job.status is JobStatus.QUEUED  # records are immutable
    with pytest.raises(ValueError):
        job.but(status="finished")  # no such status
    with pytest.raises(TypeError):
        job.but(colour="red")  # no such field
    with pytest.raises(TypeError):  # a column the record lacks a value for
        type(job).from_row({k: v for k, v in job.as_dict().items() if k != "pid"})
    assert type(job).from_row(job.as_dict()) == job


def test_version_4_archives_keep_their_figures_and_the_rest_are_asked_for(tmp_path) -> None:
    """Version 5 marks which cached archives' figures are known."""
    path = tmp_path / "v4.db"
    fresh = Store.open(path)
    repo = fresh.catalog.add_repository({"name": "r", "url": "/r"})
    fresh.close()
    with sqlite3.connect(path) as conn:  # back to version 4: no `figures` column
        conn.execute("ALTER TABLE archives DROP COLUMN figures")
        for undo in (  # and what later versions added
            "DROP TABLE notifiers",
            "DROP TABLE deliveries",
            "ALTER TABLE profiles DROP COLUMN nice",
            "ALTER TABLE profiles DROP COLUMN ionice",
            "ALTER TABLE repositories DROP COLUMN upload_ratelimit",
            "ALTER TABLE repositories DROP COLUMN device",
            "ALTER TABLE repositories DROP COLUMN automount",
            "ALTER TABLE repositories DROP COLUMN eject_after",
            "ALTER TABLE profiles DROP COLUMN blackout",
            "ALTER TABLE schedules DROP COLUMN retries",
            "ALTER TABLE schedules DROP COLUMN retry_delay",
            "ALTER TABLE schedules DROP COLUMN min_interval",
        ):
            conn.execute(undo)
        conn.execute("PRAGMA user_version = 4")
        conn.execute(
            f"INSERT INTO archives VALUES (1,{repo},'made','a1','web',1,2,3,100,50,10,'',7,0),"
            f" (2,{repo},'by-hand','a2','',3,4,0,0,0,0,'',0,0)"
        )
    store = Store.open(path)
    try:
        assert store.archives.without_figures(repo, 10) == ["by-hand"]
        assert {a.name: a.figures for a in store.archives.query(repo)} == {
            "made": True,
            "by-hand": False,
        }
    finally:
        store.close()


def test_deliveries_once_per_key_in_order_and_ended_ones_expire(tmp_path) -> None:
    from borgd.core.notifications import NotifierSettings

    store = Store.open(tmp_path / "d.db")
    try:
        hook = store.notifiers.add(
            "hook", NotifierSettings("webhook", ("job-failed",), (), True), "http://h", 1
        )
        first = store.notifiers.enqueue(hook, "job-failed", 7, "k7", {"a": 1}, now=10)
        assert store.notifiers.enqueue(hook, "job-failed", 7, "k7", {"a": 2}, now=11) is None
        second = store.notifiers.enqueue(hook, "job-failed", 8, "k8", {}, now=12)
        assert store.notifiers.waiting() == {hook.id: 10}
        assert store.notifiers.first_waiting(hook.id).id == first  # type: ignore[union-attr]
        store.notifiers.settle(first, status="sent", sent_at=20)  # type: ignore[arg-type]
        assert store.notifiers.first_waiting(hook.id).id == second  # type: ignore[union-attr]
        assert store.notifiers.forget(older_than=100) == 1  # only the ended one
        store.notifiers.remove("hook", "the notifier was removed")
        (row,) = store.notifiers.deliveries()
        assert (row.id, row.status, row.last_error) == (
            second,
            "dropped",
            "the notifier was removed",
        )
    finally:
        store.close()
