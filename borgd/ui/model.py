"""The Jobs view's pure part: which rows, in which order, and the text of every cell.

No Textual and no D-Bus here: the widgets show what these functions return,
and tests/ui/test_model.py checks them with plain tables.  Times come in as
borgd's microseconds and go out relative to a `now` the caller passes (the
view's clock), never to the machine's own.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from borgd.cli.format import human_size, human_time
from borgd.core.jobs import JobStatus, JobType

Job = dict[str, Any]

SCHEDULED = JobStatus.SCHEDULED.value
ACTIVE = (JobStatus.RUNNING.value, JobStatus.QUEUED.value)
FINISHED = tuple(
    s.value for s in JobStatus if s.value not in (SCHEDULED, *ACTIVE)
)  # succeeded … skipped
STATUSES = tuple(s.value for s in JobStatus)
TYPES = tuple(t.value for t in JobType)
# Words a person types for a group of statuses.
STATUS_GROUPS: Mapping[str, tuple[str, ...]] = {
    "active": ACTIVE,
    "finished": FINISHED,
    "problems": ("failed", "interrupted", "warning"),
}
REQUEUEABLE = ("failed", "cancelled", "interrupted", "skipped")
CANCELLABLE = (SCHEDULED, *ACTIVE)


def to_local(us: int, tz: tzinfo | None) -> datetime:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).astimezone(tz)


def ellipsize(text: str, width: int) -> str:
    """One line of at most `width` characters, '…' marking a cut."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: max(width - 1, 0)] + "…"


# -- the jobs ---------------------------------------------------------------------------


def sort_key(job: Job) -> tuple[int, int, int, int]:
    """Scheduled by due time, then active (running before queued, in queue order),
    then finished newest first; ids break ties."""
    status = job["status"]
    if status == SCHEDULED:
        return (0, job.get("scheduled_for") or 0, 0, job["id"])
    if status in ACTIVE:
        return (1, 0 if status == "running" else 1, 0, job["id"])
    ended = job.get("finished_at") or job.get("created_at") or 0
    return (2, -ended, 0, -job["id"])


class Jobs:
    """The jobs the view knows, kept current by borgd's JobAdded/JobChanged signals.

    `reset` takes a fresh ListJobs answer; finished jobs beyond `keep_finished`
    are forgotten oldest first, so a view left open for months stays small.
    """

    def __init__(self, keep_finished: int = 1000) -> None:
        self.keep_finished = keep_finished
        self._jobs: dict[int, Job] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def get(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def reset(self, jobs: Iterable[Job]) -> None:
        self._jobs = {}
        self.merge(jobs)

    def merge(self, jobs: Iterable[Job]) -> None:
        for job in jobs:
            self._jobs[int(job["id"])] = dict(job)
        self._trim()

    def added(self, job_id: int, job: Job) -> None:
        self._jobs[job_id] = {**job, "id": job_id}
        self._trim()

    def changed(self, job_id: int, fields: Mapping[str, Any]) -> bool:
        """Apply a JobChanged; False when the job is not known here (nothing applied)."""
        job = self._jobs.get(job_id)
        if job is None:
            return False
        job.update(fields)
        return True

    def rows(self, flt: Filter | None = None) -> list[Job]:
        chosen = (j for j in self._jobs.values() if flt is None or flt.matches(j))
        return sorted(chosen, key=sort_key)

    def _trim(self) -> None:
        finished = [j for j in self._jobs.values() if j["status"] in FINISHED]
        if len(finished) <= self.keep_finished:
            return
        for job in sorted(finished, key=sort_key)[self.keep_finished :]:
            del self._jobs[job["id"]]


# -- the filter --------------------------------------------------------------------------


class FilterError(ValueError):
    """A filter a person typed that means nothing: the message says what would."""


FILTER_KEYS = {"profile": "profile", "repository": "repository", "repo": "repository"}
FILTER_KEYS |= {"type": "type", "status": "status"}


@dataclass(frozen=True)
class Filter:
    """`status:failed profile:home`: each key one or more values (`status:failed,warning`,
    or the key repeated); keys together must all match; a bare word must appear in the
    job's id, profile, repository, archive or message."""

    profile: frozenset[str] = frozenset()
    repository: frozenset[str] = frozenset()
    type: frozenset[str] = frozenset()
    status: frozenset[str] = frozenset()
    words: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.profile or self.repository or self.type or self.status or self.words)

    def matches(self, job: Job) -> bool:
        for key in ("profile", "repository", "type", "status"):
            wanted: frozenset[str] = getattr(self, key)
            if wanted and job.get(key, "") not in wanted:
                return False
        if self.words:
            hay = " ".join(
                str(job.get(k, "")) for k in ("id", "profile", "repository", "archive", "message")
            ).lower()
            return all(w.lower() in hay for w in self.words)
        return True

    def list_jobs_filter(self) -> dict[str, list[str]]:
        """The same filter as ListJobs keys (each `as`), for what the words cannot say."""
        return {
            key: sorted(getattr(self, key))
            for key in ("profile", "repository", "type", "status")
            if getattr(self, key)
        }

    def __str__(self) -> str:
        parts = [
            f"{key}:{','.join(sorted(getattr(self, key)))}"
            for key in ("status", "type", "profile", "repository")
            if getattr(self, key)
        ]
        return " ".join(parts + [shlex.quote(w) for w in self.words])


