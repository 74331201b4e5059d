"""borgctl tried as a careless or hostile user would: never a traceback, one line and
exit 2 for a usage mistake, nothing changed; quiet in a pipe; one --json convention."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from borgd import __version__
from borgd.cli.format import DURATION_US_KEYS, LINK_KEYS, NONE_TEXT_KEYS, TIME_KEYS
from tests.conftest import make_tree
from tests.e2e.jobs_helpers import add_profile, init_repo, start, wait_status

BAD = "\udcff"  # a byte that is not UTF-8, as Python hands it over from argv
LONG = "n" * 300


def state(busctl: Any) -> tuple[Any, ...]:
    """Everything a mistaken command could change."""
    return tuple(
        busctl(member, *args)
        for member, args in (
            ("ListRepositories", ()),
            ("ListProfiles", ()),
            ("ListSchedules", ()),
            ("ListJobs", ("a{sv}", 0)),
            ("ListNotifiers", ()),
        )
    )


@pytest.fixture
def ready(start_borgd, busctl, tmp_path: Path) -> Path:
    start_borgd()
    init_repo(busctl, "main", tmp_path / "repo")
    source = make_tree(tmp_path / "src", 4)
    add_profile(busctl, "docs", "main", [source])
    wait_status(busctl, start(busctl, "docs"))
    busctl("AddSchedule", "sssa{sv}", "docs", "backup", "*:0/5", 0)
    return source


HOSTILE: list[tuple[str, ...]] = [
    # Bytes that are not UTF-8 in a path, an exclude, a destination, a URL, a name.
    ("profile", "add", "p", "--repo", "main", f"/tmp/x{BAD}"),
    ("profile", "edit", "docs", "--exclude", f"*.{BAD}"),
    ("run", "docs", "--type", "restore", "--destination", f"/tmp/r{BAD}"),
    ("repo", "add", "r2", f"/tmp/repo{BAD}"),
    ("repo", "add", f"r{BAD}", "/tmp/repo2"),
    ("ls", "main", f"a{BAD}"),
    # Negative and huge numbers.
    ("jobs", "--limit", "-1"),
    ("jobs", "--limit", "99999999999"),
    ("show", "-1"),
    ("show", "0"),
    ("show", "99999999999999999999999"),
    ("cancel", "-5"),
    ("requeue", "18446744073709551616"),
    ("logs", "1", "--tail", "-3"),
    ("upcoming", "--days", "99999999999"),
    ("upcoming", "--days", "0"),
    ("schedule", "edit", "-1", "--retries", "3"),
    ("schedule", "add", "docs", "daily", "--retries", "11"),
    ("profile", "edit", "docs", "--nice", "20"),
    ("profile", "edit", "docs", "--keep-daily", "-1"),
    ("repo", "edit", "main", "--lock-wait", "4294967296"),
    ("pause", "--schedule", "-1"),
    ("calendar", "daily", "--iterations", "-2"),
    # Empty strings, very long names, spaces.
    ("profile", "add", "", "--repo", "main", "/tmp"),
    ("profile", "add", LONG, "--repo", "main", "/tmp"),
    ("profile", "add", "my docs", "--repo", "main", "/tmp"),
    ("repo", "add", "", "/tmp/r3"),
    ("repo", "add", "r3", ""),
    ("schedule", "add", "docs", ""),
    ("schedule", "add", "docs", "every 0s"),
    ("run", ""),
    ("run", "docs", "--type", "frobnicate"),
    ("pause", "--for", ""),
    ("pause", "--until", "someday"),
    ("blackout", "set", "9h"),
    ("blackout", "set", " "),
    ("profile", "edit", "docs", "--blackout", "daily 9d"),
    ("profile", "edit", "docs"),  # nothing to change
    ("notify", "add", "", "json://localhost/x"),
    ("jobs", "--since", "yesterday-ish"),
]


def test_hostile_input_never_a_traceback_exit_2_and_nothing_changed(
    ready, busctl, borgctl
) -> None:
    before = state(busctl)
    failures = []
    for argv in HOSTILE:
        res = borgctl(*argv)
        lines = res.stderr.strip().splitlines()
        if res.returncode != 2 or len(lines) != 1 or "Traceback" in res.stderr:
            failures.append((argv[:4], res.returncode, res.stderr[-300:]))
    assert failures == []
    assert state(busctl) == before


LISTINGS: list[tuple[str, ...]] = [
    ("jobs",),
    ("jobs", "--json"),
    ("upcoming", "--days", "400"),
    ("upcoming", "--days", "400", "--json"),
    ("logs", "1"),
    ("logs", "1", "--raw"),
    ("status",),
    ("repo", "list"),
    ("profile", "list"),
    ("schedule", "list"),
    ("archives", "main"),
    ("ls", "main", "{archive}"),
    ("notify", "list"),
    ("calendar", "*:*:0/1", "--iterations", "10000"),
    ("export",),
]


def test_every_listing_into_head_ends_quietly(ready, busctl, session_env) -> None:
    """Output larger than a pipe holds, and `head -1` gone after one line: borgctl ends
    with 0 or SIGPIPE's 141, and prints nothing on stderr."""
    archive = busctl("ListArchives", "sa{sv}", "main", 0)[0]["name"]
    for argv in LISTINGS:
        words = [a.format(archive=archive) for a in argv]
        command = " ".join([sys.executable, "-m", "borgd.cli.main", *(f"'{a}'" for a in words)])
        res = subprocess.run(
            ["bash", "-c", f"{command} 2>err | head -1 >/dev/null; echo ${{PIPESTATUS[0]}}"],
            cwd=session_env.home,
            env=session_env.vars,
            capture_output=True,
            text=True,
            timeout=60,
        )
        err = (session_env.home / "err").read_text()
        assert res.stdout.strip() in ("0", "141"), (argv, res.stdout, err)
        assert err == "", (argv, err)


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_output_to_a_full_disk_is_one_line_and_exit_1(ready, session_env, unbuffered) -> None:
    """Output that cannot be written (stdout on /dev/full) is an ordinary fault: one
    line that says so, exit 1, no traceback, whether Python buffers stdout or not."""
    env = {**session_env.vars, "PYTHONUNBUFFERED": unbuffered}
    # Quick commands, one on the event loop (repo list), one without borgd (calendar).
    for argv in (
        ("jobs",),
        ("jobs", "--json"),
        ("status",),
        ("repo", "list"),
        ("calendar", "daily"),
    ):
        with open("/dev/full", "w") as full:
            done = subprocess.run(
                [sys.executable, "-m", "borgd.cli.main", *argv],
                env=env,
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
            )
        assert done.returncode == 1, (argv, done.stderr)
        (line,) = done.stderr.splitlines()  # one line, whether main or the exit saw it
        assert line.startswith("borgctl: ") and line.endswith("No space left on device"), argv


