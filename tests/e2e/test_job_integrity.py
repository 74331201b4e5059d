"""What the store keeps is true: a backup of nothing is no backup, a backup missing a
source is not the profile's last success, and --keep-jobs holds after every job."""

from __future__ import annotations

from tests.conftest import make_tree, wait_until
from tests.e2e.jobs_helpers import add_profile, init_repo, start, wait_status

HOUR_US = 3_600 * 1_000_000


def profile_of(busctl, name: str) -> dict:
    return next(p for p in busctl("ListProfiles") if p["name"] == name)


def test_a_backup_none_of_whose_sources_exists_fails_without_running_borg(
    start_borgd, busctl, session_env, tmp_path
):
    start_borgd()
    init_repo(busctl, "main", tmp_path / "repo")
    gone = [tmp_path / "unplugged" / "a", tmp_path / "unplugged" / "b"]
    add_profile(busctl, "docs", "main", gone)
    done = wait_status(busctl, start(busctl, "docs"))
    assert done["status"] == "failed", done
    assert done["message"] == (
        f"none of the sources exists ({gone[0]}, {gone[1]}); borg did not run"
    )
    assert done["archive"] == ""
    assert profile_of(busctl, "docs")["last_success"] == 0
    log = busctl("GetJobLog", "tu", done["id"], 0)
    assert not [line for line in log if line.startswith("borgd: running ")]  # no borg


def test_a_backup_missing_a_source_is_a_warning_but_not_the_last_success(
    start_borgd, busctl, session_env, tmp_path
):
    start_borgd()
    init_repo(busctl, "main", tmp_path / "repo")
    here = make_tree(tmp_path / "src", 5)
    add_profile(busctl, "docs", "main", [here, tmp_path / "gone"], max_age=("t", HOUR_US))
    complete = tmp_path / "complete"
    complete.mkdir()
    partial = wait_status(busctl, start(busctl, "docs"))
    assert (partial["status"], partial["exit_code"]) == ("warning", 107), partial
    assert "some source paths do not exist" in partial["message"]
    profile = profile_of(busctl, "docs")
    assert profile["last_success"] == 0  # the overdue watcher still waits for a real one

    # A complete backup counts; a partial one after it does not move last_success.
    busctl("UpdateProfile", "sa{sv}", "docs", 1, "sources", "as", 1, str(here))
    full = wait_status(busctl, start(busctl, "docs"))
    assert full["status"] == "succeeded", full
    wait_until(
        lambda: profile_of(busctl, "docs")["last_success"] == full["finished_at"],
        5,
        "last_success to be the complete backup",
    )
    busctl(
        "UpdateProfile", "sa{sv}", "docs", 1, "sources", "as", 2, str(here), str(complete / "x")
    )
    again = wait_status(busctl, start(busctl, "docs"))
    assert again["status"] == "warning", again
    assert profile_of(busctl, "docs")["last_success"] == full["finished_at"]


def test_keep_jobs_holds_after_every_finished_job(start_borgd, busctl, tmp_path):
    start_borgd("--keep-jobs", "2")
    init_repo(busctl, "main", tmp_path / "repo")
    add_profile(busctl, "docs", "main", [make_tree(tmp_path / "src", 5)])
    ids = []
    for _ in range(4):
        ids.append(wait_status(busctl, start(busctl, "docs"))["id"])

        def kept() -> list[int]:
            return sorted(j["id"] for j in busctl("ListJobs", "a{sv}", 1, "profile", "s", "docs"))

        # Retention runs after each job (not only at start and once a day).
        wait_until(lambda: kept() == sorted(ids[-2:]), 10, f"only the newest 2 of {ids}")