def parse_filter(text: str) -> Filter:
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise FilterError(f"filter: {exc}") from None
    found: dict[str, set[str]] = {"profile": set(), "repository": set(), "type": set()}
    found["status"] = set()
    words: list[str] = []
    for token in tokens:
        key, colon, value = token.partition(":")
        if not colon:
            words.append(token)
            continue
        name = FILTER_KEYS.get(key.lower())
        if name is None:
            raise FilterError(
                f"unknown filter key {key!r} (use profile, repository, type, status)"
            )
        values = [v for v in value.split(",") if v]
        if not values:
            raise FilterError(f"{key}: needs a value, e.g. {key}:{_example(name)}")
        for v in values:
            found[name].update(_check_value(name, v))
    return Filter(
        profile=frozenset(found["profile"]),
        repository=frozenset(found["repository"]),
        type=frozenset(found["type"]),
        status=frozenset(found["status"]),
        words=tuple(words),
    )


def _example(name: str) -> str:
    return {"status": "failed", "type": "backup"}.get(name, "home")


def _check_value(name: str, value: str) -> tuple[str, ...]:
    if name == "status":
        value = value.lower()
        if value in STATUS_GROUPS:
            return STATUS_GROUPS[value]
        if value not in STATUSES:
            choices = ", ".join((*STATUSES, *STATUS_GROUPS))
            raise FilterError(f"unknown status {value!r} (one of: {choices})")
    elif name == "type":
        value = value.lower()
        if value not in TYPES:
            raise FilterError(f"unknown type {value!r} (one of: {', '.join(TYPES)})")
    return (value,)


# -- the cells of a job row ------------------------------------------------------------------

JOB_COLUMNS: tuple[tuple[str, str], ...] = (
    # The order a person reads at 80 columns: what, how it goes, then the rest.  A
    # running job's progress (percent, rate, ETA) leads its detail in one column, so
    # that both fit beside the when at 80 columns.
    ("id", "ID"),
    ("status", "STATUS"),
    ("type", "TYPE"),
    ("profile", "PROFILE"),
    ("when", "WHEN"),
    ("detail", "PROGRESS / DETAIL"),
    ("repository", "REPOSITORY"),
    ("trigger", "TRIGGER"),
)
DETAIL_WIDTH = 48


def when_us(job: Job) -> int:
    """The time that matters for the job's state: due, queued, started or ended."""
    status = job["status"]
    if status == SCHEDULED:
        return int(job.get("scheduled_for") or 0)
    if status == "queued":
        return int(job.get("queued_at") or job.get("created_at") or 0)
    if status == "running":
        return int(job.get("started_at") or 0)
    return int(job.get("finished_at") or job.get("created_at") or 0)


def when_text(job: Job, now: datetime) -> str:
    us = when_us(job)
    if job["status"] in FINISHED and us > now.timestamp() * 1e6:
        us = int(now.timestamp() * 1e6)  # a clock step must not show "in 5 min" for the past
    return human_time(us, now)


def duration_text(us: int) -> str:
    """An ETA as a clock: 0:35, 12:05, 2:01:05."""
    secs = max(0, round(us / 1e6))
    hours, rest = divmod(secs, 3600)
    mins, secs = divmod(rest, 60)
    return f"{hours}:{mins:02}:{secs:02}" if hours else f"{mins}:{secs:02}"


