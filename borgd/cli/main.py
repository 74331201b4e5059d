"""borgctl: the command line client. It speaks D-Bus only; it never opens the store.

Exit codes: 0 ok, 1 the operation failed, 2 usage, 3 borgd unreachable.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime

from borgd import __version__
from borgd.cli import archives_cmd, notify_cmd
from borgd.cli import format as fmt
from borgd.cli.args import COUNT, IDENT, OneLineParser, int_in, refuse_non_utf8
from borgd.cli.client import (
    CallFailed,
    Client,
    Unreachable,
    UsageError,
    run_sync,
    v,
)

TYPE_CHECKING = False  # importing typing costs borgctl ~3 ms at start (cli/entry.py)
if TYPE_CHECKING:
    from typing import Any

    from borgd.cli.client import Arg

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
INVALID_ARGUMENT = "org.borgd1.Error.InvalidArgument"
_OPTION_KEY = re.compile(r"(option |)'([a-z][a-z0-9_]*)'")


def flag_names(text: str) -> str:
    """borgd names its option keys (``option 'max_duration'``); say the flag instead."""
    return _OPTION_KEY.sub(
        lambda m: "--" + m.group(2).replace("_", "-") if m.group(1) else m.group(0), text
    )


TERMINAL = {"succeeded", "warning", "failed", "cancelled", "interrupted", "skipped"}
LIVE = {"scheduled", "queued", "running"}
JOB_TYPES = ("backup", "prune", "compact", "check", "restore", "init", "list", "delete", "mount")
_DURATION = re.compile(r"(\d+)\s*(min|w|d|h|m|s)")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "min": 60, "s": 1}


def parse_duration(text: str) -> int:
    """'2h', '1h30m', '90s', '7d' -> microseconds."""
    compact = text.replace(" ", "")
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise UsageError(f"not a duration: {text!r} (use e.g. 90s, 30m, 2h, 1d, 1h30m)")
    return sum(int(n) * _UNITS[u] for n, u in parts) * 1_000_000


def parse_when(text: str, *, past: bool = False) -> int:
    """ISO 8601 time, '@EPOCH', or a duration from now (ago when `past`) -> microseconds."""
    if text.startswith("@"):
        return int(float(text[1:]) * 1_000_000)
    try:
        delta = parse_duration(text)
    except UsageError:
        pass
    else:
        now = time.time_ns() // 1000
        return now - delta if past else now + delta
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"not a time: {text!r} (use ISO 8601, @EPOCH or a duration)") from None
    if when.tzinfo is None:
        when = when.astimezone()
    return int(when.timestamp() * 1_000_000)


def _now() -> datetime:
    return datetime.now(UTC).astimezone()


emit_json = fmt.emit_json


# -- option dictionaries -------------------------------------------------------


_v = v  # an a{sv} value: (signature, value)


def repo_options(a: argparse.Namespace) -> dict[str, Arg]:
    opts: dict[str, Arg] = {}
    if getattr(a, "encryption", None):
        opts["encryption"] = _v("s", a.encryption)
    if getattr(a, "init", False):
        opts["init"] = _v("b", True)
    if a.ssh_command is not None:
        opts["ssh_command"] = _v("s", a.ssh_command)
    if a.lock_wait is not None:
        opts["lock_wait"] = _v("u", a.lock_wait)
    if a.upload_ratelimit is not None:
        opts["upload_ratelimit"] = _v("u", a.upload_ratelimit)
    if a.device is not None:
        opts["device"] = _v("s", a.device)
    for name in ("automount", "eject_after"):
        if getattr(a, name, None) is not None:
            opts[name] = _v("b", getattr(a, name))
    if a.passcommand is not None:
        opts["passcommand"] = _v("s", a.passcommand)
    passphrase = None
    if a.passphrase_stdin:
        passphrase = read_passphrase()
    elif a.passphrase_env:
        passphrase = os.environ.get(a.passphrase_env)
        if passphrase is None:
            raise UsageError(f"${a.passphrase_env} is not set")
    if passphrase is not None:
        opts["passphrase"] = _v("s", passphrase)
    return opts


def read_passphrase() -> str:
    """From a pipe: its first line.  On a terminal: asked twice, without echo."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    import getpass

    first = getpass.getpass("Passphrase: ")
    if not first:
        raise UsageError("the passphrase must not be empty")
    if getpass.getpass("Passphrase again: ") != first:
        raise UsageError("the two passphrases differ; nothing was changed")
    return first


def changed_line(what: str, opts: dict[str, Any]) -> str:
    if not opts:
        raise UsageError(f"nothing to change for {what}: give at least one option")
    keys = ", ".join(k.replace("_", "-") for k in sorted(opts) if k != "passphrase")
    secret = "passphrase" in opts
    return f"{what} changed: " + ", ".join(p for p in (keys, "passphrase" if secret else "") if p)


def warn_missing_sources(sources: list[str]) -> None:
    """borg would only warn at each backup; say it now, while it is being set up."""
    for source in sources:
        if source.startswith("/") and not os.path.lexists(source):
            print(
                f"borgctl: warning: source {source} does not exist now "
                "(each backup ends with a warning until it does)",
                file=sys.stderr,
            )


def print_settings(item: dict[str, Any]) -> None:
    """Every setting of one repository, profile or schedule, one per line."""
    now = _now()
    width = max(len(k) for k in item) + 1
    for key in sorted(item):
        value = item[key]
        if key in fmt.TIME_KEYS and isinstance(value, int):
            value = fmt.human_time(value, now)
        elif key in fmt.DURATION_US_KEYS and isinstance(value, int):
            value = fmt.human_duration(value / 1e6) if value else "-"
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        print(f"{key.replace('_', ' ') + ':':{width + 1}} {value if value != '' else '-'}")


PROFILE_FLAGS: tuple[tuple[str, str], ...] = (
    ("compression", "s"),
    ("archive_template", "s"),
    ("keep_within", "s"),
    ("keep_hourly", "u"),
    ("keep_daily", "u"),
    ("keep_weekly", "u"),
    ("keep_monthly", "u"),
    ("keep_yearly", "u"),
    ("check_every", "u"),
    ("pre_command", "s"),
    ("post_command", "s"),
    ("nice", "i"),
    ("ionice", "s"),
)
PROFILE_BOOLS = ("prune_after", "compact_after", "enabled", "inhibit_sleep", "one_file_system")


