"""kill -9 the daemon at random moments across backup chains, restart it, check the invariants.

Each iteration starts a few manual jobs, lets the schedules fire, and kills
borgd (SIGKILL) at a random moment, during a backup or during a chain task
(prune, compact); the borg child, in its own session, may live on.  After
each restart (READY=1 comes after crash recovery):

* no borg of the killed daemon is still running (recovery stopped it);
* every enabled schedule has exactly one `scheduled` job (no intent lost,
  none doubled);
* every job that existed when the daemon came back reaches a terminal state;
* a job that had finished before a kill keeps its record unchanged.

At the end: no two jobs ran at the same time on one repository (their
started_at/finished_at), no archive was made twice or by no job, no backup
found its archive there already, no job failed, and `borg check` passes on
every repository.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from typing import Any

import pytest

from tests.conftest import make_tree, wait_until
from tests.e2e.jobs_helpers import borg_children
from tests.reliability.helpers import (
    FINISHED,
    add_profile,
    alive,
    all_jobs,
    archive_problems,
    borg_env,
    borg_run,
    chain_violations,
    init_repo,
    intents_per_schedule,
    internal_errors,
    log_on_failure,
    overlapping_runs,
    start_job,
    status_counts,
)

# Prune and compact after every backup (a chain of three), keeping every archive
# (keep_within 1d), so that the repository shows every archive ever made.
CHAIN = {
    "prune_after": True,
    "compact_after": True,
    "keep_daily": ("u", 7),
    "keep_within": "1d",
}
SPEC = "*:*:0/3"
PROFILES = ("sched-a", "manual-a", "sched-b")


def wait_for_running(busctl, types: tuple[str, ...], timeout: float) -> str:
    """Wait until a job of one of ``types`` runs; returns what ran (or 'nothing')."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = all_jobs(busctl, status="running")
        for j in running:
            if j["type"] in types:
                return j["type"]
        time.sleep(0.03)
    return "nothing"


def settled(busctl, upto: int) -> bool:
    return all(
        j["status"] in FINISHED or j["status"] == "scheduled"
        for j in all_jobs(busctl)
        if j["id"] <= upto
    )


@pytest.mark.parametrize(
    "iterations",
    [
        pytest.param(5, id="fast"),
        pytest.param(50, id="long", marks=[pytest.mark.slow, pytest.mark.timeout(3600)]),
    ],
)
def test_kill_9_at_random_moments(
    iterations, seed, report, start_borgd, busctl, session_env, tmp_path
):
    rng = random.Random(seed)
    began = time.monotonic()
    # Keep every job record (retention would expire the oldest at each of the restarts).
    keep = ("--keep-jobs", "1000000")
    daemon = start_borgd(*keep)
    daemons = [daemon]
    repos = {"r1": tmp_path / "r1", "r2": tmp_path / "r2"}
    for name, path in repos.items():
        init_repo(busctl, name, path)
    add_profile(busctl, "sched-a", "r1", [make_tree(tmp_path / "src-a", 30)], **CHAIN)
    add_profile(busctl, "manual-a", "r1", [make_tree(tmp_path / "src-m", 20)], **CHAIN)
    add_profile(busctl, "sched-b", "r2", [make_tree(tmp_path / "src-b", 30)], **CHAIN)
    for profile in ("sched-a", "sched-b"):
        busctl("AddSchedule", "sssa{sv}", profile, "backup", SPEC, 0)

    with log_on_failure(lambda: daemon):
        kills: Counter[str] = Counter()
        at_kill: Counter[str] = Counter()
        orphans_seen = 0
        manual = 0
        finished_before: dict[int, dict[str, Any]] = {}
        for i in range(iterations):
            for j in all_jobs(busctl):
                if j["status"] in FINISHED:
                    finished_before[j["id"]] = j
            for _ in range(rng.randint(0, 2)):
                start_job(busctl, rng.choice(PROFILES))
                manual += 1
            mode = rng.choice(("random", "backup", "chain"))
            if mode == "random":
                time.sleep(rng.uniform(0.05, 3.0))
            elif mode == "backup":
                wait_for_running(busctl, ("backup",), 6)
                time.sleep(rng.uniform(0, 0.4))
            else:
                wait_for_running(busctl, ("prune", "compact"), 6)
                time.sleep(rng.uniform(0, 0.2))
            orphans = borg_children(daemon.proc.pid)
            running = [j["type"] for j in all_jobs(busctl, status="running")]
            daemon.proc.send_signal(signal.SIGKILL)
            daemon.proc.wait(10)
            kills[mode] += 1
            at_kill.update(running or ["idle"])
            orphans_seen += len([p for p in orphans if alive(p)])

            daemon = start_borgd(*keep)  # READY=1 comes after crash recovery
            daemons.append(daemon)
            survivors = [p for p in orphans if alive(p)]
            assert not survivors, (
                f"iteration {i}: borg {survivors} of the killed daemon still runs"
            )
            counts = intents_per_schedule(busctl)
            assert counts and all(n == 1 for n in counts.values()), (i, counts)
            upto = max(j["id"] for j in all_jobs(busctl, limit=("u", 1)))
            wait_until(lambda u=upto: settled(busctl, u), 90, f"iteration {i}: jobs to finish")

        # The end: no new occurrences, let everything finish, then look at all of it.
        busctl("Pause", "t", 0)
        wait_until(
            lambda: not all_jobs(busctl, status=["queued", "running"]), 90, "the queues to drain"
        )
        counts = intents_per_schedule(busctl)
        assert counts and all(n == 1 for n in counts.values()), counts
        jobs = all_jobs(busctl)
        assert daemon.stop() == 0, daemon.log()

        assert all(j["status"] in FINISHED or j["status"] == "scheduled" for j in jobs)
        by_id = {j["id"]: j for j in jobs}
        for job_id, before in finished_before.items():
            after = by_id.get(job_id)
            assert after is not None, f"finished job {job_id} is gone: {before}"
            same = ("status", "finished_at", "archive", "exit_code")
            assert {k: after[k] for k in same} == {k: before[k] for k in same}, (before, after)
        assert overlapping_runs(jobs) == []
        assert chain_violations(jobs) == []
        assert [line for d in daemons for line in internal_errors(d.log())] == []
        failed = [
            (j["id"], j["type"], j["exit_code"], j["message"])
            for j in jobs
            if j["status"] == "failed"
        ]
        assert failed == []
        env = borg_env(session_env)
        for name, path in repos.items():
            assert archive_problems(jobs, name, path, env) == []
            check = borg_run("check", str(path), env=env)
            assert check.returncode == 0, (name, check.stderr)

    types = Counter(f"{j['type']}/{j['trigger']}" for j in jobs)
    report(
        f"iterations={iterations} kills={dict(kills)} running-at-kill={dict(at_kill)} "
        f"orphan-borgs-stopped={orphans_seen} manual-starts={manual} jobs={len(jobs)} "
        f"statuses={status_counts(jobs)} recovery-requeues={types['backup/recovery']} "
        f"skips={dict(Counter(j['skip_reason'] for j in jobs if j['skip_reason']))} "
        f"seconds={time.monotonic() - began:.0f}"
    )