def progress_text(job: Job) -> str:
    """'42% 12.0 MB/s 0:35' for a running job; '' for any other."""
    if job["status"] != "running":
        return ""
    parts = []
    fraction = float(job.get("progress", -1.0))
    if fraction >= 0:
        parts.append(f"{math.floor(min(fraction, 1.0) * 100)}%")
    elif job.get("original_size"):
        parts.append(human_size(int(job["original_size"])))
    rate = float(job.get("rate") or 0.0)
    if rate > 0:
        parts.append(f"{human_size(int(rate))}/s")
    if job.get("eta"):
        parts.append(duration_text(int(job["eta"])))
    return " ".join(parts) or "…"


def detail_text(job: Job, width: int = DETAIL_WIDTH) -> str:
    """Why it waits, why it was skipped, what it does, or how it ended."""
    status = job["status"]
    message = job.get("message") or ""
    if job.get("blocked_by") and status in CANCELLABLE:
        text = f"waits: {job['blocked_by']}" + (f" — {message}" if message else "")
    elif status == "skipped":
        reason = job.get("skip_reason") or "skipped"
        text = reason + (f" — {message}" if message else "")
    elif status == "running":
        doing = job.get("progress_message") or message or job.get("current_file") or ""
        text = f"{progress_text(job)} {doing}".rstrip()
    elif status in ("succeeded", "warning") and job.get("archive") and not message:
        text = job["archive"]
    else:
        text = message
    return ellipsize(text, width)


def job_cells(job: Job, now: datetime) -> dict[str, str]:
    return {
        "id": str(job["id"]),
        "status": job["status"],
        "type": job["type"],
        "profile": job.get("profile") or "-",
        "when": when_text(job, now),
        "detail": detail_text(job),
        "repository": job.get("repository") or "-",
        "trigger": job.get("trigger") or "",
    }


def describe(job: Job, now: datetime) -> list[str]:
    """The job screen's head: every fact worth a line."""
    lines = [
        f"job {job['id']}: {job['type']} of {job.get('profile') or job.get('repository')}"
        f" — {job['status']}",
        f"trigger {job.get('trigger', '')}"
        + (f", schedule {job['schedule_id']}" if job.get("schedule_id") else "")
        + (f", requeued from job {job['requeued_from']}" if job.get("requeued_from") else "")
        + (f", after job {job['parent_id']}" if job.get("parent_id") else "")
        + f"; repository {job.get('repository', '')}",
    ]
    times = [
        f"{label} {human_time(int(job[key]), now)}"
        for key, label in (
            ("scheduled_for", "due"),
            ("queued_at", "queued"),
            ("started_at", "started"),
            ("finished_at", "ended"),
        )
        if job.get(key)
    ]
    if times:
        lines.append(", ".join(times))
    if job["status"] == "running":
        lines.append(f"progress {progress_text(job)}  {job.get('progress_message', '')}".rstrip())
    if job.get("nfiles") or job.get("original_size"):
        lines.append(
            f"{job.get('nfiles', 0)} files, {human_size(int(job.get('original_size', 0)))}"
            f" original, {human_size(int(job.get('deduplicated_size', 0)))} new"
        )
    if job.get("archive") and job["status"] in ("running", "succeeded", "warning"):
        lines.append(f"archive {job['archive']}")
    detail = detail_text(job, width=200)
    if detail and detail != job.get("archive") and job["status"] != "running":
        lines.append(detail)
    return lines


# -- the status line ------------------------------------------------------------------------


def status_line(props: Mapping[str, Any], connected: bool, now: datetime) -> str:
    if not connected:
        return "borgd is not running — waiting"
    parts = [f"borgd {props.get('Version', '')}".rstrip()]
    if props.get("Paused"):
        until = int(props.get("PausedUntil") or 0)
        parts.append(f"PAUSED until {human_time(until, now)}" if until else "PAUSED")
    active = int(props.get("ActiveJobs") or 0)
    parts.append(f"{active} running" if active else "idle")
    if props.get("NextRun"):
        parts.append(f"next run {human_time(int(props['NextRun']), now)}")
    for key, text in (("OnBattery", "on battery"), ("Metered", "metered network")):
        if props.get(key):
            parts.append(text)
    health = props.get("StoreHealth") or "ok"
    if health != "ok":
        parts.append(f"store {health}")
    return " · ".join(parts)


