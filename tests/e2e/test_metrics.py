"""borgd --metrics-file as node_exporter's textfile collector and its admin see it: the
file follows the jobs (real borg), its values are the jobs' own, promtool has
nothing to say about it, it is replaced whole and at most once a second."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.conftest import make_tree, wait_until
from tests.e2e.jobs_helpers import add_profile, add_repo, init_repo, start, wait_status
from tests.e2e.test_scheduler_runs import prop
from tests.reliability.helpers import all_jobs
from tests.unit.test_metrics import promtool

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of the file: (name, labels) → value."""
    out: Samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = tuple((k, v) for k, v in LABEL.findall(m[2] or ""))
        out[(m[1], labels)] = float(m[3])
    return out


def promtool_says(path: Path) -> tuple[int, str]:
    with open(path) as f:
        done = subprocess.run(
            [promtool(), "check", "metrics"], stdin=f, capture_output=True, text=True, timeout=30
        )
    return done.returncode, done.stdout + done.stderr


class Watcher:
    """Looks at the file every few milliseconds, in a thread: every new file (inode) and
    when it was seen; and whether any read found less than a whole file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[tuple[float, int]] = []
        self.partial: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def watch(self) -> None:
        while not self.stop.wait(0.003):
            try:
                with open(self.path) as f:
                    inode, text = os.fstat(f.fileno()).st_ino, f.read()
            except FileNotFoundError:  # a rename never leaves the name without a file
                self.partial.append("")
                continue
            if not self.seen or self.seen[-1][1] != inode:
                self.seen.append((time.monotonic(), inode))
            if not (text.startswith("# HELP borgd_info ") and text.endswith("\n")):
                self.partial.append(text)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


def test_the_file_follows_the_jobs_and_promtool_finds_nothing(start_borgd, busctl, tmp_path):
    target = tmp_path / "textfile" / "borgd.prom"
    target.parent.mkdir()
    start_borgd("--metrics-file", str(target))
    wait_until(target.exists, 10, "the start-up write")
    watcher = Watcher(target)
    try:
        init_repo(busctl, "r", tmp_path / "repo")
        add_profile(busctl, "ok", "r", [make_tree(tmp_path / "src", 12)], keep_daily=("u", 1))
        # No source exists: fails without borg.  max_age 1 s: overdue at once.
        add_profile(busctl, "bad", "r", [tmp_path / "nowhere"], max_age=("t", 1_000_000))
        busctl("AddSchedule", "sssa{sv}", "ok", "backup", "daily", 0)
        backups = [wait_status(busctl, start(busctl, "ok")) for _ in range(2)]
        failed = wait_status(busctl, start(busctl, "bad"))
        prune = wait_status(busctl, start(busctl, "ok", "prune"))
        assert [j["status"] for j in [*backups, failed, prune]] == [
            "succeeded",
            "succeeded",
            "failed",
            "succeeded",
        ], failed["message"]
        wait_until(  # the list job the prune chained, too
            lambda: not all_jobs(busctl, status=["queued", "running"]), 30, "the jobs to end"
        )
        jobs = all_jobs(busctl)
        profiles = {p["name"]: p for p in busctl("ListProfiles")}
        (repo,) = busctl("ListRepositories")
        (intent,) = [j for j in jobs if j["status"] == "scheduled"]
        last = backups[-1]
        expected: Samples = {
            ("borgd_info", (("version", prop(busctl, "Version")),)): 1,
            ("borgd_profile_info", (("profile", "ok"), ("repository", "r"))): 1,
            ("borgd_profile_info", (("profile", "bad"), ("repository", "r"))): 1,
            ("borgd_last_success_timestamp_seconds", (("profile", "ok"),)): (
                last["finished_at"] / 1e6
            ),
            ("borgd_last_success_timestamp_seconds", (("profile", "bad"),)): 0,
            ("borgd_last_backup_duration_seconds", (("profile", "ok"),)): last["duration"],
            ("borgd_last_backup_original_bytes", (("profile", "ok"),)): last["original_size"],
            ("borgd_last_backup_compressed_bytes", (("profile", "ok"),)): last["compressed_size"],
            ("borgd_last_backup_deduplicated_bytes", (("profile", "ok"),)): (
                last["deduplicated_size"]
            ),
            ("borgd_last_backup_files", (("profile", "ok"),)): last["nfiles"],
            ("borgd_profile_overdue", (("profile", "ok"),)): 0,
            ("borgd_profile_overdue", (("profile", "bad"),)): 1,
            ("borgd_next_run_timestamp_seconds", (("profile", "ok"),)): (
                intent["scheduled_for"] / 1e6
            ),
            ("borgd_next_run_timestamp_seconds", (("profile", "bad"),)): 0,
            ("borgd_repository_size_bytes", (("repository", "r"),)): repo["size"],
            ("borgd_repository_archives", (("repository", "r"),)): repo["archives"],
        }
        for (job_type, status), n in Counter((j["type"], j["status"]) for j in jobs).items():
            expected[("borgd_jobs", (("type", job_type), ("status", status)))] = n
        assert profiles["bad"]["overdue"] and not profiles["ok"]["overdue"]
        assert last["original_size"] > 0 and repo["size"] > 0 and repo["archives"] == 1
        assert {j["type"] for j in jobs} >= {"init", "backup", "prune", "list"}

        # The last change (moments ago) is in the file within about a second: 3 s, for a
        # busy machine.
        wait_until(
            lambda: parse(target.read_text()) == expected, 3, "the file to show the last change"
        )
    finally:
        watcher.close()
    assert promtool_says(target) == (0, "")
    assert not watcher.partial, watcher.partial[:1]
    # Many changes (jobs added, started, finished), at most one new file a second.
    assert len(watcher.seen) >= 3, watcher.seen
    gaps = [b[0] - a[0] for a, b in zip(watcher.seen, watcher.seen[1:], strict=False)]
    assert min(gaps) > 0.75, gaps


def test_env_names_the_file_status_shows_it_and_a_failed_write_is_retried(
    start_borgd, busctl, borgctl, tmp_path
):
    first = start_borgd()
    assert prop(busctl, "MetricsFile") == ""
    assert "metrics file:  off\n" in borgctl("status").stdout
    assert first.stop() == 0

    # The folder does not exist yet: borgd says so and serves on.
    target = tmp_path / "later" / "borgd.prom"
    daemon = start_borgd(env={"BORGD_METRICS_FILE": str(target)})
    wait_until(lambda: "metrics.write_failed" in daemon.log(), 10, "a warning")
    assert prop(busctl, "MetricsFile") == str(target)
    res = borgctl("status")
    assert res.returncode == 0 and f"metrics file:  {target}\n" in res.stdout, res.stdout
    assert json.loads(borgctl("status", "--json").stdout)["metricsfile"] == str(target)

    # The next change writes it.
    target.parent.mkdir()
    add_repo(busctl, "r", tmp_path / "repo")
    add_profile(busctl, "docs", "r", [tmp_path])
    busctl("AddSchedule", "sssa{sv}", "docs", "backup", "hourly", 0)
    (intent,) = all_jobs(busctl, status=["scheduled"])
    key = ("borgd_next_run_timestamp_seconds", (("profile", "docs"),))
    got: Any = wait_until(
        lambda: target.exists() and key in (s := parse(target.read_text())) and s,
        5,
        "the file after a change",
    )
    assert got[key] == intent["scheduled_for"] / 1e6
    assert got[("borgd_jobs", (("type", "backup"), ("status", "scheduled")))] == 1
    assert promtool_says(target) == (0, "")
    assert daemon.proc.poll() is None
