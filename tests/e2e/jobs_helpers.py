"""Small helpers shared by the job-engine end-to-end tests (tests/e2e/test_jobs_*.py)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import borg_binary, wait_until

FINISHED = ("succeeded", "warning", "failed", "cancelled", "interrupted", "skipped")
Busctl = Callable[..., Any]


def asv(**options: Any) -> list[Any]:
    """Python values as busctl's `a{sv}` arguments: str → s, bool → b, list → as,
    (signature, value) for anything else (integers: ("u", 5), ("t", 10**6))."""
    out: list[Any] = [len(options)]
    for key, value in options.items():
        if isinstance(value, bool):
            out += [key, "b", "true" if value else "false"]
        elif isinstance(value, str):
            out += [key, "s", value]
        elif isinstance(value, list):
            out += [key, "as", len(value), *value]
        else:
            sig, val = value
            out += [key, sig, val]
    return out


def job(busctl: Busctl, job_id: int) -> dict[str, Any]:
    return busctl("GetJob", "t", job_id)


def wait_status(busctl: Busctl, job_id: int, timeout: float = 60) -> dict[str, Any]:
    return wait_until(
        lambda: (j := job(busctl, job_id))["status"] in FINISHED and j,
        timeout,
        f"job {job_id} to finish",
    )


def wait_running(busctl: Busctl, job_id: int, timeout: float = 30) -> dict[str, Any]:
    return wait_until(
        lambda: (j := job(busctl, job_id))["status"] == "running" and j,
        timeout,
        f"job {job_id} to run",
        interval=0.05,
    )


def add_repo(busctl: Busctl, name: str, url: Path | str, **options: Any) -> int:
    return busctl("AddRepository", "ssa{sv}", name, str(url), *asv(**options))


def init_repo(busctl: Busctl, name: str, repo: Path, **options: Any) -> int:
    """AddRepository with init (unencrypted unless told otherwise); waits for the init job."""
    options.setdefault("encryption", "none")
    add_repo(busctl, name, repo, init=True, **options)
    inits = [j for j in busctl("ListJobs", "a{sv}", *asv(type="init")) if j["repository"] == name]
    assert len(inits) == 1, inits
    done = wait_status(busctl, inits[0]["id"])
    assert done["status"] == "succeeded", done
    return int(inits[0]["id"])


def add_profile(
    busctl: Busctl, name: str, repository: str, sources: list[Path | str], **options: Any
) -> int:
    return busctl(
        "AddProfile",
        "ssasa{sv}",
        name,
        repository,
        len(sources),
        *map(str, sources),
        *asv(**options),
    )


def start(busctl: Busctl, profile: str, job_type: str = "backup", **options: Any) -> int:
    return busctl("StartJob", "ssa{sv}", profile, job_type, *asv(**options))


def sparse_tree(root: Path, files: int, size_mb: int) -> Path:
    """Files of zeros that take no disk space: borg still reads every byte."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        with open(root / f"sparse-{i}.img", "wb") as f:
            f.truncate(size_mb << 20)
    return root


def marked_tree(root: Path, files: int, size_mb: int) -> Path:
    """Sparse files with a unique marker every MiB: every chunk is new data to borg
    (so `check --verify-data` has as much to read as `create`), yet creating them is
    instant and the repository stays small (the chunks compress to almost nothing)."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        with open(root / f"marked-{i}.img", "wb") as f:
            f.truncate(size_mb << 20)
            for k in range(size_mb):
                f.seek(k << 20)
                f.write(f"file {i} MiB {k} of {root}".encode())
    return root


def borg_env(session_env: Any, passphrase: str | None = None) -> dict[str, str]:
    env = {**session_env.vars, "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes"}
    if passphrase is not None:
        env["BORG_PASSPHRASE"] = passphrase
    return env


def borg_run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [borg_binary(), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def children(pid: int) -> list[int]:
    """Pids of the live processes whose parent is `pid` (read from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != b"Z":
            found.append(int(entry))
    return found


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def borg_children(pid: int) -> list[int]:
    """The borg processes the daemon `pid` runs now (not hooks)."""
    return [c for c in children(pid) if any(Path(a).name == "borg" for a in cmdline(c)[:2])]


def overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"]


def backing_up(busctl: Busctl, job_id: int) -> bool:
    """borg has stored file data: its log (flushed 4 times a second) shows it."""
    return any(
        '"archive_progress"' in line
        and '"original_size": 0,' not in line
        and '"finished": false' in line
        for line in busctl("GetJobLog", "tu", job_id, 5)
    )
