"""Going easy on the machine: a profile's nice and ionice reach the borg process."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import wait_until
from tests.e2e.jobs_helpers import asv, sparse_tree, wait_running
from tests.reliability.helpers import add_profile, init_repo, start_job, wait_status


def borg_creating(repo: Path) -> list[int]:
    """Pids of `borg create` processes writing to `repo`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"create" in argv and any(a.startswith(str(repo).encode() + b"::") for a in argv):
            found.append(int(entry))
    return found


def test_nice_and_ionice_are_the_borg_process_own(start_borgd, busctl, tmp_path):
    start_borgd()
    repo = tmp_path / "repo"
    init_repo(busctl, "r", repo)
    add_profile(busctl, "easy", "r", [sparse_tree(tmp_path / "big", 200, 200)])
    busctl("UpdateProfile", "sa{sv}", "easy", *asv(nice=("i", 12), ionice="idle"))
    (row,) = busctl("ListProfiles")
    assert (row["nice"], row["ionice"]) == (12, "idle")

    job = start_job(busctl, "easy")
    wait_running(busctl, job)
    (pid,) = wait_until(lambda: borg_creating(repo), 20, "borg create to run")
    with open(f"/proc/{pid}/stat") as f:
        nice = int(f.read().rsplit(")", 1)[1].split()[16])  # field 19: nice
    io_class = subprocess.run(
        ["ionice", "-p", str(pid)], capture_output=True, text=True, check=True
    ).stdout
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv0 = f.read().split(b"\0")[1]  # python running borg: the same process
    busctl("CancelJob", "t", job)
    assert nice == 12
    assert io_class.strip() == "idle", io_class
    assert argv0.endswith(b"borg"), argv0
    assert wait_status(busctl, job)["status"] == "cancelled"

    # Back to normal: nice 0 and no I/O class run borg plainly.
    busctl("UpdateProfile", "sa{sv}", "easy", *asv(nice=("i", 0), ionice=""))
    (row,) = busctl("ListProfiles")
    assert (row["nice"], row["ionice"]) == (0, "")


def test_limits_are_checked(start_borgd, busctl, tmp_path):
    from tests.conftest import BusctlError

    start_borgd()
    init_repo(busctl, "r", tmp_path / "repo")
    add_profile(busctl, "p", "r", [tmp_path])
    for options, said in (
        ({"nice": ("i", 20)}, "between 0 and 19"),
        ({"ionice": "realtime"}, "idle, best-effort"),
    ):
        try:
            busctl("UpdateProfile", "sa{sv}", "p", *asv(**options))
        except BusctlError as exc:
            assert said in str(exc), exc
        else:
            raise AssertionError(f"{options} was taken")
    busctl("UpdateRepository", "sa{sv}", "r", *asv(upload_ratelimit=("u", 2048)))
    (repo,) = busctl("ListRepositories")
    assert repo["upload_ratelimit"] == 2048