def error_text(name: str, text: str) -> str:
    """org.borgd1.Error.InvalidState + its text -> 'InvalidState: text'."""
    short = name.rsplit(".", 1)[-1] if name else "error"
    return f"{short}: {text}" if text else short


# -- Upcoming: the next days as a calendar --------------------------------------------------


@dataclass(frozen=True)
class Day:
    day: date
    runs: tuple[Job, ...] = ()

    @property
    def held(self) -> int:
        """Runs that a blackout window (or another condition) defers."""
        return sum(1 for r in self.runs if r.get("deferred_to") or r.get("blocked_by"))


def calendar_days(runs: Iterable[Job], now: datetime, days: int = 30) -> list[Day]:
    """One Day per calendar day from today on (the view's time zone), with its runs."""
    today = now.date()
    by_day: dict[date, list[Job]] = {today + timedelta(days=i): [] for i in range(days)}
    for run in runs:
        day = to_local(int(run["scheduled_for"]), now.tzinfo).date()
        if day in by_day:
            by_day[day].append(run)
    return [Day(d, tuple(sorted(r, key=lambda x: x["scheduled_for"]))) for d, r in by_day.items()]


def calendar_weeks(days: Sequence[Day]) -> list[list[Day | None]]:
    """The days as weeks of seven (Monday first), None where the range has no day."""
    if not days:
        return []
    lead = days[0].day.weekday()
    cells: list[Day | None] = [None] * lead + list(days)
    cells += [None] * (-len(cells) % 7)
    return [cells[i : i + 7] for i in range(0, len(cells), 7)]


def day_cell(day: Day | None, today: date) -> str:
    """'Dec 3  4!': the date (with its month on the first day shown and on a 1st), how
    many runs ('·' for none), '!' when a blackout window holds some back.  9 wide."""
    if day is None:
        return ""
    d = day.day
    label = f"{d:%b} {d.day}" if d.day == 1 or d == today else str(d.day)
    count = str(len(day.runs)) if day.runs else "·"
    return f"{label:<6}{count:>2}{'!' if day.held else ' '}"


def day_rows(day: Day, tz: tzinfo | None, collapse: int = 4) -> list[tuple[str, str, str, str]]:
    """(time, profile, action, note) per planned run; a schedule that runs more than
    `collapse` times that day is one row ('00:00–23:30', '48 runs')."""
    by_schedule: dict[int, list[Job]] = {}
    for run in day.runs:
        by_schedule.setdefault(int(run["schedule_id"]), []).append(run)
    rows: list[tuple[int, tuple[str, str, str, str]]] = []
    for runs in by_schedule.values():
        first = runs[0]
        if len(runs) > collapse:
            start = to_local(int(first["scheduled_for"]), tz)
            end = to_local(int(runs[-1]["scheduled_for"]), tz)
            held = sum(1 for r in runs if r.get("deferred_to"))
            note = f"{len(runs)} runs" + (f", {held} held back" if held else "")
            row = (f"{start:%H:%M}–{end:%H:%M}", first["profile"], first["action"], note)
            rows.append((int(first["scheduled_for"]), row))
            continue
        for run in runs:
            when = to_local(int(run["scheduled_for"]), tz)
            rows.append(
                (
                    int(run["scheduled_for"]),
                    (f"{when:%H:%M}", run["profile"], run["action"], _held(run, tz)),
                )
            )
    return [row for _, row in sorted(rows, key=lambda r: r[0])]


def _held(run: Job, tz: tzinfo | None) -> str:
    if run.get("deferred_to"):
        later = to_local(int(run["deferred_to"]), tz)
        return f"waits for {later:%a %H:%M} ({run.get('blocked_by') or 'blackout'})"
    if run.get("blocked_by"):
        return f"held: {run['blocked_by']}"
    return ""


# -- Profiles: health, next run, sizes -------------------------------------------------------

SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str:
    """One character per value, the tallest block for the largest."""
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return SPARKS[0] * len(values)
    return "".join(
        SPARKS[min(len(SPARKS) - 1, int(v / top * (len(SPARKS) - 1) + 0.5))] for v in values
    )


