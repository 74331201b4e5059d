"""Notifiers and their deliveries: which events go where, and how (no I/O).

A notifier is a kind (`apprise`, `healthchecks`, `webhook`), a secret URL,
the events it wants and the profiles it cares for.  Every wanted event
becomes one outbox row, keyed by (notifier, event, subject) so the same
event is never queued twice.  This module decides who wants what, builds a
healthchecks ping's URL, derives the run id, says what of a URL may be shown,
keeps tokens out of error text, and spaces retries.
"""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from borgd.core.jobs import JobStatus, JobType, SkipReason
from borgd.core.validation import BOOL, STR, STR_LIST, U32_, InvalidArgument, Kind, check_options

EVENTS = (
    "job-started",
    "job-succeeded",
    "job-warning",
    "job-failed",
    "job-skipped",
    "overdue",
    "missed-window",
    "blocked",
)
KINDS = ("apprise", "healthchecks", "webhook")
STATUSES = ("pending", "sent", "failed", "dropped")
TEST_EVENT = "test"

# What a notifier hears when it names no events: trouble for people, a run's
# start and end for a ping monitor.
DEFAULT_EVENTS: Mapping[str, tuple[str, ...]] = {
    "apprise": ("job-failed", "overdue", "missed-window", "blocked"),
    "webhook": ("job-failed", "overdue", "missed-window", "blocked"),
    "healthchecks": ("job-started", "job-succeeded", "job-failed"),
}

NOTIFIER_OPTIONS: Mapping[str, Kind] = {
    "kind": STR,
    "events": STR_LIST,
    "profiles": STR_LIST,
    "enabled": BOOL,
}
UPDATE_OPTIONS: Mapping[str, Kind] = {**NOTIFIER_OPTIONS, "url": STR}
DELIVERY_FILTER: Mapping[str, Kind] = {"notifier": STR, "status": STR, "limit": U32_}

_JOB_EVENTS = {
    JobStatus.RUNNING: "job-started",
    JobStatus.SUCCEEDED: "job-succeeded",
    JobStatus.WARNING: "job-warning",
    JobStatus.FAILED: "job-failed",
    JobStatus.SKIPPED: "job-skipped",
}

RETRY_FIRST_US = 30_000_000  # 30 s, doubling
RETRY_MAX_US = 3_600_000_000  # at most an hour apart
GIVE_UP_US = 24 * 3_600_000_000  # a day after the event: failed
SEND_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class NotifierSettings:
    kind: str
    events: tuple[str, ...]
    profiles: tuple[str, ...]
    enabled: bool


def check_url(kind: str, url: object) -> str:
    if not isinstance(url, str) or not url.strip() or len(url) > 4096:
        raise InvalidArgument("a notifier needs its URL (at most 4096 characters)")
    if any(c in url for c in "\n\r\0"):
        raise InvalidArgument("a notifier URL must not contain line breaks or NUL bytes")
    scheme = urllib.parse.urlsplit(url).scheme
    if not scheme:
        raise InvalidArgument("a notifier URL needs a scheme (ntfy://, mailto://, https:// …)")
    if kind in ("healthchecks", "webhook") and scheme not in ("http", "https"):
        raise InvalidArgument(f"a {kind} notifier's URL must be http:// or https://")
    return url


def settings_from(options: Mapping[str, Any], base: NotifierSettings | None) -> NotifierSettings:
    """Validated settings: `options` (checked a{sv}) over `base` (None: a new notifier)."""
    kind = str(options.get("kind", base.kind if base else "apprise"))
    if kind not in KINDS:
        raise InvalidArgument(f"unknown notifier kind {kind[:40]!r}; one of {', '.join(KINDS)}")
    if base is not None and kind != base.kind and "events" not in options:
        base = NotifierSettings(kind, DEFAULT_EVENTS[kind], base.profiles, base.enabled)
    events = tuple(options["events"]) if "events" in options else None
    if events is None:
        events = base.events if base else DEFAULT_EVENTS[kind]
    for e in events:
        if e not in EVENTS:
            raise InvalidArgument(f"unknown event {e[:40]!r}; one of {', '.join(EVENTS)}")
    profiles = tuple(options["profiles"]) if "profiles" in options else None
    if profiles is None:
        profiles = base.profiles if base else ()
    enabled = bool(options.get("enabled", base.enabled if base else True))
    return NotifierSettings(kind, tuple(dict.fromkeys(events)), tuple(profiles), enabled)