def profile_options(a: argparse.Namespace) -> dict[str, Arg]:
    opts: dict[str, Arg] = {}
    for name, sig in PROFILE_FLAGS:
        value = getattr(a, name, None)
        if value is not None:
            opts[name] = _v(sig, value)
    for name in PROFILE_BOOLS:
        value = getattr(a, name, None)
        if value is not None:
            opts[name] = _v("b", value)
    if a.exclude or getattr(a, "no_excludes", False):
        opts["excludes"] = _v("as", [] if a.no_excludes else a.exclude)
    if a.max_age is not None:
        opts["max_age"] = _v("t", parse_duration(a.max_age))
    if a.blackout or a.no_blackout:
        opts["blackout"] = _v("as", [] if a.no_blackout else a.blackout)
    return opts


def schedule_options(a: argparse.Namespace) -> dict[str, Arg]:
    opts: dict[str, Arg] = {}
    if a.tz is not None:
        opts["timezone"] = _v("s", a.tz)
    if a.catch_up is not None:
        opts["catch_up"] = _v("b", a.catch_up)
    if a.catch_up_window is not None:
        opts["catch_up_window"] = _v("t", parse_duration(a.catch_up_window))
    if a.randomized_delay is not None:
        opts["randomized_delay"] = _v("t", parse_duration(a.randomized_delay))
    if a.retries is not None:
        opts["retries"] = _v("u", a.retries)
    for name in ("retry_delay", "min_interval"):
        value = getattr(a, name, None)
        if value is not None:
            opts[name] = _v("t", parse_duration(value))
    for name in ("skip_on_battery", "skip_on_metered", "enabled"):
        value = getattr(a, name, None)
        if value is not None:
            opts[name] = _v("b", value)
    return opts


# -- commands --------------------------------------------------------------------


async def cmd_status(c: Client, a: argparse.Namespace) -> int:
    props = await c.properties()
    running = await c.call("ListJobs", "a{sv}", {"status": _v("as", ["running", "queued"])})
    if a.json:
        emit_json({**{k.lower(): v for k, v in props.items()}, "jobs": running})
        return EXIT_OK
    now = _now()
    paused = "no"
    if props["Paused"]:
        until = props["PausedUntil"]
        paused = f"yes, until {fmt.human_time(until, now)}" if until else "yes, until resumed"
    print(f"borgd {props['Version']}")
    print(f"paused:        {paused}")
    print(f"sleep monitor: {props['SleepMonitor']}")
    print(f"disk monitor:  {props.get('DiskMonitor', 'unknown')}")  # .get: an older borgd
    print(f"on battery:    {'yes' if props['OnBattery'] else 'no'}")
    print(f"metered:       {'yes' if props['Metered'] else 'no'}")
    print(f"next run:      {fmt.human_time(props['NextRun'], now)}")
    print(f"metrics file:  {props.get('MetricsFile') or 'off'}")  # .get: an older borgd
    print(f"active jobs:   {props['ActiveJobs']}")
    for job in running:
        bar = fmt.progress_bar(job["progress"]) if job["status"] == "running" else "queued"
        print(f"  #{job['id']} {job['type']} {job['profile'] or job['repository']} {bar}")
    return EXIT_OK


async def cmd_repo(c: Client, a: argparse.Namespace) -> int:
    if a.action == "add":
        repo_id = await c.call("AddRepository", "ssa{sv}", a.name, a.url, repo_options(a))
        print(f"repository {a.name} added (id {repo_id})" + (", init queued" if a.init else ""))
        if a.init and a.wait:
            return await wait_for_init(c, a.name)
    elif a.action == "edit":
        opts = repo_options(a)
        line = changed_line(f"repository {a.name}", opts)
        await c.call("UpdateRepository", "sa{sv}", a.name, opts)
        print(line)
    elif a.action == "rm":
        await c.call("RemoveRepository", "s", a.name)
    else:
        repos = await c.call("ListRepositories")
        if a.action == "show":
            repos = [r for r in repos if r["name"] == a.name]
            if not repos:
                print(f"borgctl: no repository named {a.name!r}", file=sys.stderr)
                return EXIT_FAILED
        if a.json:
            emit_json(repos[0] if a.action == "show" else repos)
            return EXIT_OK
        if a.action == "show":
            print_settings(repos[0])
            return EXIT_OK
        rows = [
            (r["id"], r["name"], r["url"], r["encryption"], "yes" if r["has_passphrase"] else "no")
            for r in repos
        ]
        print(fmt.table(("ID", "NAME", "URL", "ENCRYPTION", "PASSPHRASE"), rows))
    return EXIT_OK


async def cmd_profile(c: Client, a: argparse.Namespace) -> int:
    if a.action == "add":
        profile_id = await c.call(
            "AddProfile", "ssasa{sv}", a.name, a.repo, a.sources, profile_options(a)
        )
        print(f"profile {a.name} added (id {profile_id})")
        warn_missing_sources(a.sources)
    elif a.action == "edit":
        opts = profile_options(a)
        if a.repo:
            opts["repository"] = _v("s", a.repo)
        if a.sources:
            opts["sources"] = _v("as", a.sources)
        line = changed_line(f"profile {a.name}", opts)
        await c.call("UpdateProfile", "sa{sv}", a.name, opts)
        print(line)
        warn_missing_sources(a.sources or [])
    elif a.action == "rm":
        await c.call("RemoveProfile", "s", a.name)
    else:
        profiles = await c.call("ListProfiles")
        if a.action == "show":
            profiles = [p for p in profiles if p["name"] == a.name]
            if not profiles:
                print(f"borgctl: no profile named {a.name!r}", file=sys.stderr)
                return EXIT_FAILED
        if a.json:
            emit_json(profiles[0] if a.action == "show" else profiles)
            return EXIT_OK
        if a.action == "show":
            print_settings(profiles[0])
            return EXIT_OK
        now = _now()
        rows = [
            (
                p["id"],
                p["name"],
                p["repository"],
                ",".join(p["sources"]),
                fmt.human_time(p["last_success"], now),
                "OVERDUE" if p["overdue"] else ("on" if p["enabled"] else "disabled"),
            )
            for p in profiles
        ]
        print(fmt.table(("ID", "NAME", "REPOSITORY", "SOURCES", "LAST SUCCESS", "STATE"), rows))
    return EXIT_OK


