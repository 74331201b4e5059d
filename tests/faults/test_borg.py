"""borg itself misbehaving: missing, then installed (no restart); hanging (SIGSTOPped).

The world is built by the test: PATH is one empty folder of its own (and HOME
has no ~/.local/bin), so what the machine has installed does not matter.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from tests.conftest import borg_binary, make_tree, wait_until
from tests.e2e.jobs_helpers import borg_children, marked_tree, wait_running
from tests.faults.invariants import scheduled_runs, sound, wait_runs
from tests.reliability.helpers import (
    add_profile,
    all_jobs,
    borg_env,
    get_job,
    init_repo,
    start_job,
    wait_status,
)


def test_borg_missing_then_installed_is_used_without_a_restart(
    start_borgd, busctl, session_env, tmp_path, report
):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "borg").symlink_to(borg_binary())  # for the repository's init only
    daemon = start_borgd(env={"PATH": str(bin_dir)})
    repo = tmp_path / "repo"
    init_repo(busctl, "r", repo)
    add_profile(busctl, "p", "r", [make_tree(tmp_path / "src", 10)])
    (bin_dir / "borg").unlink()  # uninstalled under the running daemon

    missing = wait_status(busctl, start_job(busctl, "p"))
    assert missing["status"] == "failed", missing
    assert "borg was not found" in missing["message"]
    assert f"PATH={bin_dir}" in missing["message"], missing["message"]
    schedule = busctl("AddSchedule", "sssa{sv}", "p", "backup", "*:*:0/2", 0)
    wait_until(
        lambda: any(
            j["status"] == "failed" and j["schedule_id"] == schedule for j in all_jobs(busctl)
        ),
        15,
        "a scheduled run to fail too",
    )

    # Installed again: the next job finds it, and the schedule goes on.
    (bin_dir / "borg").symlink_to(borg_binary())
    runs = wait_runs(busctl, schedule, 0, 30)
    done = wait_status(busctl, start_job(busctl, "p"))
    assert done["status"] == "succeeded", done

    # Upgraded (another binary behind the name): its version is asked again, and it runs.
    # A scheduled job that looked borg up just before the swap runs the file it asked
    # (the old borg), so the wrapper's first call is always its `--version` probe; no
    # job may claim an archive it did not make, which `sound` checks below.
    calls = tmp_path / "wrapper-calls"
    wrapper = bin_dir / "borg-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {borg_binary()} "$@"\n')
    wrapper.chmod(0o755)
    (bin_dir / "borg").unlink()
    (bin_dir / "borg").symlink_to(wrapper)
    done = wait_status(busctl, start_job(busctl, "p"))
    assert done["status"] == "succeeded", done
    lines = calls.read_text().splitlines()
    assert lines[0] == "--version" and any(line.startswith("create") for line in lines), lines
    report(f"failed while missing, then {runs} scheduled backups; the upgrade was re-probed")
    busctl("RemoveSchedule", "t", schedule)
    sound(busctl, daemon, {"r": repo}, borg_env(session_env))
    assert len(scheduled_runs(busctl, schedule)) >= runs


def test_borg_that_dies_before_backing_up_is_a_failure_not_a_warning(
    start_borgd, busctl, session_env, tmp_path
):
    """Exit code 1 is borg's "warning", and also what any Python program that dies says;
    without borg's own report of the archive no backup is counted."""
    crashing = tmp_path / "borg-crashing"
    crashing.write_text(
        "#!/bin/sh\n"
        'case "$1" in create) echo "SyntaxError: invalid syntax" >&2; exit 1;; esac\n'
        f'exec {borg_binary()} "$@"\n'
    )
    crashing.chmod(0o755)
    daemon = start_borgd("--borg", str(crashing))
    repo = tmp_path / "repo"
    init_repo(busctl, "r", repo)
    add_profile(busctl, "p", "r", [make_tree(tmp_path / "src", 3)])
    job = wait_status(busctl, start_job(busctl, "p"))
    assert job["status"] == "failed", job
    assert job["archive"] == "", job
    assert "reported no archive" in job["message"], job["message"]
    assert "SyntaxError" in job["message"], job["message"]
    sound(busctl, daemon, {"r": repo}, borg_env(session_env))


def test_hanging_borg_is_cancelled_and_the_lane_goes_on(
    start_borgd, busctl, session_env, tmp_path, report
):
    daemon = start_borgd()
    repo = tmp_path / "repo"
    init_repo(busctl, "r", repo)
    add_profile(busctl, "p", "r", [marked_tree(tmp_path / "data", 8, 64)])
    job_id = start_job(busctl, "p")
    wait_running(busctl, job_id)
    (pid,) = wait_until(lambda: borg_children(daemon.proc.pid), 10, "borg to start")
    os.kill(pid, signal.SIGSTOP)  # borg hangs: it neither reads, writes nor exits
    try:
        began = time.monotonic()
        for _ in range(5):  # the daemon serves meanwhile
            assert get_job(busctl, job_id)["status"] == "running"
        assert time.monotonic() - began < 5
        busctl("CancelJob", "t", job_id)
        # A stopped process ignores SIGINT and SIGTERM until it is continued: the stop
        # policy sends SIGKILL after 10 s + 5 s of grace (borgd.dbus(5), CancelJob).
        done = wait_status(busctl, job_id, timeout=30)
        took = time.monotonic() - began
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    report(f"hung borg cancelled in {took:.1f} s: {done['message']}")
    assert done["status"] == "cancelled", done
    assert "SIGKILL" in done["message"], done["message"]
    assert not borg_children(daemon.proc.pid)
    # The next job of the lane runs: borg clears the stale lock of the killed one.
    again = wait_status(busctl, start_job(busctl, "p"), timeout=120)
    assert again["status"] in ("succeeded", "warning"), again
    sound(busctl, daemon, {"r": repo}, borg_env(session_env))
