"""Cancel a running backup (SIGINT: borg writes a checkpoint) and a running check (SIGTERM)."""

from __future__ import annotations

import time

from tests.conftest import borg_json, wait_until
from tests.e2e.jobs_helpers import (
    add_profile,
    backing_up,
    borg_children,
    borg_env,
    init_repo,
    job,
    marked_tree,
    start,
    wait_running,
    wait_status,
)


def cancel_and_time(busctl, job_id: int) -> tuple[dict, float]:
    asked = time.monotonic()
    busctl("CancelJob", "t", job_id)
    done = wait_status(busctl, job_id, timeout=30)
    return done, time.monotonic() - asked


def test_cancel_running_backup_and_check(start_borgd, busctl, session_env, tmp_path):
    daemon = start_borgd()
    env = borg_env(session_env)
    repo = tmp_path / "repo"
    # 2 GiB of chunks that are all new to borg: seconds to back up and to verify.  Files
    # of 128 MiB: after SIGINT, borg writes the checkpoint at once but still reads the
    # rest of the current file before it exits.
    source = marked_tree(tmp_path / "data", 16, 128)
    init_repo(busctl, "main", repo)
    add_profile(busctl, "big", "main", [source], prune_after=True, keep_daily=("u", 7))

    backup = start(busctl, "big")
    wait_running(busctl, backup)
    chain = wait_until(
        lambda: [j for j in busctl("ListJobs", "a{sv}", 0) if j["parent_id"] == backup],
        5,
        "the backup's prune to be queued",
    )
    assert [(j["type"], j["status"]) for j in chain] == [("prune", "queued")]
    # Wait until borg has stored some chunks, so the checkpoint has content.
    wait_until(lambda: backing_up(busctl, backup), 20, "borg to store data", interval=0.05)
    done, took = cancel_and_time(busctl, backup)
    assert done["status"] == "cancelled", done
    # borgd sends SIGINT and escalates to SIGTERM after 10 s (StopPolicy.grace,
    # borgd/execution/runner.py): ending sooner means borg stopped on the SIGINT itself.
    assert took < 10, f"cancelling the backup took {took:.1f} s"
    assert "checkpoint" in done["message"], done["message"]
    # The job names the archive that exists: the checkpoint; the cache lists it too.
    listing = borg_json("list", "--consider-checkpoints", str(repo), env=env)["archives"]
    assert done["archive"].endswith(".checkpoint"), done
    assert [a["name"] for a in listing] == [done["archive"]]
    (cached,) = busctl("ListArchives", "sa{sv}", "main", 1, "checkpoints", "b", "true")
    assert (cached["name"], cached["job_id"], cached["checkpoint"]) == (
        done["archive"],
        backup,
        True,
    ), cached
    assert busctl("ListArchives", "sa{sv}", "main", 0) == []  # hidden unless asked
    # Its queued chain is cancelled with it.
    pruned = job(busctl, chain[0]["id"])
    assert pruned["status"] == "cancelled", pruned
    # borg's last words (the SIGINT it got) are in the log, not cut off by the cancel.
    assert any("SIGINT" in line for line in busctl("GetJobLog", "tu", backup, 0))

    # Requeue the cancelled backup: a new job that remembers where it came from.
    again = busctl("RequeueJob", "t", backup)
    done = wait_status(busctl, again, timeout=60)
    assert (done["status"], done["trigger"], done["requeued_from"]) == (
        "succeeded",
        "requeue",
        backup,
    ), done
    check = start(busctl, "big", "check", verify_data=True)
    wait_running(busctl, check)
    wait_until(lambda: borg_children(daemon.proc.pid), 5, "borg check to start")
    time.sleep(0.5)
    done, took = cancel_and_time(busctl, check)
    assert done["status"] == "cancelled", done
    # SIGTERM first, SIGKILL after 5 s (the check's StopPolicy): sooner means no SIGKILL.
    assert took < 5, f"cancelling the check took {took:.1f} s"
    assert not borg_children(daemon.proc.pid)
    assert "SIGTERM" in done["message"], done["message"]