async def cmd_schedule(c: Client, a: argparse.Namespace) -> int:
    if a.action == "add":
        sid = await c.call(
            "AddSchedule", "sssa{sv}", a.profile, a.type, a.spec, schedule_options(a)
        )
        print(f"schedule {sid} added")
    elif a.action == "edit":
        opts = schedule_options(a)
        if a.spec:
            opts["spec"] = _v("s", a.spec)
        line = changed_line(f"schedule {a.id}", opts)
        await c.call("UpdateSchedule", "ta{sv}", a.id, opts)
        print(line)
    elif a.action == "rm":
        await c.call("RemoveSchedule", "t", a.id)
    else:
        schedules = await c.call("ListSchedules")
        if a.action == "show":
            schedules = [s for s in schedules if s["id"] == a.id]
            if not schedules:
                print(f"borgctl: no schedule with id {a.id}", file=sys.stderr)
                return EXIT_FAILED
        if a.json:
            emit_json(schedules[0] if a.action == "show" else schedules)
            return EXIT_OK
        if a.action == "show":
            print_settings(schedules[0])
            return EXIT_OK
        now = _now()
        rows = [
            (
                s["id"],
                s["profile"],
                s["action"],
                s["spec"],
                fmt.human_time(s["next_run"], now),
                "paused" if s["paused"] else ("on" if s["enabled"] else "disabled"),
            )
            for s in schedules
        ]
        print(fmt.table(("ID", "PROFILE", "ACTION", "SPEC", "NEXT RUN", "STATE"), rows))
    return EXIT_OK


def start_options(a: argparse.Namespace) -> dict[str, Arg]:
    opts: dict[str, Arg] = {}
    if a.archive:
        opts["archive"] = _v("s", a.archive)
    if a.destination:
        opts["destination"] = _v("s", os.path.abspath(a.destination))
    if a.path:
        opts["paths"] = _v("as", a.path)
    if a.repository_only:
        opts["repository_only"] = _v("b", True)
    if a.verify_data:
        opts["verify_data"] = _v("b", True)
    if a.max_duration:
        opts["max_duration"] = _v("t", parse_duration(a.max_duration))
    return opts


# The job `run --wait` or `watch` waits for: Ctrl-C then says that it goes on.
WAITING_FOR: list[int] = []


async def wait_for(c: Client, job_id: int, *, show_progress: bool) -> dict[str, Any]:
    """Wait for the job's end, with a live progress line on a terminal (cleared after)."""
    import anyio

    changed = anyio.Event()
    seen: dict[str, Any] = {}
    width = fmt.terminal_width() or 80

    def on_signal(member: str, jid: int, fields: dict[str, Any]) -> None:
        if jid == job_id:
            seen.update(fields)  # JobChanged carries what changed: keep the rest
            if show_progress and seen.get("status") == "running":
                line = fmt.clip(f"#{job_id} {fmt.progress_line(seen)}", width - 1)
                print(f"\r\033[K{line}", end="", flush=True)
            changed.set()

    WAITING_FOR.append(job_id)
    await c.subscribe_jobs(on_signal)
    seen.update(await c.call("GetJob", "t", job_id))
    while True:
        job: dict[str, Any] = await c.call("GetJob", "t", job_id)
        if job["status"] in TERMINAL:
            if show_progress:
                print("\r\033[K", end="", flush=True)
            WAITING_FOR.remove(job_id)
            return job
        with anyio.move_on_after(5):  # signals are the trigger; this only guards a lost one
            await changed.wait()
        changed = anyio.Event()


def describe_job(job: dict[str, Any]) -> str:
    now = _now()
    lines = [
        f"job {job['id']}: {job['type']} of {job['profile'] or job['repository']}"
        f" — {job['status']}",
        f"  trigger:   {job['trigger']}"
        + (f" (schedule {job['schedule_id']})" if job["schedule_id"] else "")
        + (f" (requeued from {job['requeued_from']})" if job["requeued_from"] else "")
        + (f" (after job {job['parent_id']})" if job["parent_id"] else ""),
        f"  repository: {job['repository']}",
    ]
    for key, label in (
        ("scheduled_for", "scheduled"),
        ("queued_at", "queued"),
        ("started_at", "started"),
        ("finished_at", "finished"),
    ):
        if job[key]:
            lines.append(f"  {label + ':':10} {fmt.human_time(job[key], now)}")
    if job["archive"] and (
        job["status"] in ("succeeded", "warning", "running")
        or job["archive"].endswith(".checkpoint")
    ):  # a failed backup made no archive: never name one
        lines.append(f"  archive:   {job['archive']}")
    if job["nfiles"] or job["original_size"]:
        lines.append(
            f"  files:     {job['nfiles']}, original {fmt.human_size(job['original_size'])}, "
            f"compressed {fmt.human_size(job['compressed_size'])}, "
            f"deduplicated {fmt.human_size(job['deduplicated_size'])}"
        )
    if job.get("duration"):
        lines.append(f"  duration:  {fmt.human_duration(job['duration'])}")
    if job["status"] == "running":
        lines.append(f"  progress:  {fmt.progress_line(job)}")
    if job["blocked_by"]:
        lines.append(f"  blocked by: {job['blocked_by']}")
    if job["skip_reason"]:
        lines.append(f"  skipped:   {job['skip_reason']}")
    if job["exit_code"] >= 0 and job["status"] in TERMINAL:
        lines.append(f"  exit code: {job['exit_code']}")
    if job["message"]:
        lines.append(f"  message:   {job['message']}")
    return "\n".join(lines)


async def wait_for_init(c: Client, repository: str) -> int:
    """`repo add --init --wait`: the init job's outcome is the command's."""
    flt = {"repository": _v("s", repository), "type": _v("s", "init"), "limit": _v("u", 1)}
    (init,) = await c.call("ListJobs", "a{sv}", flt)
    job = await wait_for(c, init["id"], show_progress=False)
    if job["status"] == "succeeded":
        print(f"repository {repository} initialised")
        return EXIT_OK
    print(f"borgctl: the init of {repository} {job['status']}: {job['message']}", file=sys.stderr)
    return EXIT_FAILED


async def cmd_run(c: Client, a: argparse.Namespace) -> int:
    job_id = await c.call("StartJob", "ssa{sv}", a.profile, a.type, start_options(a))
    if not a.wait:
        print(f"job {job_id} queued")
        return EXIT_OK
    print(f"job {job_id} queued; waiting")
    job = await wait_for(c, job_id, show_progress=sys.stdout.isatty())
    print(describe_job(job))
    return EXIT_OK if job["status"] in ("succeeded", "warning") else EXIT_FAILED


