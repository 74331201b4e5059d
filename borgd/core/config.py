"""Frozen views of repositories, profiles and job options, as the pure core sees them.

The store turns rows into these; the borg argv builder and the executor
take them as plain values.  Secrets are not here: a repository only says
*whether* it has a passphrase or a passcommand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from borgd.core.jobs import JobType


@dataclass(frozen=True)
class RepoConfig:
    name: str
    url: str
    encryption: str = "repokey-blake2"
    ssh_command: str | None = None
    lock_wait: int | None = None  # seconds; None = borg's default
    upload_ratelimit: int = 0  # KiB/s; 0 = no limit
    has_passphrase: bool = False
    passcommand: str | None = None

    @property
    def is_remote(self) -> bool:
        return is_remote_url(self.url)


@dataclass(frozen=True)
class Retention:
    keep_within: str | None = None
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0

    @property
    def is_empty(self) -> bool:
        return not self.keep_within and not any(
            (
                self.keep_hourly,
                self.keep_daily,
                self.keep_weekly,
                self.keep_monthly,
                self.keep_yearly,
            )
        )


@dataclass(frozen=True)
class ProfileConfig:
    name: str
    repository: str
    sources: tuple[str, ...]
    excludes: tuple[str, ...] = ()
    compression: str | None = None
    archive_template: str = "{profile}-{now:%Y-%m-%dT%H:%M:%S}"
    retention: Retention = field(default_factory=Retention)
    prune_after: bool = False
    compact_after: bool = False
    check_every: int = 0
    pre_command: str | None = None
    post_command: str | None = None
    enabled: bool = True
    max_age: int = 0  # microseconds; 0 = no overdue tracking
    inhibit_sleep: bool = True
    one_file_system: bool = False
    nice: int = 0  # borg runs under `nice -n` this (0 = as borgd)
    ionice: str = ""  # "idle" or "best-effort" (`ionice -c 3` / `-c 2`); "" = as borgd


@dataclass(frozen=True)
class JobOptions:
    """Per-job options given to StartJob (restore and check)."""

    archive: str | None = None
    destination: str | None = None
    paths: tuple[str, ...] = ()
    repository_only: bool = False
    archives_only: bool = False
    max_duration: int = 0  # microseconds
    verify_data: bool = False


def job_options_from(opts: Mapping[str, Any]) -> JobOptions:
    """StartJob's validated options (as stored with the job) as a frozen value."""
    return JobOptions(
        archive=opts.get("archive") or None,
        destination=opts.get("destination") or None,
        paths=tuple(opts.get("paths", ())),
        repository_only=bool(opts.get("repository_only", False)),
        archives_only=bool(opts.get("archives_only", False)),
        max_duration=int(opts.get("max_duration", 0)),
        verify_data=bool(opts.get("verify_data", False)),
    )


@dataclass(frozen=True)
class JobSpec:
    """Everything needed to build one borg command line."""

    type: JobType
    repo: RepoConfig
    profile: ProfileConfig | None
    options: JobOptions = field(default_factory=JobOptions)
    archive_name: str | None = None  # resolved name for a backup


def is_remote_url(url: str) -> bool:
    """ssh://host/path and user@host:path are remote; a plain path is local."""
    if url.startswith("ssh://"):
        return True
    if url.startswith("/") or url.startswith("file://"):
        return False
    head = url.split("/", 1)[0]
    return ":" in head


def local_path(url: str) -> str | None:
    """The filesystem path of a local repository, None for a remote one."""
    if url.startswith("file://"):
        return url[len("file://") :]
    if is_remote_url(url):
        return None
    return url
