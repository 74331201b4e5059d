"""Lanes: one repository runs one job at a time; repositories run in parallel, up to 2."""

from __future__ import annotations

from tests.e2e.jobs_helpers import (
    add_profile,
    add_repo,
    overlap,
    sparse_tree,
    start,
    wait_status,
)


def test_one_lane_per_repository_and_a_global_limit(start_borgd, busctl, tmp_path):
    start_borgd()  # default --max-parallel: 2
    for name in ("one", "two", "three"):
        add_repo(busctl, name, tmp_path / f"repo-{name}", init=True, encryption="none")
    for init in busctl("ListJobs", "a{sv}", 0):
        assert wait_status(busctl, init["id"])["status"] == "succeeded"
    # some tenths of a second of reading each
    data = {p: sparse_tree(tmp_path / p, 2, 200) for p in ("a", "b", "c", "d")}
    add_profile(busctl, "a", "one", [data["a"]])
    add_profile(busctl, "b", "one", [data["b"]])  # shares repository "one" with "a"
    add_profile(busctl, "c", "two", [data["c"]])
    add_profile(busctl, "d", "three", [data["d"]])

    ids = {p: start(busctl, p) for p in ("a", "b", "c", "d")}
    jobs = {p: wait_status(busctl, i) for p, i in ids.items()}
    assert all(j["status"] == "succeeded" for j in jobs.values()), jobs

    a, b, c = jobs["a"], jobs["b"], jobs["c"]
    assert not overlap(a, b), (a, b)  # one repository: one after the other, in order
    assert b["started_at"] >= a["finished_at"]
    assert overlap(a, c), (a, c)  # two repositories: at the same time
    # Never more than two at once.
    edges = sorted(
        [(j["started_at"], 1) for j in jobs.values()]
        + [(j["finished_at"], -1) for j in jobs.values()]
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak == 2, jobs