def job_row(job: dict[str, Any], now: datetime) -> tuple[Any, ...]:
    """One line of `borgctl jobs`: the time that matters for its status, and what
    it says: why it failed, was skipped or waits; its archive only when it made one."""
    status = job["status"]
    when = (
        {
            "scheduled": job["scheduled_for"],
            "queued": job["queued_at"],
            "running": job["started_at"],
        }.get(status)
        or job["finished_at"]
        or job["created_at"]
    )
    if status == "running":
        detail = fmt.progress_bar(job["progress"], 12) + fmt.rate_and_eta(job)
    elif status in ("succeeded",) and job["archive"]:
        detail = job["archive"]
    elif status == "skipped":
        detail = (
            f"{job['skip_reason']}: {job['message']}" if job["message"] else job["skip_reason"]
        )
    elif job["blocked_by"]:
        detail = f"waits: {job['blocked_by']}"
    else:
        detail = job["message"]
    return (
        job["id"],
        job["type"],
        job["profile"] or "-",
        status,
        job["trigger"],
        fmt.human_time(when, now),
        detail,
    )


async def cmd_jobs(c: Client, a: argparse.Namespace) -> int:
    flt: dict[str, Arg] = {}
    for key, value in (
        ("profile", a.profile),
        ("repository", a.repo),
        ("type", a.type),
        ("status", a.status),
    ):
        if value:
            flt[key] = _v("as", value)
    if a.since:
        flt["since"] = _v("t", parse_when(a.since, past=True))
    flt["limit"] = _v("u", a.limit)
    jobs = await c.call("ListJobs", "a{sv}", flt)
    if a.json:
        emit_json(jobs)
        return EXIT_OK
    now = _now()
    print(
        fmt.table(
            ("ID", "TYPE", "PROFILE", "STATUS", "TRIGGER", "WHEN", "DETAIL"),
            [job_row(j, now) for j in jobs],
            width=fmt.terminal_width(),
        )
    )
    return EXIT_OK


async def cmd_show(c: Client, a: argparse.Namespace) -> int:
    job = await c.call("GetJob", "t", a.id)
    if a.json:
        emit_json(job)
        return EXIT_OK
    print(describe_job(job))
    chain = await attempt_chain(c, job)
    if len(chain) > 1:
        print("  attempts:  " + " → ".join(_attempt(j, j["id"] == job["id"]) for j in chain))
    return EXIT_OK


MAX_ATTEMPTS_SHOWN = 50


async def attempt_chain(c: Client, job: dict[str, Any]) -> list[dict[str, Any]]:
    """The job with the jobs it was requeued or retried from, and those made from it."""
    chain = [job]
    while chain[0]["requeued_from"] and len(chain) < MAX_ATTEMPTS_SHOWN:
        try:
            chain.insert(0, await c.call("GetJob", "t", chain[0]["requeued_from"]))
        except CallFailed:
            break  # expired with the history
    if not job["profile"]:
        return chain
    flt = {"profile": _v("s", job["profile"]), "limit": _v("u", 1000)}
    later = {j["requeued_from"]: j for j in await c.call("ListJobs", "a{sv}", flt)}
    while chain[-1]["id"] in later and len(chain) < MAX_ATTEMPTS_SHOWN:
        chain.append(later[chain[-1]["id"]])
    return chain


def _attempt(job: dict[str, Any], this: bool) -> str:
    what = f"job {job['id']}" + (" (this)" if this else "")
    if job["trigger"] == "retry":
        what += " retry"
    return f"{what} {job['status']}"


LOG_END = 2**64 - 1  # ReadJobLog answers an offset past the end with where the next line starts
TAIL_TRIES = 5


async def cmd_logs(c: Client, a: argparse.Namespace) -> int:
    """The whole log in pages, or its tail; with -f, then new lines by offset until the end."""
    out = LogWriter(raw=a.raw)
    try:
        offset = 0
        if a.tail is not None:
            offset = await print_tail(c, a.id, a.tail, follow=a.follow, out=out)
        if a.follow:
            await follow_log(c, a.id, offset, out=out)
        elif a.tail is None:
            await print_log(c, a.id, 0, out=out)
    except BrokenPipeError:  # `borgctl logs ID | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


class LogWriter:
    """A job log as a person reads it (borg's JSON lines as their messages), or raw."""

    def __init__(self, *, raw: bool) -> None:
        self.raw = raw

    def __call__(self, lines: list[str]) -> None:
        if not self.raw:
            lines = [r for r in map(fmt.readable_log_line, lines) if r is not None]
        if lines:
            sys.stdout.write("".join(line + "\n" for line in lines))
            sys.stdout.flush()


async def print_log(c: Client, job_id: int, offset: int, *, out: LogWriter) -> int:
    """Print every complete line from `offset`, a page at a time; return where to go on."""
    while True:
        lines, offset = await c.call("ReadJobLog", "ttu", job_id, offset, 0)
        if not lines:
            return int(offset)
        out(lines)


async def print_tail(c: Client, job_id: int, count: int, *, follow: bool, out: LogWriter) -> int:
    """Print the last `count` lines (borgd caps them at 10,000); return the log's end offset.

    To follow on without a gap or a repeat, the tail must end where following
    starts: the end is asked before and after the tail, and the pair is taken
    when it agrees (borgd flushes logs in bursts, so it almost always does at
    once).  If it never agrees, following starts at the first end: a line may
    then show twice, but none is lost.
    """
    if not follow:
        out(await c.call("GetJobLog", "tu", job_id, count) if count else [])
        return 0
    for _ in range(TAIL_TRIES):
        _, before = await c.call("ReadJobLog", "ttu", job_id, LOG_END, 1)
        lines = await c.call("GetJobLog", "tu", job_id, count) if count else []
        _, after = await c.call("ReadJobLog", "ttu", job_id, LOG_END, 1)
        if before == after:
            break
    out(lines)
    return int(before)


async def follow_log(c: Client, job_id: int, offset: int, *, out: LogWriter) -> None:
    """Print new lines from `offset` on until the job has finished, each line once.

    The status is read before the log: once a job is finished its log is
    complete, so the read after seeing that status is the last one needed.
    """
    import anyio

    changed = anyio.Event()

    def on_signal(member: str, jid: int, fields: dict[str, Any]) -> None:
        if jid == job_id:
            changed.set()

    await c.subscribe_jobs(on_signal)
    while True:
        job = await c.call("GetJob", "t", job_id)
        offset = await print_log(c, job_id, offset, out=out)
        if job["status"] in TERMINAL:
            return
        # borgd flushes a running job's log with its progress, which it signals at
        # most once a second; the timeout covers hooks, which print without progress.
        with anyio.move_on_after(1):
            await changed.wait()
        changed = anyio.Event()


