"""The real borg against a tiny temporary repository: our argv runs, our parser understands it.

Not skipped when borg is missing: borg is a test dependency (``.[test]``), and a
silently skipped test would hide exactly the drift it exists to catch.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from borgd.core.borg_argv import borg_env, build_argv, render_archive_name
from borgd.core.borg_output import (
    ArchiveProgress,
    Event,
    LogMessage,
    PlainLine,
    parse_create_stdout,
    parse_line,
)
from borgd.core.config import JobSpec, ProfileConfig, RepoConfig, Retention
from borgd.core.exit_codes import interpret_exit
from borgd.core.jobs import JobStatus, JobType
from borgd.core.progress import ProgressTracker
from tests.conftest import borg_binary

# The venv's borg (1.4, what tests/data was recorded with) first: never a borg that
# merely happens to be on the machine's PATH, such as Debian's 1.2 in /usr/bin.
BORG = borg_binary()


def borg_version() -> tuple[int, int, int]:
    out = subprocess.run([BORG, "--version"], capture_output=True, text=True, check=True)
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", out.stdout)
    assert m, out.stdout
    return int(m[1]), int(m[2]), int(m[3])


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: list[str]

    @property
    def events(self) -> list[Event]:
        return [parse_line(line) for line in self.stderr]


@pytest.fixture(scope="module")
def version() -> tuple[int, int, int]:
    return borg_version()


@dataclass
class World:
    tmp: Path
    src: Path
    repo: RepoConfig
    env: dict[str, str]


@pytest.fixture
def world(tmp_path: Path) -> World:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(12):
        (src / f"file{i}.txt").write_text(f"content {i}\n" * (i + 1))
    for i in range(5):
        (src / "sub" / f"blob{i}").write_bytes(os.urandom(20_000))
    repo = RepoConfig(name="t", url=str(tmp_path / "repo"), encryption="none")
    base = dict(os.environ, BORG_BASE_DIR=str(tmp_path / "borgbase"))
    return World(tmp_path, src, repo, borg_env(repo, base))


def run(argv: tuple[str, ...], world: World) -> Run:
    proc = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        env=world.env,
        cwd=world.tmp,
        start_new_session=True,
        timeout=120,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr.splitlines(keepends=True))


def profile(name: str, src: Path, retention: Retention | None = None) -> ProfileConfig:
    return ProfileConfig(
        name=name, repository="t", sources=(str(src),), retention=retention or Retention()
    )


def test_real_create_output_parses(world: World, version: tuple[int, int, int]) -> None:
    repo = world.repo
    init = run(build_argv(JobSpec(JobType.INIT, repo, None), borg=BORG, version=version), world)
    assert init.rc == 0, init.stderr

    web = profile("web", world.src)
    now = datetime.now(UTC)
    taken: set[str] = set()
    names = []
    for _ in range(2):  # two backups within one second must not collide
        name = render_archive_name(
            web.archive_template,
            profile="web",
            hostname="h",
            fqdn="h.example",
            user="u",
            now=now,
            uuid4="0",
            taken=taken,
        )
        taken.add(name)
        names.append(name)
        job = JobSpec(JobType.BACKUP, repo, web, archive_name=name)
        create = run(build_argv(job, borg=BORG, version=version), world)
        assert interpret_exit(create.rc).status is JobStatus.SUCCEEDED, create.stderr

        assert create.stderr, "borg printed nothing on stderr"
        tracker = ProgressTracker(JobType.BACKUP)
        for line, event in zip(create.stderr, create.events, strict=True):
            if line.lstrip().startswith("{"):
                assert not isinstance(event, PlainLine), line
            tracker.feed(event, 0.0)
        assert any(isinstance(e, ArchiveProgress) for e in create.events)

        result = parse_create_stdout(create.stdout)
        assert result is not None, create.stdout
        assert result.name == name
        assert result.nfiles == 17
        assert result.original_size > 100_000
        assert tracker.finish(result).nfiles == 17
    assert names[1] == names[0] + ".2"


def test_real_prune_stays_in_its_profile(world: World, version: tuple[int, int, int]) -> None:
    """`web` prunes its own archives and never touches `web-vm`'s (the glob, run by borg)."""
    repo = world.repo
    assert (
        run(build_argv(JobSpec(JobType.INIT, repo, None), borg=BORG, version=version), world).rc
        == 0
    )
    web = profile("web", world.src, Retention(keep_daily=1))
    vm = profile("web-vm", world.src)
    stamp = "2024-05-01T10:00:00"
    for p, name in ((web, f"web-{stamp}"), (web, f"web-{stamp}.2"), (vm, f"web-vm-{stamp}")):
        job = JobSpec(JobType.BACKUP, repo, p, archive_name=name)
        assert run(build_argv(job, borg=BORG, version=version), world).rc == 0

    prune = run(build_argv(JobSpec(JobType.PRUNE, repo, web), borg=BORG, version=version), world)
    assert interpret_exit(prune.rc, job_type=JobType.PRUNE).status is JobStatus.SUCCEEDED
    listed = [
        e.message
        for e in prune.events
        if isinstance(e, LogMessage) and e.name == "borg.output.list"
    ]
    assert any(m.startswith("Keeping archive") and f"web-{stamp}.2" in m for m in listed)
    assert any(m.startswith("Pruning archive") and f"web-{stamp} " in m for m in listed)
    assert not any("web-vm" in m for m in listed)

    remaining = run((BORG, "list", "--short", "--", repo.url), world)
    assert remaining.rc == 0
    assert sorted(remaining.stdout.split()) == [f"web-{stamp}.2", f"web-vm-{stamp}"]
