"""borg's failures become failed jobs whose message names the cause."""

from __future__ import annotations

import subprocess

from tests.conftest import borg_binary, make_tree, wait_until
from tests.e2e.jobs_helpers import (
    add_profile,
    add_repo,
    borg_env,
    init_repo,
    start,
    wait_status,
)


def failed(busctl, job_id: int) -> dict:
    done = wait_status(busctl, job_id)
    assert done["status"] == "failed", done
    return done


def test_failures_name_their_cause(start_borgd, busctl, session_env, tmp_path):
    start_borgd()
    source = make_tree(tmp_path / "src", 10)

    # Wrong passphrase: the repository was made with another one.
    init_repo(
        busctl,
        "sealed",
        tmp_path / "sealed",
        encryption="repokey-blake2",
        passphrase="correct horse",
    )
    busctl("UpdateRepository", "sa{sv}", "sealed", 1, "passphrase", "s", "battery staple")
    add_profile(busctl, "p1", "sealed", [source])
    done = failed(busctl, start(busctl, "p1"))
    assert done["exit_code"] == 52
    assert done["message"].startswith("wrong passphrase"), done["message"]

    # Missing repository.
    add_repo(busctl, "gone", tmp_path / "nowhere", encryption="none")
    add_profile(busctl, "p2", "gone", [source])
    done = failed(busctl, start(busctl, "p2"))
    assert done["exit_code"] == 13
    assert done["message"].startswith("the repository does not exist"), done["message"]

    # A lock held by another borg process; borgd waits lock_wait seconds, then gives up.
    locked = tmp_path / "locked"
    init_repo(busctl, "locked", locked, lock_wait=("u", 1))
    add_profile(busctl, "p3", "locked", [source])
    holder = subprocess.Popen(
        [borg_binary(), "with-lock", str(locked), "sleep", "30"],
        env=borg_env(session_env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: (locked / "lock.exclusive").exists(), 10, "the lock to be taken")
        job_id = start(busctl, "p3")
        done = failed(busctl, job_id)
        assert holder.poll() is None  # its lock was never broken
    finally:
        holder.terminate()
        holder.wait(10)
    assert done["exit_code"] == 73
    assert done["message"].startswith("repository is locked by another process"), done
    command = busctl("GetJobLog", "tu", job_id, 0)[0]
    assert "--lock-wait=1" in command
    # Once the other process is done, the failed job can be requeued, and it works.
    again = wait_status(busctl, busctl("RequeueJob", "t", job_id))
    assert (again["status"], again["requeued_from"]) == ("succeeded", job_id), again
