"""The same slice through borgctl, as a person at a terminal uses it."""

from __future__ import annotations

import json

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
    assert res.returncode == 1
    assert borgctl("frobnicate").returncode == 2
    assert borgctl("pause", "--for", "soon").returncode == 2