async def cmd_watch(c: Client, a: argparse.Namespace) -> int:
    import anyio

    if a.id:
        job = await wait_for(c, a.id, show_progress=True)
        print(describe_job(job))
        return EXIT_OK if job["status"] in ("succeeded", "warning") else EXIT_FAILED
    while True:
        jobs = await c.call("ListJobs", "a{sv}", {"status": _v("as", ["running", "queued"])})
        if not jobs:
            print("no active jobs")
            return EXIT_OK
        for job in jobs:
            print(
                f"#{job['id']} {job['type']} {job['profile']} {job['status']} "
                f"{fmt.clip(fmt.progress_line(job), 100)}"
            )
        await anyio.sleep(1)


async def cmd_cancel(c: Client, a: argparse.Namespace) -> int:
    await c.call("CancelJob", "t", a.id)
    print(f"job {a.id}: cancel requested")
    return EXIT_OK


async def cmd_requeue(c: Client, a: argparse.Namespace) -> int:
    new_id = await c.call("RequeueJob", "t", a.id)
    print(f"job {a.id} requeued as job {new_id}")
    return EXIT_OK


async def cmd_pause(c: Client, a: argparse.Namespace) -> int:
    until = 0
    if a.for_ is not None:  # "" is a mistake, not "until resumed"
        until = time.time_ns() // 1000 + parse_duration(a.for_)
    elif a.until is not None:
        until = parse_when(a.until)
    if a.schedule:
        await c.call("PauseSchedule", "tt", a.schedule, until)
    else:
        await c.call("Pause", "t", until)
    print("paused" + (f" until {fmt.human_time(until, _now())}" if until else " until resumed"))
    return EXIT_OK


async def cmd_resume(c: Client, a: argparse.Namespace) -> int:
    if a.schedule:
        await c.call("ResumeSchedule", "t", a.schedule)
    else:
        await c.call("Resume")
    print("resumed")
    return EXIT_OK


async def cmd_upcoming(c: Client, a: argparse.Namespace) -> int:
    start = time.time_ns() // 1000
    runs = await c.call("Upcoming", "tt", start, start + a.days * 86400 * 1_000_000)
    if a.json:
        emit_json(runs)
        return EXIT_OK
    now = _now()
    rows = [
        (
            _local(r["scheduled_for"]).strftime("%a %Y-%m-%d %H:%M:%S"),
            fmt.human_time(r["scheduled_for"], now),
            r["profile"],
            r["action"],
            r["schedule_id"],
            # A start inside a blackout window waits for its end.
            f"waits for {_local(r['deferred_to']).strftime('%H:%M:%S')} ({r['blocked_by']})"
            if r.get("deferred_to")
            else "",
        )
        for r in runs
    ]
    print(fmt.table(("WHEN", "", "PROFILE", "ACTION", "SCHEDULE", "NOTE"), rows))
    return EXIT_OK


def _local(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).astimezone()


async def cmd_blackout(c: Client, a: argparse.Namespace) -> int:
    """Show, set or clear the global blackout windows."""
    if a.action == "set":
        await c.call("SetBlackout", "as", a.windows)
    elif a.action == "clear":
        await c.call("SetBlackout", "as", [])
    windows = (await c.properties())["Blackout"]
    if a.json:
        emit_json(windows)
    elif windows:
        print("\n".join(windows))
    else:
        print("no blackout windows")
    return EXIT_OK


def _variants(opts: dict[str, tuple[str, Any]]) -> dict[str, Arg]:
    return dict(opts)


async def cmd_apply(c: Client, a: argparse.Namespace) -> int:
    from borgd.cli import config_file

    try:
        from pathlib import Path  # not at the top: ~4 ms, which quick commands need not pay

        text = sys.stdin.read() if a.file == "-" else Path(a.file).read_text(encoding="utf-8")
        desired = config_file.parse(text)
        actions = config_file.plan(
            desired,
            await c.call("ListRepositories"),
            await c.call("ListProfiles"),
            await c.call("ListSchedules"),
            prune=a.prune,
            notifiers=await c.call("ListNotifiers"),
        )
        config_file.check_actions(actions, os.environ)
    except OSError as exc:
        raise UsageError(f"cannot read {a.file}: {exc}") from None
    except config_file.ConfigError as exc:
        raise UsageError(f"{a.file}: {exc}; nothing was changed") from None
    if not actions:
        print("nothing to change")
        return EXIT_OK
    for action in actions:
        print(("would " if a.dry_run else "") + action.summary)
        if a.dry_run:
            continue
        args = [_variants(x) if isinstance(x, dict) else x for x in action.args]
        if action.member == "AddRepository" and action.passphrase_env:
            secret = os.environ.get(action.passphrase_env)
            if secret is None:
                raise UsageError(f"${action.passphrase_env} is not set")
            args[2] = {**args[2], "passphrase": ("s", secret)}
        if action.member == "AddNotifier" and action.url_env:
            url = os.environ.get(action.url_env)
            if url is None:
                raise UsageError(f"${action.url_env} is not set")
            args[1] = url
        await c.call(action.member, action.signature, *args)
    return EXIT_OK


async def cmd_export(c: Client, a: argparse.Namespace) -> int:
    from borgd.cli import config_file

    print(
        config_file.render(
            await c.call("ListRepositories"),
            await c.call("ListProfiles"),
            await c.call("ListSchedules"),
            await c.call("ListNotifiers"),
        ),
        end="",
    )
    return EXIT_OK


# Repository and archive names, asked of borgd (`borgctl _names`) as the words are typed:
# n counts the words before the cursor that are not options (the command included).
STATUS_WORDS = " ".join(sorted(TERMINAL | LIVE))
NAME_COMPLETION = [
    "  local n=0 w kind=",
    '  for w in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do [[ $w == -* ]] || n=$((n+1)); done',
    '  local prev="${COMP_WORDS[COMP_CWORD-1]}"',
    '  case "${COMP_WORDS[1]} $n" in',
    '    "archives 1"|"ls 1"|"diff 1"|"mount 1"|"stats 1"|"archive 2") kind=repositories ;;',
    '    "ls 2"|"diff 2"|"diff 3"|"mount 2") kind="archives ${COMP_WORDS[2]}" ;;',
    '    "archive 3") kind="archives ${COMP_WORDS[3]}" ;;',
    '    "run 1") kind=profiles ;;',
    '    "show 1"|"logs 1"|"watch 1"|"cancel 1"|"requeue 1") kind=jobs ;;',
    '    "repo 2") [[ ${COMP_WORDS[2]} =~ ^(show|edit|rm)$ ]] && kind=repositories ;;',
    '    "profile 2") [[ ${COMP_WORDS[2]} =~ ^(show|edit|rm)$ ]] && kind=profiles ;;',
    '    "schedule 2") [[ ${COMP_WORDS[2]} =~ ^(show|edit|rm)$ ]] && kind=schedules ;;',
    '    "schedule 3") [[ ${COMP_WORDS[2]} == add ]] && kind=profiles ;;',
    "  esac",
    '  case "$prev" in',
    "    --repo) kind=repositories ;;",
    "    --profile) kind=profiles ;;",
    "    --schedule) kind=schedules ;;",
    f'    --status) COMPREPLY=($(compgen -W "{STATUS_WORDS}" -- "$cur")); return ;;',
    f'    --type) COMPREPLY=($(compgen -W "{" ".join(JOB_TYPES)}" -- "$cur")); return ;;',
    "  esac",
    '  if [ -n "$kind" ] && [[ $cur != -* ]]; then',
    '    COMPREPLY=($(compgen -W "$(borgctl _names $kind 2>/dev/null)" -- "$cur")); return',
    "  fi",
]


