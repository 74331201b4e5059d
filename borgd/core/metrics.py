"""The metrics file's text: a frozen snapshot of borgd's state in Prometheus's text
exposition format (0.0.4), for node_exporter's textfile collector.

Pure: `borgd.notify.metrics_file` gathers the snapshot and writes the text.
Every metric is a gauge (job rows come and go with retention, so even their
number is no counter), which leaves `promtool check metrics` nothing to say.
Times arrive in microseconds, the store's unit, and leave in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "JobCount",
    "LastBackup",
    "ProfileState",
    "RepositoryState",
    "Snapshot",
    "escape_label",
    "render",
    "seconds",
]


@dataclass(frozen=True, slots=True)
class LastBackup:
    """A profile's newest successful backup: the job its last success is."""

    finished_at: int  # µs
    duration: float  # s
    original_size: int
    compressed_size: int
    deduplicated_size: int
    nfiles: int


@dataclass(frozen=True, slots=True)
class ProfileState:
    name: str
    repository: str
    overdue: bool
    next_run: int  # µs; 0 = no backup scheduled
    last_backup: LastBackup | None  # None: no successful backup yet


@dataclass(frozen=True, slots=True)
class RepositoryState:
    name: str
    size: int  # bytes on disk; 0 = not known (yet)
    archives: int


@dataclass(frozen=True, slots=True)
class JobCount:
    type: str
    status: str
    count: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: str
    profiles: tuple[ProfileState, ...] = ()
    repositories: tuple[RepositoryState, ...] = ()
    jobs: tuple[JobCount, ...] = ()


Labels = tuple[tuple[str, str], ...]
Sample = tuple[Labels, str]


def escape_label(value: str) -> str:
    """A label value as the format quotes it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def seconds(us: int) -> str:
    """Microseconds as exact decimal seconds: 1700000000250000 → '1700000000.25'."""
    whole, frac = divmod(max(us, 0), 1_000_000)
    return f"{whole}.{frac:06d}".rstrip("0").rstrip(".")


def _float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _family(name: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    """HELP, TYPE and the samples; nothing at all for a family without samples."""
    rows = list(samples)
    if not rows:
        return []
    lines = [f"# HELP {name} {_escape_help(help_text)}", f"# TYPE {name} gauge"]
    for labels, value in rows:
        text = ",".join(f'{key}="{escape_label(val)}"' for key, val in labels)
        lines.append(f"{name}{{{text}}} {value}" if text else f"{name} {value}")
    return lines


def render(snap: Snapshot) -> str:
    """The whole file; profiles, repositories and job counts in a fixed order."""
    profiles = sorted(snap.profiles, key=lambda p: p.name)
    repos = sorted(snap.repositories, key=lambda r: r.name)
    jobs = sorted(snap.jobs, key=lambda j: (j.type, j.status))
    done = [(p, p.last_backup) for p in profiles if p.last_backup is not None]

    def per_profile(rows: Iterable[tuple[ProfileState, str]]) -> list[Sample]:
        return [((("profile", p.name),), value) for p, value in rows]

    lines = [
        *_family(
            "borgd_info", "borgd's version (always 1).", [((("version", snap.version),), "1")]
        ),
        *_family(
            "borgd_profile_info",
            "A profile and the repository it backs up to (always 1).",
            [((("profile", p.name), ("repository", p.repository)), "1") for p in profiles],
        ),
        *_family(
            "borgd_last_success_timestamp_seconds",
            "When the profile's newest successful backup ended (0: none yet).",
            per_profile(
                (p, seconds(p.last_backup.finished_at) if p.last_backup else "0") for p in profiles
            ),
        ),
        *_family(
            "borgd_last_backup_duration_seconds",
            "How long the profile's newest successful backup took.",
            per_profile((p, _float(b.duration)) for p, b in done),
        ),
        *_family(
            "borgd_last_backup_original_bytes",
            "Size of the files in the profile's newest successful backup.",
            per_profile((p, str(b.original_size)) for p, b in done),
        ),
        *_family(
            "borgd_last_backup_compressed_bytes",
            "Compressed size of the profile's newest successful backup.",
            per_profile((p, str(b.compressed_size)) for p, b in done),
        ),
        *_family(
            "borgd_last_backup_deduplicated_bytes",
            "What the profile's newest successful backup added to the repository.",
            per_profile((p, str(b.deduplicated_size)) for p, b in done),
        ),
        *_family(
            "borgd_last_backup_files",
            "Files in the profile's newest successful backup.",
            per_profile((p, str(b.nfiles)) for p, b in done),
        ),
        *_family(
            "borgd_profile_overdue",
            "1 while the profile is overdue: no successful backup within its max_age.",
            per_profile((p, "1" if p.overdue else "0") for p in profiles),
        ),
        *_family(
            "borgd_next_run_timestamp_seconds",
            "When the profile's next scheduled backup is due (0: none scheduled).",
            per_profile((p, seconds(p.next_run)) for p in profiles),
        ),
        *_family(
            "borgd_jobs",
            "Job rows in borgd's store, by type and status.",
            [((("type", j.type), ("status", j.status)), str(j.count)) for j in jobs],
        ),
        *_family(
            "borgd_repository_size_bytes",
            "The repository's latest known size on disk.",
            [((("repository", r.name),), str(r.size)) for r in repos if r.size > 0],
        ),
        *_family(
            "borgd_repository_archives",
            "Archives in the repository, as borgd's archive cache knows them.",
            [((("repository", r.name),), str(r.archives)) for r in repos],
        ),
    ]
    return "\n".join(lines) + "\n"