def test_apply_of_an_invalid_file_changes_nothing(ready, busctl, borgctl, tmp_path) -> None:
    before = state(busctl)
    bad = tmp_path / "bad.toml"
    # Valid sections first: a partial apply would add them before reaching the mistake.
    bad.write_text(
        f"""
[repositories.extra]
url = "{tmp_path / "extra"}"

[profiles.more]
repository = "main"
sources = ["{tmp_path}"]

[[schedules]]
profile = "docs"
spec = "Mon 25:00"
"""
    )
    for args in (("apply", str(bad)), ("apply", "--dry-run", str(bad))):
        res = borgctl(*args)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert "hour" in res.stderr and "nothing was changed" in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
        assert state(busctl) == before


def check_convention(where: str, value: Any, key: str = "") -> list[str]:
    """Where the --json output breaks its one documented convention (borgctl(1))."""
    bad: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            bad += check_convention(f"{where}.{k}", v, k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            bad += check_convention(f"{where}[{i}]", v, key)
    elif key in TIME_KEYS and not (value is None or (isinstance(value, str) and "T" in value)):
        bad.append(f"{where}: time {value!r} is neither ISO 8601 nor null")
    elif key in DURATION_US_KEYS and not (value is None or isinstance(value, float | int)):
        bad.append(f"{where}: duration {value!r}")
    elif key in DURATION_US_KEYS and isinstance(value, int) and value > 10**9:
        bad.append(f"{where}: duration {value!r} looks like microseconds")
    elif key in LINK_KEYS and value == 0:
        bad.append(f"{where}: 0 for no link (null expected)")
    elif key in NONE_TEXT_KEYS and value == "":
        bad.append(f"{where}: empty text (null expected)")
    elif key == "exit_code" and value == -1:
        bad.append(f"{where}: -1 exit code (null expected)")
    return bad


def test_every_json_output_follows_one_convention(ready, busctl, borgctl) -> None:
    busctl("UpdateProfile", "sa{sv}", "docs", 1, "max_age", "t", 86_400_000_000)
    outputs = {}
    for argv in (
        ("jobs", "--json"),
        ("show", "1", "--json"),
        ("upcoming", "--json"),
        ("repo", "list", "--json"),
        ("repo", "show", "main", "--json"),
        ("profile", "list", "--json"),
        ("profile", "show", "docs", "--json"),
        ("schedule", "list", "--json"),
        ("archives", "main", "--json"),
        ("notify", "list", "--json"),
        ("blackout", "--json"),
    ):
        res = borgctl(*argv)
        assert res.returncode == 0, (argv, res.stderr)
        outputs[" ".join(argv)] = json.loads(res.stdout)
    bad = [b for name, data in outputs.items() for b in check_convention(name, data)]
    assert bad == []
    # The convention, seen: a finished job's times, a scheduled one's nulls, seconds.
    jobs = outputs["jobs --json"]
    done = next(j for j in jobs if j["status"] == "succeeded")
    assert done["finished_at"].count(":") >= 2 and done["skip_reason"] is None
    assert outputs["profile show docs --json"]["max_age"] == 86400


def test_asking_commands_show_borgd_values_as_they_are(ready, busctl, borgctl) -> None:
    """status, jobs and show go through the quick client (dbus-python): its booleans
    are ints underneath, its strings and numbers subclasses; what they print and
    their JSON must be borgd's values, as the other commands print them."""
    status = json.loads(borgctl("status", "--json").stdout)
    assert status["paused"] is False and status["onbattery"] is False
    assert status["version"] == __version__
    busctl("Pause", "t", 0)
    assert json.loads(borgctl("status", "--json").stdout)["paused"] is True
    assert "paused:        yes, until resumed" in borgctl("status").stdout
    busctl("Resume")
    done = borgctl("jobs", "--limit", "1", "--status", "succeeded", "--json")
    (job,) = json.loads(done.stdout)
    shown = json.loads(borgctl("show", str(job["id"]), "--json").stdout)
    assert shown == job and type(job["id"]) is int and type(job["nfiles"]) is int
    assert type(job["progress"]) is float and type(job["archive"]) is str


def test_completion_says_nothing_when_borgd_does_not_answer(
    start_borgd, busctl, borgctl, tmp_path
) -> None:
    """A stopped borgd (SIGSTOP: the bus still holds its name) must not hang the
    shell's Tab: the completion helper gives up after its timeout, quietly."""
    daemon = start_borgd()
    busctl("AddRepository", "ssa{sv}", "main", str(tmp_path / "repo"), 0)
    add_profile(busctl, "docs", "main", [tmp_path])
    assert borgctl("_names", "profiles").stdout.split() == ["docs"]
    daemon.proc.send_signal(signal.SIGSTOP)
    try:
        begin = time.monotonic()
        res = borgctl("_names", "profiles", timeout=20)
        took = time.monotonic() - begin
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    assert took < 5, took
    assert borgctl("_names", "profiles").stdout.split() == ["docs"]


def test_edits_say_what_changed_and_excludes_can_be_cleared(ready, busctl, borgctl) -> None:
    res = borgctl("profile", "edit", "docs", "--exclude", "*.tmp", "--exclude", "*.bak")
    assert (res.returncode, res.stdout.strip()) == (0, "profile docs changed: excludes")
    assert busctl("ListProfiles")[0]["excludes"] == ["*.tmp", "*.bak"]
    assert borgctl("profile", "edit", "docs", "--no-excludes").returncode == 0
    assert busctl("ListProfiles")[0]["excludes"] == []
    res = borgctl("profile", "edit", "docs", "--sources", "/nonexistent-source")
    assert res.returncode == 0
    assert "source /nonexistent-source does not exist now" in res.stderr
    shown = borgctl("profile", "show", "docs").stdout
    for setting in ("compression:", "keep daily:", "nice:", "blackout:", "max age:"):
        assert setting in shown, shown
    assert borgctl("--version").stdout.startswith("borgctl ")


def test_a_failed_job_shows_why_and_no_archive(ready, busctl, borgctl, tmp_path) -> None:
    add_profile(busctl, "gone", "main", [tmp_path / "src"], pre_command="exit 3")
    failed = wait_status(busctl, start(busctl, "gone"))
    assert failed["status"] == "failed", failed
    row = next(
        line for line in borgctl("jobs").stdout.splitlines() if line.startswith(str(failed["id"]))
    )
    assert failed["message"][:20] in row, row
    shown = borgctl("show", str(failed["id"])).stdout
    assert "archive:" not in shown and failed["message"] in shown, shown


def test_repo_add_init_wait_fails_when_the_init_fails(start_borgd, borgctl, tmp_path) -> None:
    start_borgd()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("not a repository")
    res = borgctl(
        "repo", "add", "r", str(tmp_path / "taken"), "--init", "--encryption", "none", "--wait"
    )
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "init of r failed" in res.stderr
    ok = borgctl(
        "repo", "add", "s", str(tmp_path / "fresh"), "--init", "--encryption", "none", "--wait"
    )
    assert ok.returncode == 0 and "initialised" in ok.stdout, ok


def test_completion_asks_borgd_for_names_ids_and_knows_statuses(ready, busctl, complete) -> None:
    assert complete("run", "d") == ["docs"]
    assert complete("profile", "edit", "") == ["docs"]
    jobs = {str(j["id"]) for j in busctl("ListJobs", "a{sv}", 0)}
    assert set(complete("show", "")) == jobs
    (schedule,) = busctl("ListSchedules")
    assert complete("schedule", "edit", "") == [str(schedule["id"])]
    assert complete("jobs", "--status", "fa") == ["failed"]
    assert complete("jobs", "--repo", "") == ["main"]
