"""Mounting archives with real borg and real FUSE, in a private mount namespace."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.conftest import BusctlError, make_tree, wait_until
from tests.e2e.jobs_helpers import asv
from tests.mountns import MountNamespace, private_mounts
from tests.reliability.helpers import (
    add_profile,
    get_job,
    init_repo,
    start_job,
    wait_status,
)


def mounted(ns: MountNamespace, path) -> bool:
    return ns.run("mountpoint", "-q", str(path)).returncode == 0


def borg_mounts(ns: MountNamespace) -> list[str]:
    table = ns.run("cat", "/proc/self/mountinfo").stdout.splitlines()
    return [line for line in table if "borgfs" in line or "fuse" in line.split(" - ")[-1]]


def test_mount_read_hold_the_lane_unmount_and_survive_a_crash(
    start_borgd, busctl, session_env, tmp_path
):
    with private_mounts() as ns:
        daemon = start_borgd(wrap=ns.enter)
        init_repo(busctl, "r", tmp_path / "repo")
        src = make_tree(tmp_path / "src", 8)
        add_profile(busctl, "web", "r", [src])
        made = wait_status(busctl, start_job(busctl, "web"))
        assert made["status"] == "succeeded", made
        archive = made["archive"]

        mnt = tmp_path / "mnt"
        job_id = busctl("MountArchive", "sssa{sv}", "r", archive, str(mnt), 0)
        wait_until(lambda: mounted(ns, mnt), 30, "the archive to be mounted")
        job = get_job(busctl, job_id)
        assert (job["type"], job["status"], job["archive"]) == ("mount", "running", archive)
        inside = ns.path(mnt) / src.relative_to("/") / "d1" / "f1.txt"
        assert inside.read_bytes() == (src / "d1" / "f1.txt").read_bytes()

        # The lane is held: a backup of that repository waits, saying why.
        waiting = start_job(busctl, "web")
        wait_until(
            lambda: get_job(busctl, waiting)["blocked_by"] == "archives-mounted",
            10,
            "the backup to wait for the mount",
        )
        assert get_job(busctl, waiting)["status"] == "queued"

        busctl("UnmountArchive", "t", job_id)
        done = wait_status(busctl, job_id)
        assert (done["status"], done["message"]) == ("succeeded", "unmounted by request"), done
        assert not mounted(ns, mnt)
        after = wait_status(busctl, waiting)
        assert (after["status"], after["blocked_by"]) == ("succeeded", ""), after

        # The default mount point; then borgd killed while mounted: the restart unmounts.
        again = busctl("MountArchive", "sssa{sv}", "r", "", "", 0)
        default = Path(session_env.vars["XDG_RUNTIME_DIR"]) / "borgd" / "mnt" / "r"
        wait_until(lambda: mounted(ns, default), 30, "the repository to be mounted")
        assert archive in [p.name for p in ns.path(default).iterdir()]
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait(10)
        assert mounted(ns, default)  # borg runs on, in its own session
        start_borgd(wrap=ns.enter)
        crashed = get_job(busctl, again)
        assert crashed["status"] == "interrupted", crashed
        assert not mounted(ns, default)
        assert borg_mounts(ns) == [], borg_mounts(ns)


def test_bad_mount_calls_change_nothing(start_borgd, busctl, gdbus, tmp_path):
    start_borgd()
    init_repo(busctl, "r", tmp_path / "repo")
    add_profile(busctl, "web", "r", [make_tree(tmp_path / "src", 2)])
    made = wait_status(busctl, start_job(busctl, "web"))
    for error, member, args in (
        ("NotFound", "MountArchive", ["'nope'", "''", "''", "@a{sv} {}"]),
        ("NotFound", "MountArchive", ["'r'", "'no-such'", "''", "@a{sv} {}"]),
        ("InvalidArgument", "MountArchive", ["'r'", "''", "'relative/dir'", "@a{sv} {}"]),
        ("InvalidArgument", "MountArchive", ["'r'", "''", "''", "{'ro': <true>}"]),
        ("InvalidArgument", "UnmountArchive", [f"@t {made['id']}"]),
        ("NotFound", "UnmountArchive", ["@t 999999"]),
        ("InvalidArgument", "StartJob", ["'web'", "'mount'", "@a{sv} {}"]),
    ):
        before = busctl("ListJobs", "a{sv}", *asv())
        with pytest.raises(BusctlError) as err:
            gdbus(member, *args)
        assert err.value.name == f"org.borgd1.Error.{error}", (member, args, err.value)
        assert busctl("ListJobs", "a{sv}", *asv()) == before