def check_notifier_options(options: Mapping[str, Any], *, update: bool = False) -> dict[str, Any]:
    return check_options(
        "UpdateNotifier" if update else "AddNotifier",
        UPDATE_OPTIONS if update else NOTIFIER_OPTIONS,
        options,
    )


def job_events(status: JobStatus, skip_reason: SkipReason | None = None) -> list[str]:
    """The events a job's new status is: none for statuses nobody is told of; a run
    skipped because its catch-up window had passed is also `missed-window`."""
    event = _JOB_EVENTS.get(status)
    if event is None:
        return []
    if status is JobStatus.SKIPPED and skip_reason is SkipReason.MISSED_WINDOW:
        return [event, "missed-window"]
    return [event]


def wants(
    *,
    kind: str,
    events: Iterable[str],
    profiles: Iterable[str],
    enabled: bool,
    event: str,
    profile: str,
    job_type: JobType | None,
) -> bool:
    """Does this notifier want this event?  A ping monitor hears backups only (a check
    is "backups happen"), and a warning as the success it is unless it asks for it."""
    if not enabled:
        return False
    wanted = set(events)
    allowed = set(profiles)
    if allowed and profile not in allowed:
        return False
    if kind == "healthchecks":
        if job_type is not JobType.BACKUP:
            return False
        if event == "job-warning":
            return "job-warning" in wanted or "job-succeeded" in wanted
    return event in wanted


def delivery_key(notifier_id: int, event: str, subject: str) -> str:
    """One row per (notifier, event, subject): a job id, or an episode of a profile."""
    return f"{notifier_id}:{event}:{subject}"


def run_id(host: str, job_id: int) -> str:
    """The same id on a job's start and end pings (healthchecks' `rid`), from the job."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"borgd://{host}/jobs/{job_id}"))


def ping_url(base: str, event: str, rid: str, *, warning_fails: bool) -> str:
    """healthchecks: `/start`, the plain URL on success, `/fail` on failure."""
    parts = urllib.parse.urlsplit(base)
    path = parts.path.rstrip("/")
    if event == "job-started":
        path += "/start"
    elif event == "job-failed" or (event == "job-warning" and warning_fails):
        path += "/fail"
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query.append(("rid", rid))
    return urllib.parse.urlunsplit(
        (parts.scheme, parts.netloc, path, urllib.parse.urlencode(query), "")
    )


def public_host(url: str) -> str:
    """What of a URL may be shown: its scheme and host, never a user, path or query."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return ""
    return f"{parts.scheme}://{host}{port}" if parts.scheme else ""


def secret_pieces(url: str) -> list[str]:
    """Every part of a URL that may be a token, longest first."""
    pieces = {url}
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return [url]
    for piece in (parts.username, parts.password, parts.path, parts.query, parts.fragment):
        if piece:
            pieces.add(piece)
    for segment in parts.path.split("/"):
        if len(segment) >= 4:
            pieces.add(segment)
    for _, value in urllib.parse.parse_qsl(parts.query):
        if len(value) >= 4:
            pieces.add(value)
    for piece in list(pieces):
        pieces.add(urllib.parse.quote(piece, safe=""))
        pieces.add(urllib.parse.unquote(piece))
    return sorted((p for p in pieces if p), key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """`text` (an error from a library) without any piece of the secret URL."""
    for piece in secret_pieces(url):
        text = text.replace(piece, "…")
    return text[:500]


def next_attempt(
    created_at: int, attempts: int, now: int, *, first: int = RETRY_FIRST_US
) -> int | None:
    """When to try again after `attempts` failures; None: a day has passed, give up."""
    delay = min(RETRY_MAX_US, first * 2 ** max(0, attempts - 1))
    due: int = now + delay
    return None if due > created_at + GIVE_UP_US else due


def check_delivery_filter(options: Mapping[str, Any]) -> dict[str, Any]:
    opts = check_options("ListDeliveries filter", DELIVERY_FILTER, options)
    if "status" in opts and opts["status"] not in STATUSES:
        raise InvalidArgument(
            f"unknown delivery status {opts['status'][:40]!r}; one of {', '.join(STATUSES)}"
        )
    return opts
