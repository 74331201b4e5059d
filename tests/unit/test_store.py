"""The store: migrations equal the models, file mode, CAS transitions, invariants in SQL."""

from __future__ import annotations

import os
import sqlite3
import threading

import pytest
from sqlalchemy import create_engine

from borgd.core.jobs import IllegalTransition, JobStatus
from borgd.store import Store
from borgd.store.engine import StoreUnavailable, open_engine
from borgd.store.jobs import JobFilter, StaleState
from borgd.store.migrations import LATEST, SchemaTooNew
from borgd.store.models import Base


def schema(conn: sqlite3.Connection) -> dict[str, object]:
    tables = {}
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"):
        cols = [tuple(r[1:6]) for r in conn.execute(f"PRAGMA table_info({name})")]
        idx = sorted(
            (r[1], r[2])
            for r in conn.execute(f"PRAGMA index_list({name})")
            if not r[1].startswith("sqlite_")
        )
        tables[name] = (cols, idx)
    return tables


def test_migrated_schema_equals_models(tmp_path):
    migrated = tmp_path / "migrated.db"
    open_engine(migrated).dispose()
    modelled = tmp_path / "models.db"
    engine = create_engine(f"sqlite:///{modelled}")
    Base.metadata.create_all(engine)
    engine.dispose()
    with sqlite3.connect(migrated) as a, sqlite3.connect(modelled) as b:
        assert schema(a) == schema(b)
        assert a.execute("PRAGMA user_version").fetchone()[0] == LATEST


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
    store.jobs.transition(job["id"], JobStatus.RUNNING, started_at=5)
    with pytest.raises(IllegalTransition):
        store.jobs.transition(job["id"], JobStatus.QUEUED)
    done = store.jobs.transition(job["id"], JobStatus.SUCCEEDED, finished_at=9)
    assert done["status"] == "succeeded" and done["finished_at"] == 9
    with pytest.raises(IllegalTransition):
        store.jobs.transition(job["id"], JobStatus.CANCELLED)


def test_only_one_of_two_racing_transitions_wins(store):
    job = new_job(store)
    results = []

    def attempt(dst):
        try:
            store.jobs.transition(job["id"], dst, expect=[JobStatus.QUEUED])
            results.append(dst)
        except (StaleState, IllegalTransition):
            results.append(None)

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
    store.jobs.transition(a["id"], JobStatus.RUNNING)
    with pytest.raises(StaleState):
        store.jobs.transition(b["id"], JobStatus.RUNNING)
    assert store.jobs.get(b["id"])["status"] == "queued"
    store.jobs.transition(other_repo["id"], JobStatus.RUNNING)


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
    assert [r["created_at"] for r in rows] == [103, 101]
    page = store.jobs.query(JobFilter(limit=2, offset=1))
    assert [r["created_at"] for r in page] == [104, 103]
    assert [r["created_at"] for r in store.jobs.query(JobFilter(since=104))] == [105, 104]


def test_expire_keeps_the_newest_per_profile_and_live_jobs(store):
    for i in range(5):
        new_job(store, status="succeeded", finished_at=1000 + i, profile="p")
    live = new_job(store, status="queued", profile="p")
    gone = store.jobs.expire(older_than=0, keep_per_profile=2)
    assert len(gone) == 3
    left = store.jobs.query(JobFilter())
    assert live["id"] in {r["id"] for r in left}
    assert sorted(r["finished_at"] for r in left if r["status"] == "succeeded") == [1003, 1004]


def test_an_older_store_is_migrated_in_place_and_keeps_its_jobs(tmp_path):
    from borgd.store.migrations import MIGRATIONS

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
        assert store.jobs.get(1)["nfiles"] == 3
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
    finally:
        store.close()
