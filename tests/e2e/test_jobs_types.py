"""Every job type through StartJob, on real borg, checked with borg itself."""

from __future__ import annotations

import filecmp
import os
from pathlib import Path

import pytest

from tests.conftest import BusctlError, borg_json, make_tree
from tests.e2e.jobs_helpers import (
    add_profile,
    add_repo,
    borg_env,
    borg_run,
    start,
    wait_status,
)


def archive_names(repo: Path, env: dict[str, str]) -> list[str]:
    return [a["name"] for a in borg_json("list", str(repo), env=env)["archives"]]


def repo_bytes(repo: Path) -> int:
    return sum(f.stat().st_size for f in (repo / "data").rglob("*") if f.is_file())


def same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(same_tree(a / d, b / d) for d in cmp.common_dirs)


def succeeded(busctl, job_id: int) -> dict:
    done = wait_status(busctl, job_id)
    assert done["status"] == "succeeded", (done["message"], busctl("GetJobLog", "tu", job_id, 20))
    assert done["exit_code"] == 0
    return done


def test_every_job_type_on_a_real_repository(start_borgd, busctl, gdbus, session_env, tmp_path):
    start_borgd()
    env = borg_env(session_env)
    repo = tmp_path / "repo"
    source = make_tree(tmp_path / "web", 40)
    (source / "junk.tmp").write_text("excluded")
    (source / "big.bin").write_bytes(os.urandom(1 << 20))
    other = make_tree(tmp_path / "webvm", 5)

    # init through StartJob: a repository added without init, then initialised.
    add_repo(busctl, "main", repo, encryption="none")
    add_profile(
        busctl,
        "web",
        "main",
        [source],
        excludes=["*.tmp"],
        compression="zstd,3",
        keep_daily=("u", 1),
    )
    # A profile whose name starts like the other's: prune of "web" must not touch it.
    add_profile(busctl, "web-vm", "main", [other])
    succeeded(busctl, start(busctl, "web", "init"))
    assert borg_json("info", str(repo), env=env)["encryption"]["mode"] == "none"

    # backup: the archive is in borg, with the profile's excludes and compression.
    first = succeeded(busctl, start(busctl, "web"))
    assert first["archive"].startswith("web-")
    assert archive_names(repo, env) == [first["archive"]]
    items = archive_paths(env, f"{repo}::{first['archive']}")
    assert f"{str(source).lstrip('/')}/big.bin" in items
    assert not any(p.endswith("junk.tmp") for p in items)
    info = borg_json("info", f"{repo}::{first['archive']}", env=env)["archives"][0]
    assert "--compression=zstd,3" in info["command_line"]
    assert info["stats"]["nfiles"] == first["nfiles"] == 41

    vm = succeeded(busctl, start(busctl, "web-vm"))
    (source / "big.bin").unlink()
    second = succeeded(busctl, start(busctl, "web"))
    assert second["archive"] != first["archive"]
    assert sorted(archive_names(repo, env)) == sorted(
        [first["archive"], vm["archive"], second["archive"]]
    )

    # prune: keep_daily=1 keeps the newest of today, scoped to this profile's archives.
    succeeded(busctl, start(busctl, "web", "prune"))
    assert sorted(archive_names(repo, env)) == sorted([vm["archive"], second["archive"]])

    # compact: the pruned archive's unique megabyte leaves the repository.
    before = repo_bytes(repo)
    succeeded(busctl, start(busctl, "web", "compact"))
    assert before - repo_bytes(repo) > 900_000

    # check, with each of its options reaching borg.
    quick = succeeded(
        busctl, start(busctl, "web", "check", repository_only=True, max_duration=("t", 5_000_000))
    )
    full = succeeded(busctl, start(busctl, "web", "check", verify_data=True))
    archives = succeeded(busctl, start(busctl, "web", "check", archives_only=True))

    def command(done: dict) -> str:
        return next(line for line in busctl("GetJobLog", "tu", done["id"], 0) if "borg" in line)

    assert "--repository-only --max-duration=5" in command(quick)
    assert "--verify-data" in command(full) and "--repository-only" not in command(full)
    assert "--archives-only" in command(archives)

    # restore: the newest archive by default; absolute paths as the user backed them up.
    whole = tmp_path / "restore-all"
    done = succeeded(busctl, start(busctl, "web", "restore", destination=str(whole)))
    assert done["archive"] == second["archive"]
    restored = whole / str(source).lstrip("/")
    (source / "junk.tmp").unlink()  # excluded: not in the archive
    assert same_tree(source, restored)

    part = tmp_path / "restore-part"
    done = succeeded(
        busctl,
        start(
            busctl,
            "web",
            "restore",
            archive=second["archive"],
            destination=str(part),
            paths=[str(source / "d3")],
        ),
    )
    restored = part / str(source).lstrip("/")
    assert sorted(p.name for p in restored.iterdir()) == ["d3"]
    assert same_tree(source / "d3", restored / "d3")
    assert done["progress"] == 1.0

    # The pruned archive is gone, and the failure says so.
    gone = wait_status(
        busctl, start(busctl, "web", "restore", archive=first["archive"], destination=str(part))
    )
    assert gone["status"] == "failed" and gone["exit_code"] == 31
    assert "the archive does not exist" in gone["message"], gone


def archive_paths(env: dict[str, str], archive: str) -> list[str]:
    res = borg_run("list", "--format={path}{NL}", archive, env=env)
    assert res.returncode == 0, res.stderr
    return res.stdout.splitlines()


def test_restore_never_writes_over_the_system_or_the_source(start_borgd, busctl, gdbus, tmp_path):
    start_borgd()
    source = make_tree(tmp_path / "src", 3)
    (tmp_path / "link").symlink_to(source)
    add_repo(busctl, "main", tmp_path / "repo", encryption="none")
    add_profile(busctl, "docs", "main", [source])
    for dest, why in (
        ("/", "'/'"),
        (str(source), "inside the backed-up folder"),
        (f"{source}/d1/new", "inside the backed-up folder"),
    ):
        with pytest.raises(BusctlError) as err:
            gdbus(
                "StartJob", "docs", "restore", f"{{'destination': <'{dest}'>, 'archive': <'x'>}}"
            )
        assert err.value.name == "org.borgd1.Error.InvalidArgument"
        assert why in err.value.text
    # Through a symlink the folder is lexically outside the source: the run resolves it
    # and refuses before borg starts.
    job_id = start(busctl, "docs", "restore", destination=f"{tmp_path}/link/x", archive="x")
    done = wait_status(busctl, job_id)
    assert done["status"] == "failed", done
    assert "inside the backed-up folder" in done["message"]
    assert not (source / "x").exists()