# Completion must not hang the shell when borgd is slow or stuck.
NAMES_TIMEOUT_S = 1.0


async def cmd_names(c: Client, a: argparse.Namespace) -> int:
    """For completion, one a line: the names of repositories, profiles or a repository's
    archives; the ids of schedules or of recent jobs.  Nothing when borgd is slow."""
    c.timeout = NAMES_TIMEOUT_S
    try:
        if a.kind == "repositories":
            words = [r["name"] for r in await c.call("ListRepositories")]
        elif a.kind == "profiles":
            words = [p["name"] for p in await c.call("ListProfiles")]
        elif a.kind == "schedules":
            words = [str(s["id"]) for s in await c.call("ListSchedules")]
        elif a.kind == "jobs":
            jobs = await c.call("ListJobs", "a{sv}", {"limit": _v("u", 50)})
            words = [str(j["id"]) for j in jobs]
        else:
            rows = await c.call("ListArchives", "sa{sv}", a.repository or "", {})
            words = [r["name"] for r in rows]
    except TimeoutError:
        return EXIT_OK
    print("\n".join(words))
    return EXIT_OK


def bash_completion(parser: argparse.ArgumentParser) -> str:
    """A bash completion script derived from the parser: commands, actions and flags."""
    lines = [
        "# bash completion for borgctl (generated by `borgctl completion bash`)",
        "_borgctl() {",
        '  local cur="${COMP_WORDS[COMP_CWORD]}" words="${COMP_WORDS[*]:1:COMP_CWORD-1}"',
        '  case "$words" in',
    ]
    sub = next(x for x in parser._actions if isinstance(x, argparse._SubParsersAction))
    cases: list[tuple[str, list[str]]] = []
    for name, cmd in sub.choices.items():
        flags = [o for act in cmd._actions for o in act.option_strings]
        nested = [x for x in cmd._actions if isinstance(x, argparse._SubParsersAction)]
        if nested:
            cases.append((name, list(nested[0].choices)))
            for action, sp in nested[0].choices.items():
                opts = [o for act in sp._actions for o in act.option_strings]
                cases.append((f"{name} {action}", opts))
        else:
            cases.append((name, flags))
    for pattern, words in sorted(cases, key=lambda c: -len(c[0])):
        lines.append(f'    "{pattern}"|"{pattern} "*) opts="{" ".join(words)}" ;;')
    lines.append(f'    *) opts="{" ".join(sub.choices)}" ;;')
    lines += [
        "  esac",
        *NAME_COMPLETION,
        '  COMPREPLY=($(compgen -W "$opts" -- "$cur"))',
        '  [ ${#COMPREPLY[@]} -eq 0 ] && COMPREPLY=($(compgen -f -- "$cur"))',
        "}",
        "complete -F _borgctl borgctl",
    ]
    return "\n".join(lines) + "\n"


