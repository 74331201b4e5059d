"""Post-backup chains: prune → compact → check run next in the lane, or are skipped."""

from __future__ import annotations

from itertools import pairwise

from tests.conftest import borg_json, make_tree
from tests.e2e.jobs_helpers import (
    add_profile,
    add_repo,
    borg_env,
    init_repo,
    start,
    wait_status,
)


def chain_of(busctl, backup_id: int) -> list[dict]:
    jobs = [j for j in busctl("ListJobs", "a{sv}", 0) if j["parent_id"] == backup_id]
    return sorted(jobs, key=lambda j: j["id"])


def finished_chain(busctl, backup_id: int) -> list[dict]:
    return [wait_status(busctl, j["id"]) for j in chain_of(busctl, backup_id)]


def test_chain_runs_next_in_the_lane_and_is_skipped_after_failure(
    start_borgd, busctl, session_env, tmp_path
):
    start_borgd()
    repo = tmp_path / "repo"
    init_repo(busctl, "main", repo)
    source = make_tree(tmp_path / "src", 30)
    chained = dict(prune_after=True, keep_daily=("u", 7), compact_after=True, check_every=("u", 2))
    # A source that does not exist makes every backup end with a warning (borg 107).
    add_profile(busctl, "p", "main", [source, tmp_path / "missing"], **chained)
    add_profile(busctl, "q", "main", [source])

    first = wait_status(busctl, start(busctl, "p"))
    assert first["status"] == "warning", first
    assert "do not exist" in first["message"]
    chain = finished_chain(busctl, first["id"])
    # Check every 2 backups: not after the first one.
    assert [(j["type"], j["status"], j["trigger"]) for j in chain] == [
        ("prune", "succeeded", "chain"),
        ("compact", "succeeded", "chain"),
    ]

    second_id = start(busctl, "p")
    other_id = start(busctl, "q")  # same repository, queued while p's backup runs
    second = wait_status(busctl, second_id)
    other = wait_status(busctl, other_id)
    chain = finished_chain(busctl, second_id)
    assert [(j["type"], j["status"]) for j in chain] == [
        ("prune", "succeeded"),
        ("compact", "succeeded"),
        ("check", "succeeded"),
    ]
    # In order, and nothing of the repository in between: q's backup comes after.
    order = [second, *chain, other]
    for before, after in pairwise(order):
        assert after["started_at"] >= before["finished_at"], (before, after)
    assert other["status"] == "succeeded"
    names = [
        a["name"] for a in borg_json("list", str(repo), env=borg_env(session_env))["archives"]
    ]
    assert sorted(names) == sorted([first["archive"], second["archive"], other["archive"]])

    # A failed backup: its chain is skipped, and borg never ran for it.
    add_repo(busctl, "gone", tmp_path / "nowhere", encryption="none")
    add_profile(busctl, "f", "gone", [source], **{**chained, "check_every": ("u", 1)})
    failed = wait_status(busctl, start(busctl, "f"))
    assert failed["status"] == "failed", failed
    chain = chain_of(busctl, failed["id"])
    assert [(j["type"], j["status"], j["skip_reason"]) for j in chain] == [
        ("prune", "skipped", "parent-failed"),
        ("compact", "skipped", "parent-failed"),
        ("check", "skipped", "parent-failed"),
    ]
    assert all(busctl("GetJobLog", "tu", j["id"], 0) == [] for j in chain)
