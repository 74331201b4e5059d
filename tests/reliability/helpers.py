"""Helpers of the reliability runs: the D-Bus calls they repeat and the invariants they check.

Kept here (not shared with tests/e2e) so that these long runs depend only on
the public contract: busctl calls, borg's own view of the repositories, /proc.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import subprocess
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from tests.conftest import borg_binary, borg_json, wait_until
from tests.e2e.jobs_helpers import asv

FINISHED = frozenset({"succeeded", "warning", "failed", "cancelled", "interrupted", "skipped"})
LIVE = frozenset({"scheduled", "queued", "running"})
Busctl = Callable[..., Any]


def get_job(busctl: Busctl, job_id: int) -> dict[str, Any]:
    return busctl("GetJob", "t", job_id)


def all_jobs(busctl: Busctl, **flt: Any) -> list[dict[str, Any]]:
    jobs = busctl("ListJobs", "a{sv}", *asv(**flt))
    return jobs if isinstance(jobs, list) else [jobs] if jobs else []


def wait_status(busctl: Busctl, job_id: int, timeout: float = 60) -> dict[str, Any]:
    return wait_until(
        lambda: (j := get_job(busctl, job_id))["status"] in FINISHED and j,
        timeout,
        f"job {job_id} to finish",
    )


def init_repo(busctl: Busctl, name: str, repo: Path, **options: Any) -> int:
    """AddRepository with init (unencrypted); waits for the init job to succeed."""
    options.setdefault("encryption", "none")
    busctl("AddRepository", "ssa{sv}", name, str(repo), *asv(init=True, **options))
    inits = [j for j in all_jobs(busctl, type="init") if j["repository"] == name]
    assert len(inits) == 1, inits
    done = wait_status(busctl, inits[0]["id"])
    assert done["status"] == "succeeded", done
    return int(inits[0]["id"])


def add_profile(
    busctl: Busctl, name: str, repository: str, sources: list[Path], **options: Any
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


def start_job(busctl: Busctl, profile: str, job_type: str = "backup") -> int:
    return busctl("StartJob", "ssa{sv}", profile, job_type, 0)


def borg_env(session_env: Any) -> dict[str, str]:
    return {**session_env.vars, "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes"}


def borg_run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [borg_binary(), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


# -- processes ---------------------------------------------------------------------


def _stat(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2 :].split()


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[0] != b"Z"


def overlapping_runs(jobs: Iterable[dict[str, Any]]) -> list[tuple[int, int]]:
    """Pairs of jobs that ran at the same time on one repository (by their records)."""
    by_repo: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for j in jobs:
        if j["started_at"] and j["finished_at"]:
            by_repo[j["repository"]].append(j)
    pairs = []
    for runs in by_repo.values():
        for a, b in itertools.combinations(runs, 2):
            if a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"]:
                pairs.append((a["id"], b["id"]))
    return pairs


def intents_per_schedule(busctl: Busctl) -> dict[int, int]:
    """For every enabled schedule: how many `scheduled` jobs it has (must be exactly 1)."""
    schedules = busctl("ListSchedules")
    schedules = schedules if isinstance(schedules, list) else [schedules]
    counts = {s["id"]: 0 for s in schedules if s["enabled"]}
    for j in all_jobs(busctl, status="scheduled"):
        counts[j["schedule_id"]] = counts.get(j["schedule_id"], 0) + 1
    return counts


CHECKPOINT = re.compile(r"\.checkpoint(\.\d+)?$")


def archive_problems(
    jobs: list[dict[str, Any]], repo_name: str, repo_path: Path, env: dict[str, str]
) -> list[str]:
    """What is wrong between one repository's archives and the jobs that claim them:
    two jobs with one archive name, an archive no job made, a succeeded backup whose
    archive is missing, a backup refused because its archive existed already."""
    problems = []
    backups = [j for j in jobs if j["repository"] == repo_name and j["type"] == "backup"]
    claimed: dict[str, int] = {}
    for j in backups:
        if not j["archive"] or not j["started_at"]:
            continue
        base = CHECKPOINT.sub("", j["archive"])  # a stopped backup names its checkpoint
        if base in claimed:
            problems.append(f"jobs {claimed[base]} and {j['id']} share {j['archive']}")
        claimed[base] = j["id"]
        if j["status"] == "failed" and j["exit_code"] == 30:
            problems.append(f"job {j['id']} found its archive there already: {j['message']}")
    names = [a["name"] for a in borg_json("list", str(repo_path), env=env)["archives"]]
    present = set()
    for name in names:
        base = CHECKPOINT.sub("", name)
        present.add(base)
        if base not in claimed:
            problems.append(f"archive {name} in {repo_name} was made by no job")
    for j in backups:
        if j["status"] in ("succeeded", "warning") and j["archive"] not in present:
            problems.append(f"job {j['id']} {j['status']} but {j['archive']} is not in the repo")
    return problems


def status_counts(jobs: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for j in jobs:
        counts[j["status"]] += 1
    return dict(sorted(counts.items()))


def chain_violations(jobs: Iterable[dict[str, Any]]) -> list[str]:
    """Chain tasks (prune, compact, check after a backup) that ran although their backup did
    not succeed: after a failed, cancelled or interrupted backup they must not run."""
    by_id = {j["id"]: j for j in jobs}
    out = []
    for j in by_id.values():
        if j["trigger"] != "chain" or not j["started_at"]:
            continue
        parent = by_id.get(j["parent_id"])
        if parent is not None and parent["status"] not in ("succeeded", "warning"):
            out.append(
                f"{j['type']} job {j['id']} ran after its backup {parent['id']} {parent['status']}"
            )
    return out


INTERNAL = re.compile(r"internal_error|cannot_record|listener_failed|Traceback|unhandled", re.I)


def internal_errors(log: str) -> list[str]:
    """Lines of a daemon log that say borgd itself went wrong (not a job's own failure)."""
    return [line[:300] for line in log.splitlines() if INTERNAL.search(line)]


@contextlib.contextmanager
def log_on_failure(daemon: Callable[[], Any]) -> Iterator[None]:
    """On a failure, print the tail of the log of ``daemon()`` (the daemon running now)."""
    try:
        yield
    except BaseException:
        current = daemon()
        print(f"--- the end of {current.log_path} ---\n{current.log()[-8000:]}")
        raise
