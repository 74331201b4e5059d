"""Job history retention: old or surplus finished jobs go, with their log files."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from borgd.execution import joblog
from borgd.execution.retention import DAY_US, Retention, expire_jobs, retention_loop
from borgd.store import Store

NOW = 1_800_000_000 * 1_000_000


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "db")
    yield s
    s.close()


def job(store: Store, logs: Path, *, profile: str, status: str, age_days: float) -> int:
    finished = status not in ("queued", "running", "scheduled")
    when = NOW - int(age_days * DAY_US)
    row = store.jobs.create(
        type="backup" if profile else "init",
        status=status,
        trigger="manual",
        profile=profile,
        repository="main",
        repository_id=1 if status != "running" else 2,
        created_at=when,
        finished_at=when if finished else 0,
        options={},
    )
    path = joblog.log_path(logs, row.id)
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"log of {row.id}\n")
    store.jobs.update_fields(row.id, log_path=str(path))
    return int(row.id)


def test_old_and_surplus_jobs_go_with_their_logs(store, tmp_path):
    logs = tmp_path / "logs"
    old = job(store, logs, profile="web", status="failed", age_days=200)
    web = [job(store, logs, profile="web", status="succeeded", age_days=d) for d in (4, 3, 2, 1)]
    home = [job(store, logs, profile="home", status="warning", age_days=d) for d in (9, 8)]
    init = job(store, logs, profile="", status="succeeded", age_days=190)
    queued = job(store, logs, profile="web", status="queued", age_days=300)
    running = job(store, logs, profile="web", status="running", age_days=300)
    (logs / "99999.log").write_text("a log whose job row is gone\n")
    (logs / "notes.txt").write_text("not ours\n")

    gone = expire_jobs(store, logs, NOW, Retention(keep_days=180, keep_jobs=3))

    assert sorted(r.id for r in gone) == sorted([old, web[0], init])
    for job_id in (old, web[0], init):
        assert store.jobs.find(job_id) is None
        assert not joblog.log_path(logs, job_id).exists()
    for job_id in (*web[1:], *home, queued, running):  # live jobs are never expired
        assert store.jobs.find(job_id) is not None
        assert joblog.log_path(logs, job_id).exists()
    assert sorted(p.name for p in logs.iterdir() if not p.name[0].isdigit()) == ["notes.txt"]
    assert not (logs / "99999.log").exists()
    assert expire_jobs(store, logs, NOW, Retention(keep_days=180, keep_jobs=3)) == []


def test_defaults_and_bounds():
    assert (Retention().keep_days, Retention().keep_jobs) == (180, 100)
    with pytest.raises(ValueError):
        Retention(keep_days=0)
    with pytest.raises(ValueError):
        Retention(keep_jobs=0)


@pytest.mark.anyio
async def test_the_loop_expires_at_start(store, tmp_path):
    logs = tmp_path / "logs"
    old = job(store, logs, profile="web", status="failed", age_days=400)
    with anyio.move_on_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(retention_loop, store, logs, lambda: NOW)
            while store.jobs.find(old) is not None:
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    assert store.jobs.find(old) is None