def bar_chart(stats: Sequence[Job], now: datetime, width: int = 30, rows: int = 8) -> list[str]:
    """The last `rows` backups: when, a bar of the deduplicated (new) size, the size."""
    shown = list(stats)[-rows:]
    if not shown:
        return ["no backups yet"]
    top = max(int(s.get("deduplicated_size", 0)) for s in shown) or 1
    lines = []
    for s in shown:
        size = int(s.get("deduplicated_size", 0))
        eighths = round(size / top * width * 8)
        bar = "█" * (eighths // 8) + (" ▏▎▍▌▋▊▉"[eighths % 8] if eighths % 8 else "")
        when = to_local(int(s["finished_at"]), now.tzinfo)
        lines.append(f"{when:%m-%d %H:%M} {bar:<{width}} {human_size(size)}")
    return lines


@dataclass(frozen=True)
class ProfileRow:
    name: str
    repository: str
    last_success: str
    state: str
    next_run: str
    repository_size: str
    recent: str
    stats: tuple[Job, ...] = field(default=(), compare=False)


def profile_rows(
    profiles: Sequence[Job],
    schedules: Sequence[Job],
    repositories: Sequence[Job],
    stats: Mapping[str, Sequence[Job]],
    now: datetime,
    recent: int = 12,
) -> list[ProfileRow]:
    """One row per profile.  `stats` maps a repository to its RepositoryStats rows."""
    sizes = {r["name"]: int(r.get("size") or 0) for r in repositories}
    rows = []
    for p in sorted(profiles, key=lambda p: p["name"]):
        name = p["name"]
        mine = [s for s in stats.get(p["repository"], ()) if s.get("profile") == name]
        size = sizes.get(p["repository"], 0)
        if not size:  # remote, or not measured yet: the size after the last backup
            known = [int(s.get("repository_size") or 0) for s in stats.get(p["repository"], ())]
            size = next((k for k in reversed(known) if k), 0)
        nexts = [
            int(s["next_run"])
            for s in schedules
            if s["profile"] == name and s.get("enabled", True) and s.get("next_run")
        ]
        if not p.get("enabled", True):
            state = "disabled"
        elif p.get("overdue"):
            state = "OVERDUE"
        elif not p.get("last_success"):
            state = "never"
        else:
            state = "ok"
        rows.append(
            ProfileRow(
                name=name,
                repository=p["repository"],
                last_success=human_time(int(p.get("last_success") or 0), now),
                state=state,
                next_run=human_time(min(nexts), now) if nexts else "-",
                repository_size=human_size(size) if size else "-",
                recent=sparkline([float(s.get("deduplicated_size", 0)) for s in mine[-recent:]]),
                stats=tuple(mine),
            )
        )
    return rows


# -- Archives ---------------------------------------------------------------------------------


def archive_cells(archive: Job, now: datetime) -> tuple[str, str, str, str, str]:
    name = archive["name"] + (" (checkpoint)" if archive.get("checkpoint") else "")
    return (
        name,
        human_time(int(archive.get("start") or 0), now),
        archive.get("profile") or "-",
        human_size(int(archive.get("original_size") or 0)),
        human_size(int(archive.get("deduplicated_size") or 0)),
    )


def entry_name(path: str, parent: str) -> str:
    """An entry's name below `parent` ('' = the top)."""
    return path[len(parent) + 1 :] if parent and path.startswith(parent + "/") else path


def parent_of(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def entry_cells(
    entry: Job, parent: str, tz: tzinfo | None, selected: bool
) -> tuple[str, str, str, str]:
    name = entry_name(entry["path"], parent)
    kind = entry.get("type", "-")
    if kind == "d":
        name += "/"
    elif kind == "l" and entry.get("target"):
        name += f" -> {entry['target']}"
    size = "" if kind == "d" else human_size(int(entry.get("size") or 0))
    mtime = (
        to_local(int(entry["mtime"]), tz).strftime("%Y-%m-%d %H:%M") if entry.get("mtime") else ""
    )
    return ("[x]" if selected else "[ ]", name, size, mtime)


def diff_cells(row: Job) -> tuple[str, str, str]:
    delta = int(row.get("size_delta") or 0)
    sign = "+" if delta > 0 else "-" if delta < 0 else ""
    return (
        ", ".join(row.get("changes", ())),
        f"{sign}{human_size(abs(delta))}" if delta else "",
        row["path"],
    )


def default_mountpoint(runtime_dir: str, repository: str, archive: str) -> str:
    """Where MountArchive with mountpoint '' mounts (borgd's rule, for the message)."""
    parts = [runtime_dir, "borgd", "mnt", repository] + ([archive] if archive else [])
    return "/".join(p.rstrip("/") for p in parts)
