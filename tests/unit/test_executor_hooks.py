"""The executor in-process, with real hooks: timeout, cancel during a hook, the hook's world.

borg never starts in these tests (each pre_command stops the job first), so
they need no repository.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from borgd.app.chains import Chains
from borgd.clock import wall_us
from borgd.core.jobs import JobStatus
from borgd.events import Events, IgnoresEvents
from borgd.execution.executor import BorgTool, Executor
from borgd.store import Store, StoreUnavailable
from borgd.system.secrets import SecretUnavailable, _locked_message

pytestmark = pytest.mark.anyio


class Recorder(IgnoresEvents):
    def __init__(self) -> None:
        self.changes: list[tuple[int, dict[str, Any]]] = []

    def job_changed(self, job_id: int, changed: dict[str, Any], job: Any) -> None:
        self.changes.append((job_id, dict(changed)))


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "db")
    yield s
    s.close()


def setup(store: Store, home: Path, **profile: Any) -> int:
    repo_id = store.catalog.add_repository({"name": "main", "url": "/nonexistent/repo"})
    store.catalog.add_profile(
        {
            "name": "p",
            "repository_id": repo_id,
            "sources": [str(home)],
            "archive_template": "{profile}-{now}",
            **profile,
        }
    )
    return repo_id


def executor(store: Store, home: Path, events: Events, **kw: Any) -> Executor:
    async def no_passphrase(repo: Any) -> bytes | None:
        return None

    return Executor(
        store=store,
        chains=Chains(store=store, events=events, clock=wall_us),
        events=events,
        clock=wall_us,
        borg=BorgTool("/bin/false", (1, 4, 5)),  # never reached
        logs_dir=home / "logs",
        passphrase=no_passphrase,
        base_env={
            "HOME": str(home),
            "PATH": os.environ["PATH"],
            "BORG_PASSPHRASE": "leaked-secret",
            "BORG_PASSCOMMAND": "cat /leak",
            "NOTIFY_SOCKET": "/run/systemd/notify",
            "BORGD_PROFILE": "spoofed",
            "LANG": "C.UTF-8",
        },
        **kw,
    )


def queue(store: Store, repo_id: int) -> int:
    now = wall_us()
    return int(
        store.jobs.create(
            type="backup",
            status="queued",
            trigger="manual",
            profile="p",
            repository="main",
            repository_id=repo_id,
            created_at=now,
            queued_at=now,
            options={},
        ).id
    )


async def wait_for(predicate: Any, timeout: float = 10) -> Any:
    with anyio.fail_after(timeout):
        while not (found := predicate()):
            await anyio.sleep(0.02)
    return found


async def test_pre_command_timeout_fails_without_borg(store, tmp_path):
    repo_id = setup(
        store,
        tmp_path,
        pre_command="sleep 30",
        post_command='printf %s "$BORGD_STATUS" > "$HOME/post"',
    )
    events = Events()
    ex = executor(store, tmp_path, events, hook_timeout=0.5)
    job_id = queue(store, repo_id)
    async with anyio.create_task_group() as tg:
        await tg.start(ex.run)
        done = await wait_for(lambda: (j := store.jobs.get(job_id)).status == "failed" and j)
        tg.cancel_scope.cancel()
    assert done.message == "pre_command timed out after 0.5 s and was stopped; borg did not run"
    assert (tmp_path / "post").read_text() == "failed"
    log = (tmp_path / "logs" / f"{job_id}.log").read_text()
    assert log.splitlines() == [
        "borgd: running pre_command",
        "borgd: pre_command timed out after 0.5 s and was stopped",
        "borgd: pre_command exited -15",
        "borgd: running post_command",
        f"borgd: failed: {done.message}",
    ]  # no borg command line: borg never ran


async def test_cancel_during_pre_command_stops_the_hook(store, tmp_path):
    repo_id = setup(
        store,
        tmp_path,
        pre_command='echo started > "$HOME/pre"; sleep 30',
        post_command='printf %s "$BORGD_STATUS" > "$HOME/post"',
    )
    recorder = Recorder()
    events = Events()
    events.subscribe(recorder)
    ex = executor(store, tmp_path, events)
    job_id = queue(store, repo_id)
    async with anyio.create_task_group() as tg:
        await tg.start(ex.run)
        await wait_for(lambda: (tmp_path / "pre").exists())
        assert ex.cancel_running(job_id)
        with anyio.fail_after(3):  # SIGTERM to the shell, not the 30 s sleep nor a timeout
            done = await wait_for(
                lambda: (j := store.jobs.get(job_id)).status == "cancelled" and j
            )
        tg.cancel_scope.cancel()
    assert done.message == (
        "cancelled by request during the pre_command (sent SIGTERM; the pre_command "
        "exited -15); borg did not run"
    )
    assert (tmp_path / "post").read_text() == "cancelled"
    # Clients saw running, then the final status once: the post_command ran before it.
    statuses = [c["status"] for j, c in recorder.changes if j == job_id and "status" in c]
    assert statuses == ["running", "cancelled"]
    assert ex.active == {}


async def test_the_hook_sees_job_facts_and_no_secrets(store, tmp_path):
    repo_id = setup(
        store,
        tmp_path,
        pre_command='env > "$HOME/env"; pwd > "$HOME/cwd"; exit 75',
        # A background child keeps the hook's stdout open: borgd does not wait for it.
        post_command="sleep 6 & echo left a child",
    )
    ex = executor(store, tmp_path, Events())
    job_id = queue(store, repo_id)
    async with anyio.create_task_group() as tg:
        await tg.start(ex.run)
        done = await wait_for(
            lambda: (j := store.jobs.get(job_id)).status == "skipped" and j, timeout=5
        )
        tg.cancel_scope.cancel()
    assert (done.skip_reason, done.exit_code) == ("precondition", 75)
    env = dict(
        line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines() if "=" in line
    )
    assert env["BORGD_PROFILE"] == "p" and env["BORGD_JOB_ID"] == str(job_id)
    assert env["BORGD_STATUS"] == JobStatus.RUNNING.value
    for leaked in ("BORG_PASSPHRASE", "BORG_PASSCOMMAND", "NOTIFY_SOCKET"):
        assert leaked not in env
    assert "leaked-secret" not in (tmp_path / "env").read_text()
    assert (tmp_path / "cwd").read_text().strip() == str(tmp_path)  # hooks run in $HOME
    assert "post_command: left a child" in (tmp_path / "logs" / f"{job_id}.log").read_text()


async def test_a_locked_keyring_is_a_clear_failure(store, tmp_path):
    repo_id = store.catalog.add_repository(
        {"name": "sealed", "url": "/nonexistent/sealed", "has_passphrase": True}
    )
    store.catalog.add_profile(
        {
            "name": "p",
            "repository_id": repo_id,
            "sources": [str(tmp_path)],
            "archive_template": "{profile}-{now}",
        }
    )

    async def locked(repo: Any) -> bytes | None:
        raise SecretUnavailable(_locked_message("the passphrase of repository", repo.name))

    ex = executor(store, tmp_path, Events())
    ex.passphrase = locked
    job_id = queue(store, repo_id)
    async with anyio.create_task_group() as tg:
        await tg.start(ex.run)
        done = await wait_for(lambda: (j := store.jobs.get(job_id)).status == "failed" and j)
        tg.cancel_scope.cancel()
    assert done.message.startswith(
        "the passphrase is unavailable: the keyring holding the passphrase of repository "
        "'sealed' is locked; unlock it"
    ), done.message
    log = (tmp_path / "logs" / f"{job_id}.log").read_text().splitlines()
    assert log == [f"borgd: failed: {done.message}"]  # borg never ran


async def test_an_outcome_the_store_refuses_is_stored_once_it_can(store, tmp_path, monkeypatch):
    repo_id = setup(store, tmp_path, pre_command="exit 75")
    ex = executor(store, tmp_path, Events())
    job_id = queue(store, repo_id)
    real = store.jobs.transition
    refusals = []

    def full_disk(job: int, dst: JobStatus, **fields: Any) -> Any:
        if dst is JobStatus.SKIPPED and len(refusals) < 2:
            refusals.append(dst)
            # What the engine does with SQLite's error: tell the health, raise ours.
            store.health.failed("database or disk is full")
            raise StoreUnavailable("database or disk is full")
        return real(job, dst, **fields)

    monkeypatch.setattr(store.jobs, "transition", full_disk)
    async with anyio.create_task_group() as tg:
        tg.start_soon(store.watch_health)  # probes the store until it takes writes again
        await tg.start(ex.run)
        done = await wait_for(lambda: (j := store.jobs.get(job_id)).status == "skipped" and j)
        tg.cancel_scope.cancel()
    assert len(refusals) == 2  # the job did not stay "running": the third attempt went in
    assert done.message == (
        "pre_command exited 75: not now "
        "(its outcome could not be stored at first: database or disk is full)"
    )
