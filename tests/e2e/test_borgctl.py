"""The same slice through borgctl, as a person at a terminal uses it."""

from __future__ import annotations

import json
import os

from tests.conftest import borg_json, make_tree


def test_backup_through_borgctl(start_borgd, borgctl, session_env, tmp_path):
    start_borgd()
    source = make_tree(tmp_path / "data", 42)
    repo = tmp_path / "repo"

    res = borgctl(
        "repo",
        "add",
        "main",
        str(repo),
        "--init",
        "--encryption",
        "repokey-blake2",
        "--passphrase-stdin",
        input="correct horse battery staple\n",
    )
    assert res.returncode == 0, res.stderr
    res = borgctl("profile", "add", "docs", "--repo", "main", str(source))
    assert res.returncode == 0, res.stderr

    res = borgctl("run", "docs", "--wait")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "succeeded" in res.stdout
    assert "files:     42" in res.stdout

    jobs = json.loads(borgctl("jobs", "--json").stdout)
    assert [j["type"] for j in jobs] == ["backup", "init"]
    assert all(j["status"] == "succeeded" for j in jobs)
    assert jobs[0]["nfiles"] == 42
    assert jobs[0]["finished_at"].endswith(("+00:00", "Z")) or "T" in jobs[0]["finished_at"]

    env = {**session_env.vars, "BORG_PASSPHRASE": "correct horse battery staple"}
    names = [a["name"] for a in borg_json("list", str(repo), env=env)["archives"]]
    assert names == [jobs[0]["archive"]]

    repos = json.loads(borgctl("repo", "list", "--json").stdout)
    assert repos[0]["has_passphrase"] is True
    assert "correct horse" not in json.dumps(repos)

    table = borgctl("jobs").stdout
    assert "backup" in table and "succeeded" in table


def test_errors_and_exit_codes(start_borgd, borgctl, session_env, tmp_path):
    res = borgctl("status")
    assert res.returncode == 3, "no daemon yet: unreachable"
    assert "not running" in res.stderr
    start_borgd()
    assert borgctl("status").returncode == 0
    res = borgctl("run", "nosuch")
    assert res.returncode == 1
    assert "nosuch" in res.stderr
    res = borgctl("profile", "add", "x", "--repo", "main", "relative")
    assert res.returncode == 2, "borgd refused a bad value: a usage error"
    assert borgctl("frobnicate").returncode == 2
    assert borgctl("pause", "--for", "soon").returncode == 2


def test_calendar_needs_no_daemon_and_matches_systemd(borgctl):
    import subprocess

    args = [
        "Mon..Fri *-*-* 09:00",
        "--iterations",
        "3",
        "--base-time",
        "2026-03-27T12:00:00+00:00",
        "--tz",
        "Europe/Berlin",
    ]
    res = borgctl("calendar", *args)
    assert res.returncode == 0, res.stderr
    assert "Normalized form: Mon..Fri *-*-* 09:00:00" in res.stdout
    ours = [line.split(": ", 1)[1] for line in res.stdout.splitlines() if "(in UTC)" in line]
    oracle = subprocess.run(
        [
            "systemd-analyze",
            "calendar",
            "--iterations",
            "3",
            "--base-time",
            "@1774612800",
            "Mon..Fri *-*-* 09:00",
        ],
        env={"TZ": "Europe/Berlin", "PATH": os.environ["PATH"]},  # wherever it is installed
        capture_output=True,
        text=True,
    )
    theirs = [line.split(": ", 1)[1] for line in oracle.stdout.splitlines() if "(in UTC)" in line]
    assert ours == theirs and len(ours) == 3
    bad = borgctl("calendar", "Mon *-*-* 25:00")
    assert bad.returncode == 2 and "25" in bad.stderr


def test_completion_script_is_valid_bash(borgctl, tmp_path):
    import subprocess

    script = borgctl("completion", "bash").stdout
    assert "complete -F _borgctl borgctl" in script
    check = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert check.returncode == 0, check.stderr
    probe = subprocess.run(
        [
            "bash",
            "-c",
            script
            + '\nCOMP_WORDS=(borgctl sched); COMP_CWORD=1; _borgctl; echo "${COMPREPLY[*]}"',
        ],
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip() == "schedule"