def cmd_calendar(a: argparse.Namespace) -> int:
    from borgd.cli.calendar_cmd import parse_base_time, render_calendar
    from borgd.core.schedule import SpecError

    try:
        base = parse_base_time(a.base_time, a.tz) if a.base_time else None
        print(
            render_calendar(a.spec, iterations=a.iterations, base_time=base, tz=a.tz, now=_now())
        )
    except (SpecError, ValueError) as exc:
        print(f"borgctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


# -- argument parser ----------------------------------------------------------------


def _bool_flag(p: argparse.ArgumentParser, name: str, help_on: str, help_off: str) -> None:
    dest = name.replace("-", "_")
    p.add_argument(f"--{name}", dest=dest, action="store_true", default=None, help=help_on)
    p.add_argument(f"--no-{name}", dest=dest, action="store_false", help=help_off)


class _Unbuilt:
    """The parser of a command not being run: whatever is added to it is dropped."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self


class _OnlyCommand:
    """The subparsers action as the command modules see it: it builds the parser of
    `command` only (every one when None); argparse takes ~0.5 ms a parser."""

    def __init__(self, sub: Any, command: str | None) -> None:
        self._sub = sub
        self._command = command

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if self._command is None or name == self._command:
            return self._sub.add_parser(name, **kwargs)
        return _Unbuilt()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """borgctl's parser; with ``command``, only that command's arguments are built
    (argparse takes ~40 ms to build them all, a third of a quick command's time)."""
    parser = OneLineParser(
        prog="borgctl", description="Watch and steer borgd, the BorgBackup scheduler."
    )
    parser.add_argument("--version", action="version", version=f"borgctl {__version__}")
    sub = _OnlyCommand(
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), command
    )
    add = sub.add_parser

    p = add("status", help="paused?, conditions, running jobs, next run")
    p.add_argument("--json", action="store_true")

    # repositories
    repo = add("repo", help="repositories: add, list, show, edit, rm")
    rsub = repo.add_subparsers(dest="action", required=True)
    for action in ("add", "edit"):
        rp = rsub.add_parser(action)
        rp.add_argument("name")
        if action == "add":
            rp.add_argument("url", help="absolute path, ssh://host/path or host:path")
            rp.add_argument("--init", action="store_true", help="run borg init now")
            rp.add_argument(
                "--wait",
                action="store_true",
                help="with --init: wait for it; exit 1 when it fails",
            )
        rp.add_argument("--encryption", help="none, repokey-blake2 (default), keyfile-blake2, …")
        rp.add_argument("--passphrase-stdin", action="store_true", help="read it from stdin")
        rp.add_argument("--passphrase-env", metavar="VAR", help="read it from $VAR")
        rp.add_argument("--passcommand", help="a command that prints the passphrase")
        rp.add_argument("--ssh-command", help="BORG_RSH, e.g. 'ssh -i ~/.ssh/backup'")
        rp.add_argument("--lock-wait", type=COUNT, metavar="SECONDS")
        rp.add_argument(
            "--upload-ratelimit", type=COUNT, metavar="KIB_S", help="borg's upload limit (0: none)"
        )
        rp.add_argument(
            "--device",
            metavar="UUID",
            help="filesystem UUID of its removable disk ('' = none; add finds it by itself)",
        )
        _bool_flag(rp, "automount", "mount its disk through UDisks2 when it appears", "do not")
        _bool_flag(
            rp, "eject-after", "unmount and power off the disk after its work", "leave it plugged"
        )
    for action in ("list", "show"):
        rp = rsub.add_parser(action)
        if action == "show":
            rp.add_argument("name")
        rp.add_argument("--json", action="store_true")
    rp = rsub.add_parser("rm")
    rp.add_argument("name")

    # profiles
    prof = add("profile", help="backup profiles: add, list, show, edit, rm")
    psub = prof.add_subparsers(dest="action", required=True)
    for action in ("add", "edit"):
        pp = psub.add_parser(action)
        pp.add_argument("name")
        if action == "add":
            pp.add_argument("--repo", required=True)
            pp.add_argument("sources", nargs="+", help="absolute paths to back up")
        else:
            pp.add_argument("--repo")
            pp.add_argument("--sources", nargs="+")
        pp.add_argument(
            "--exclude",
            action="append",
            default=[],
            metavar="PATTERN",
            help="a borg pattern to leave out (repeatable; on edit, replaces the list)",
        )
        pp.add_argument("--no-excludes", action="store_true", help="remove every exclude")
        pp.add_argument("--compression")
        pp.add_argument("--archive-template")
        pp.add_argument("--keep-within")
        for unit in ("hourly", "daily", "weekly", "monthly", "yearly"):
            pp.add_argument(f"--keep-{unit}", type=COUNT, metavar="N")
        pp.add_argument("--check-every", type=COUNT, metavar="N", help="check after N backups")
        pp.add_argument("--pre-command")
        pp.add_argument("--post-command")
        pp.add_argument("--max-age", metavar="DURATION", help="overdue after this, e.g. 2d")
        pp.add_argument(
            "--blackout",
            action="append",
            default=[],
            metavar="'SPEC DURATION'",
            help="no scheduled start in this window, e.g. 'Mon..Fri 09:00 8h' (repeatable)",
        )
        pp.add_argument("--no-blackout", action="store_true", help="remove the profile's windows")
        pp.add_argument(
            "--nice", type=int_in(0, 19), metavar="0-19", help="run borg at this niceness"
        )
        pp.add_argument(
            "--ionice",
            choices=("idle", "best-effort", ""),
            help="borg's I/O class ('' = as borgd)",
        )
        _bool_flag(pp, "prune-after", "prune after each backup", "do not prune")
        _bool_flag(pp, "compact-after", "compact after each backup", "do not compact")
        _bool_flag(pp, "enabled", "enable the profile", "disable the profile")
        _bool_flag(pp, "inhibit-sleep", "keep the machine awake during backups", "allow sleep")
        _bool_flag(pp, "one-file-system", "stay on one file system", "cross file systems")
    for action in ("list", "show"):
        pp = psub.add_parser(action)
        if action == "show":
            pp.add_argument("name")
        pp.add_argument("--json", action="store_true")
    pp = psub.add_parser("rm")
    pp.add_argument("name")

    # schedules
    sched = add("schedule", help="schedules: add, list, show, edit, rm")
    ssub = sched.add_subparsers(dest="action", required=True)
    for action in ("add", "edit"):
        sp = ssub.add_parser(action)
        if action == "add":
            sp.add_argument("profile")
            sp.add_argument("spec", help="'daily', 'every 6h', 'Mon..Fri 09:00', '0 2 * * *'")
            sp.add_argument(
                "--type", default="backup", choices=("backup", "prune", "compact", "check")
            )
        else:
            sp.add_argument("id", type=IDENT)
            sp.add_argument("--spec")
        sp.add_argument("--tz", help="IANA time zone (default: the system's)")
        sp.add_argument("--catch-up-window", metavar="DURATION")
        sp.add_argument("--randomized-delay", metavar="DURATION")
        sp.add_argument(
            "--retries",
            type=int_in(0, 10),
            metavar="0-10",
            help="retry a failure for a passing cause",
        )
        sp.add_argument("--retry-delay", metavar="DURATION", help="before the first retry (5m)")
        sp.add_argument(
            "--min-interval",
            metavar="DURATION",
            help="on-connect: run only if the last success is older (1d)",
        )
        _bool_flag(sp, "catch-up", "run a missed occurrence once", "skip missed occurrences")
        _bool_flag(sp, "skip-on-battery", "wait for AC power", "run on battery too")
        _bool_flag(sp, "skip-on-metered", "wait for an unmetered network", "run on metered too")
        _bool_flag(sp, "enabled", "enable", "disable")
    for action in ("list", "show"):
        sp = ssub.add_parser(action)
        if action == "show":
            sp.add_argument("id", type=IDENT)
        sp.add_argument("--json", action="store_true")
    sp = ssub.add_parser("rm")
    sp.add_argument("id", type=IDENT)

    p = add("run", help="start a job now")
    p.add_argument("profile")
    p.add_argument(
        "--type",
        default="backup",
        choices=("backup", "prune", "compact", "check", "restore", "init"),
    )
    p.add_argument("--wait", action="store_true", help="wait until it finishes")
    p.add_argument("--archive", help="restore: archive name (default: newest)")
    p.add_argument("--destination", help="restore: folder to restore into")
    p.add_argument("--path", action="append", default=[], help="restore: only this path")
    p.add_argument("--repository-only", action="store_true", help="check: repository only")
    p.add_argument("--verify-data", action="store_true", help="check: verify data")
    p.add_argument("--max-duration", metavar="DURATION", help="check: partial check budget")

    p = add("jobs", help="list jobs, newest first")
    p.add_argument("--profile", action="append")
    p.add_argument("--repo", action="append")
    p.add_argument("--type", action="append")
    p.add_argument("--status", action="append")
    p.add_argument("--since", help="ISO time or a duration ago, e.g. 2d")
    p.add_argument("--limit", type=COUNT, default=50)
    p.add_argument("--json", action="store_true")

    p = add("show", help="one job in detail")
    p.add_argument("id", type=IDENT)
    p.add_argument("--json", action="store_true")

    p = add("logs", help="a job's log")
    p.add_argument("id", type=IDENT)
    p.add_argument(
        "-n", "--tail", type=COUNT, metavar="N", help="only the last N lines (at most 10000)"
    )
    p.add_argument("--raw", action="store_true", help="borg's JSON lines as they are")
    p.add_argument(
        "-f", "--follow", action="store_true", help="print new lines until the job has finished"
    )

    p = add("watch", help="live progress until done")
    p.add_argument("id", type=IDENT, nargs="?")

    add(
        "ui",
        help="full-screen live view: jobs, upcoming runs, profiles, archives (q quits)",
        description="A full-screen view of borgd, kept current by its signals: the Jobs, "
        "Upcoming, Profiles and Archives tabs.  Keys: r run, c cancel, u requeue, "
        "p pause/resume, / filter, Enter open, ? help, q quit.  Honours NO_COLOR.",
    )

    for name, help_text in (("cancel", "cancel a job"), ("requeue", "run a finished job again")):
        p = add(name, help=help_text)
        p.add_argument("id", type=IDENT)

    p = add("pause", help="pause scheduled runs")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--for", dest="for_", metavar="DURATION")
    g.add_argument("--until", metavar="TIME")
    p.add_argument("--schedule", type=IDENT, metavar="ID", help="pause one schedule only")
    p = add("resume", help="resume scheduled runs")
    p.add_argument("--schedule", type=IDENT, metavar="ID")

    p = add("blackout", help="global blackout windows: show, set, clear")
    bsub = p.add_subparsers(dest="action")
    bp = bsub.add_parser("set", help="replace the windows")
    bp.add_argument("windows", nargs="+", metavar="'SPEC DURATION'")
    bp.add_argument("--json", action="store_true")
    bp = bsub.add_parser("clear", help="remove every window")
    bp.add_argument("--json", action="store_true")
    p.add_argument("--json", action="store_true")

    p = add("upcoming", help="planned runs")
    p.add_argument("--days", type=int_in(1, 36500), default=7)
    p.add_argument("--json", action="store_true")

    archives_cmd.add_parsers(sub)
    notify_cmd.add_parsers(sub)

    p = add("apply", help="make borgd's configuration match a borgd.toml file")
    p.add_argument("file", help="the file, or - for stdin")
    p.add_argument("--dry-run", action="store_true", help="only say what would change")
    p.add_argument(
        "--prune",
        action="store_true",
        help="also remove repositories, profiles and schedules not in the file",
    )
    p = add("export", help="print the configuration as borgd.toml")

    p = add("_names")  # for the completion script; not in --help
    p.add_argument("kind", choices=("repositories", "profiles", "schedules", "jobs", "archives"))
    p.add_argument("repository", nargs="?")

    p = add("completion", help="print a shell completion script")
    p.add_argument("shell", choices=("bash",))

    p = add("calendar", help="check a schedule spec (no daemon needed)")
    p.add_argument("spec")
    p.add_argument("--iterations", type=int_in(1, 10000), default=1)
    p.add_argument("--base-time")
    p.add_argument("--tz")
    return parser


COMMANDS: dict[str, Callable[[Client, argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "status": cmd_status,
    "repo": cmd_repo,
    "profile": cmd_profile,
    "schedule": cmd_schedule,
    "run": cmd_run,
    "jobs": cmd_jobs,
    "show": cmd_show,
    "logs": cmd_logs,
    "watch": cmd_watch,
    "cancel": cmd_cancel,
    "requeue": cmd_requeue,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "upcoming": cmd_upcoming,
    "blackout": cmd_blackout,
    "apply": cmd_apply,
    "export": cmd_export,
    **archives_cmd.COMMANDS,
    **notify_cmd.COMMANDS,
    "_names": cmd_names,
}
# Every command's name, for building only the parser of the one being run.
COMMAND_NAMES = frozenset(COMMANDS) | {"ui", "calendar", "completion"}


# Commands that only ask: run without an event loop on the quick client (see client.py).
QUICK = frozenset({"status", "jobs", "show", "upcoming", "_names"})


async def _dispatch(a: argparse.Namespace) -> int:
    client = await Client.connect()
    try:
        return await COMMANDS[a.command](client, a)
    finally:
        client.close()


def _run(a: argparse.Namespace) -> int:
    if a.command in QUICK:
        from borgd.cli.quick_client import QuickClient  # dbus-python: these commands only

        quick = QuickClient()
        try:
            return run_sync(COMMANDS[a.command](quick, a))  # type: ignore[arg-type]
        finally:
            quick.close()
    gc.enable()  # long-lived on the event loop: the collector back on (cli/entry.py)
    import anyio

    return anyio.run(_dispatch, a)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        # `borgctl jobs | head -1`: end quietly when the reader goes, as cat(1) does.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    refused = refuse_non_utf8(sys.argv[1:] if argv is None else argv)
    if refused is not None:
        return refused
    words = sys.argv[1:] if argv is None else argv
    first = next((w for w in words if not w.startswith("-")), None)
    wanted = None if first in (None, "completion") else first
    parser = build_parser(wanted if wanted in COMMAND_NAMES else None)
    a = parser.parse_args(argv)
    try:
        if a.command == "ui":
            gc.enable()  # long-lived (cli/entry.py)
            from borgd.ui.app import run as run_ui  # Textual is imported by this command only

            return run_ui()
        if a.command == "calendar":
            return cmd_calendar(a)
        if a.command == "completion":
            print(bash_completion(parser), end="")
            return EXIT_OK
        return _run(a)
    except UsageError as exc:
        print(f"borgctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Unreachable as exc:
        print(f"borgctl: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except CallFailed as exc:
        print(f"borgctl: {flag_names(exc.text)}", file=sys.stderr)
        # borgd refused what was typed (a bad value): a usage error, as a local check's.
        return EXIT_USAGE if exc.name == INVALID_ARGUMENT else EXIT_FAILED
    except UnicodeDecodeError:
        print("borgctl: the input is not valid UTF-8", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # an ordinary fault: output to a full disk, a file that is gone
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"borgctl: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        if WAITING_FOR:
            job_id = WAITING_FOR[-1]
            print(
                f"\nborgctl: stopped waiting; job {job_id} goes on "
                f"(borgctl cancel {job_id} stops it)",
                file=sys.stderr,
            )
        return 130


if __name__ == "__main__":
    from borgd.cli.entry import leave

    gc.disable()  # as the borgctl script does (cli/entry.py), from here on
    leave(main())
