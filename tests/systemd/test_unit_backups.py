"""Backups through borgd as the unit runs it: a clean `systemctl --user stop` mid-backup,
and file owners kept true under the unit's hardening.

The user drives everything with borgctl and reads the repository with borg itself.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.e2e.jobs_helpers import FINISHED, marked_tree
from tests.systemd.host import chown_tree, make_owned
from tests.systemd.manager import UNIT, UserManager

# The first test of this folder also pays for the package fixture: a venv with borgd
# and borg (~15 s with pip's wheel cache; minutes if pip must build borg).
pytestmark = pytest.mark.timeout(600)

PASSPHRASE = "correct horse battery staple for the unit tests"
PASSPHRASE_ENV = {"BORGD_TEST_PASSPHRASE": PASSPHRASE}
BORG_ENV = {"BORG_PASSPHRASE": PASSPHRASE}


def add_encrypted_repo(m: UserManager, name: str, path: Path) -> None:
    """`borgctl repo add --init`, then wait for the init job borgd runs."""
    m.borgctl(
        "repo",
        "add",
        name,
        str(path),
        "--init",
        "--encryption",
        "repokey-blake2",
        "--passphrase-env",
        "BORGD_TEST_PASSPHRASE",
        env=PASSPHRASE_ENV,
    )
    # borg init with key derivation takes about a second; 60 s for a loaded machine.
    inits = wait_until(
        lambda: [
            j
            for j in m.borgctl_json("jobs", "--repo", name, "--type", "init")
            if j["status"] in FINISHED
        ],
        60,
        f"the init of {name}",
    )
    assert [j["status"] for j in inits] == ["succeeded"], (inits, m.diagnostics())


def run_backup(m: UserManager, profile: str, *args: str) -> int:
    out = m.borgctl("run", profile, *args, timeout=120).stdout
    match = re.match(r"job (\d+) queued", out)
    assert match, out
    return int(match.group(1))


def show(m: UserManager, job_id: int) -> dict[str, Any]:
    return m.borgctl_json("show", str(job_id))


def test_stop_during_a_backup_writes_a_checkpoint_and_exits_cleanly(
    borgd_unit: UserManager,
) -> None:
    m = borgd_unit
    m.start_borgd()
    # 2 GiB of chunks all new to borg (sparse files with a marker every MiB): seconds
    # of work, instant to make.
    source = marked_tree(m.home / "big", 16, 128)
    chown_tree(source, m.user)
    repo = make_owned(m.home / "repos", m.user) / "stop"
    add_encrypted_repo(m, "stop", repo)
    m.borgctl("profile", "add", "big", "--repo", "stop", str(source))
    job_id = run_backup(m, "big")
    # Progress is published at most once a second; 30 s covers borg's start on a busy box.
    running = wait_until(
        lambda: (j := show(m, job_id))["status"] == "running" and j["original_size"] > 0 and j,
        30,
        "the backup to store data",
        interval=0.2,
    )
    stops = len(m.results())

    m.systemctl("stop", UNIT)

    state = m.show("ActiveState", "Result")
    assert state == {"ActiveState": "inactive", "Result": "success"}, m.diagnostics()
    # $EXIT_CODE/$EXIT_STATUS of the main process: it exited 0 by itself (no SIGKILL
    # after TimeoutStopSec, which would read "timeout killed KILL").
    assert m.results()[stops:] == ["success exited 0"], m.diagnostics()
    listing = m.run("borg", "list", "--consider-checkpoints", "--short", str(repo), env=BORG_ENV)
    assert listing.stdout.split() == [running["archive"] + ".checkpoint"], listing.stdout

    m.start_borgd()
    after = show(m, job_id)
    assert after["status"] == "interrupted", after
    assert after["archive"] == running["archive"] + ".checkpoint", after  # what exists
    assert after["message"].startswith("interrupted: borgd stopped"), after


def test_backups_under_the_unit_keep_real_file_owners(borgd_unit: UserManager) -> None:
    """No namespace hardening sneaked into the unit: root's files stay root's in borg."""
    m = borgd_unit
    m.start_borgd()
    uid, gid = m.user.pw_uid, m.user.pw_gid
    tree = make_owned(m.home / "owners", m.user)
    for name, owner in (
        ("mine.txt", (uid, gid)),
        ("root.txt", (0, 0)),
        ("numeric.txt", (4242, 4343)),
    ):
        (tree / name).write_text(f"owned by {owner}\n")
        (tree / name).chmod(0o644)
        os.chown(tree / name, *owner)
    (tree / "etc").mkdir(mode=0o755)
    (tree / "etc" / "root-config").write_text("root's\n")
    (tree / "etc" / "root-config").chmod(0o644)
    repo = make_owned(m.home / "repos", m.user) / "owners"
    add_encrypted_repo(m, "owners", repo)
    m.borgctl("profile", "add", "owners", "--repo", "owners", str(tree))

    job_id = run_backup(m, "owners", "--wait")

    done = show(m, job_id)
    assert done["status"] == "succeeded", (done, m.diagnostics())
    listed = m.run("borg", "list", "--json-lines", f"{repo}::{done['archive']}", env=BORG_ENV)
    entries = [json.loads(line) for line in listed.stdout.splitlines()]
    owners = {
        Path(e["path"]).relative_to(str(tree).lstrip("/")).as_posix(): (
            e["user"],
            e["uid"],
            e["group"],
            e["gid"],
        )
        for e in entries
        if e["path"] != str(tree).lstrip("/")
    }
    me = m.user.pw_name
    assert owners == {
        "mine.txt": (me, uid, me, gid),
        "root.txt": ("root", 0, "root", 0),
        # No name for these ids: borg shows the numbers where the names would be.
        "numeric.txt": (4242, 4242, 4343, 4343),
        "etc": ("root", 0, "root", 0),
        "etc/root-config": ("root", 0, "root", 0),
    }, owners
