"""Archive use cases: what a repository holds, answered from borgd's cache.

Clients never hold a passphrase, so borgd lists archives for them.  The
cache is kept by `archive_cache.ArchiveCacheKeeper`; RefreshArchives asks
borg again with a `list` job in the repository's lane.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping
from typing import Any

from borgd import errors
from borgd.app.jobs import JobCases
from borgd.core.jobs import JobStatus, JobType
from borgd.core.records import Archive, Repository
from borgd.core.validation import (
    ARCHIVE_FILTER,
    CONTENTS_OPTIONS,
    DELETE_OPTIONS,
    DIFF_OPTIONS,
    MOUNT_OPTIONS,
    Variant,
    check_id,
    check_name,
    check_options,
)
from borgd.execution import listings
from borgd.execution.archive_reader import ArchiveReader
from borgd.offloop import call_with_timeout
from borgd.store.jobs import JobFilter


def archive_dict(archive: Archive, repository: str) -> dict[str, Any]:
    """An archive as ListArchives answers it (the contract's keys)."""
    return {
        "name": archive.name,
        "id": archive.archive_id,
        "repository": repository,
        "profile": archive.profile,
        "start": archive.start,
        "end": archive.end,
        "nfiles": archive.nfiles,
        "original_size": archive.original_size,
        "compressed_size": archive.compressed_size,
        "deduplicated_size": archive.deduplicated_size,
        "comment": archive.comment,
        "job_id": archive.job_id,
        "checkpoint": bool(archive.checkpoint),
    }


PAGE_DEFAULT = 1000
PAGE_MAX = 10_000
READ_TIMEOUT_S = 10.0  # one page of a listing file: milliseconds
# Job types whose borg holds the repository's exclusive lock for its whole run.
EXCLUSIVE = (JobType.BACKUP, JobType.PRUNE, JobType.COMPACT, JobType.CHECK, JobType.DELETE)


def _page(opts: Mapping[str, Any]) -> tuple[int, int]:
    limit = opts.get("limit", 0) or PAGE_DEFAULT
    if limit > PAGE_MAX:
        raise errors.InvalidArgument(f"limit is at most {PAGE_MAX}, not {limit}")
    return opts.get("offset", 0), limit


class ArchiveCases(JobCases):
    def _archive(self, repo: Repository, name: str) -> Archive:
        found = self.store.archives.get(repo.id, name)
        if found is not None:
            return found
        raise errors.NotFound(
            f"no archive named {name!r} in repository {repo.name!r} "
            "(RefreshArchives first if it was made outside borgd)"
        )

    def _reader(self) -> ArchiveReader:
        if self.archive_reader is None:
            raise errors.Unavailable("this borgd cannot read archives")
        return self.archive_reader

    def _lane_free(self, repo: Repository, what: str) -> None:
        """borg would wait for the lock past the client's timeout: say who holds it."""
        running = self.store.jobs.query(
            JobFilter(repositories=(repo.name,), statuses=(JobStatus.RUNNING.value,))
        )
        for job in running:
            if job.type in EXCLUSIVE:
                raise errors.Unavailable(
                    f"repository {repo.name!r} is busy: {job.type.value} job {job.id} holds "
                    f"borg's lock; {what} once it has finished"
                )

    async def list_archive_contents(
        self, repository: str, archive: str, path: str, options: Mapping[str, Variant]
    ) -> list[dict[str, Any]]:
        check_name("repository", repository)
        opts = check_options("ListArchiveContents", CONTENTS_OPTIONS, options)
        offset, limit = _page(opts)
        repo = self._repository(repository)
        row = self._archive(repo, archive)
        reader = self._reader()
        key = row.archive_id or hashlib.sha256(f"{repo.url}::{archive}".encode()).hexdigest()
        listing = reader.listing_path(key)
        if not listing.exists():
            self._lane_free(repo, "list its archives' contents")
            listing = await reader.listing(repo.config(), archive, key)
        read = functools.partial(
            listings.read_page,
            listing,
            path,
            recursive=bool(opts.get("recursive", False)),
            pattern=opts.get("pattern", ""),
            offset=offset,
            limit=limit,
        )
        try:
            return await call_with_timeout(read, READ_TIMEOUT_S, "listing-page")
        except TimeoutError:
            raise errors.Unavailable("reading the listing timed out") from None

    async def diff_archives(
        self, repository: str, archive1: str, archive2: str, options: Mapping[str, Variant]
    ) -> list[dict[str, Any]]:
        check_name("repository", repository)
        opts = check_options("DiffArchives", DIFF_OPTIONS, options)
        offset, limit = _page(opts)
        repo = self._repository(repository)
        first, second = self._archive(repo, archive1), self._archive(repo, archive2)
        path = opts.get("path", "")
        reader = self._reader()
        key = (first.archive_id, second.archive_id, path)
        known = key if first.archive_id and second.archive_id else None
        found = reader.remembered_diff(known)  # later pages: no borg, nor its lock
        if found is None:
            self._lane_free(repo, "compare its archives")
            found = await reader.diff(repo.config(), archive1, archive2, path, known)
        return [
            {"path": d.path, "changes": list(d.changes), "size_delta": d.size_delta}
            for d in found[offset : offset + limit]
        ]

    def list_archives(self, repository: str, flt: Mapping[str, Variant]) -> tuple[Archive, ...]:
        """The cache's records, newest first: the same tuple again while the cache is
        unchanged (`archive_dict` gives a record's keys)."""
        check_name("repository", repository)
        opts = check_options("ListArchives filter", ARCHIVE_FILTER, flt)
        repo = self._repository(repository)
        if opts.get("profile"):
            self._profile(opts["profile"])  # a misspelt profile is NotFound, not an empty list
        return self.store.archives.query(
            repo.id,
            profile=opts.get("profile") or None,
            checkpoints=bool(opts.get("checkpoints", False)),
            limit=opts.get("limit", 0),
        )

    def repository_stats(self, repository: str, since: int) -> list[dict[str, Any]]:
        """One row per backup that made an archive since `since` (µs), oldest first."""
        check_name("repository", repository)
        repo = self._repository(repository)
        since = min(since, 2**63 - 1)  # any u64 is a time; SQLite's integers end at 2**63 - 1
        return [
            {
                "finished_at": job.finished_at,
                "archive": job.archive,
                "profile": job.profile,
                "nfiles": job.nfiles,
                "original_size": job.original_size,
                "deduplicated_size": job.deduplicated_size,
                "duration": job.duration,
                "repository_size": job.repository_size,
            }
            for job in self.store.jobs.backups_since(repo.id, since)
        ]

    def delete_archive(self, repository: str, archive: str, options: Mapping[str, Variant]) -> int:
        """Queue a `delete` job for one archive the cache knows.  A profile's newest
        successful archive is its last good backup: refused unless `force`."""
        check_name("repository", repository)
        opts = check_options("DeleteArchive", DELETE_OPTIONS, options)
        repo = self._repository(repository)
        self._archive(repo, archive)
        if not opts.get("force"):
            for profile in self.store.catalog.profiles(repository_id=repo.id):
                last = self.store.jobs.last_success(profile.name)
                if last is not None and last.archive == archive:
                    raise errors.InvalidState(
                        f"{archive!r} is the newest successful backup of profile "
                        f"{profile.name!r}; pass force=true to delete it anyway"
                    )
        job = self._queue(
            JobType.DELETE,
            profile="",
            repository=repo.name,
            repository_id=repo.id,
            options={"archive": archive},
            archive=archive,
        )
        return int(job.id)

    def mount_archive(
        self, repository: str, archive: str, mountpoint: str, options: Mapping[str, Variant]
    ) -> int:
        """Queue a `mount` job: it runs (holding the lane) for as long as it is mounted."""
        check_name("repository", repository)
        check_options("MountArchive", MOUNT_OPTIONS, options)
        repo = self._repository(repository)
        if archive:
            self._archive(repo, archive)
        if not mountpoint:
            runtime = os.environ.get("XDG_RUNTIME_DIR")
            if not runtime:
                raise errors.InvalidArgument(
                    "give a mount point: $XDG_RUNTIME_DIR, where the default is, is not set"
                )
            mountpoint = os.path.join(runtime, "borgd", "mnt", repo.name, archive)
        if not os.path.isabs(mountpoint) or "\0" in mountpoint:
            raise errors.InvalidArgument(
                f"the mount point must be an absolute path: {mountpoint!r}"
            )
        mountpoint = os.path.normpath(mountpoint)
        for job in self.store.jobs.query(
            JobFilter(types=(JobType.MOUNT.value,), statuses=("queued", "running"))
        ):
            if job.options.get("destination") == mountpoint:
                raise errors.AlreadyExists(f"job {job.id} mounts at {mountpoint} already")
        job = self._queue(
            JobType.MOUNT,
            profile="",
            repository=repo.name,
            repository_id=repo.id,
            options={"archive": archive, "destination": mountpoint},
            archive=archive,
        )
        return int(job.id)

    def unmount_archive(self, job_id: int) -> None:
        """End a mount job (as CancelJob does; the job then reads `unmounted by request`)."""
        check_id("job id", job_id)
        job = self._job(job_id)
        if job.type is not JobType.MOUNT:
            raise errors.InvalidArgument(f"job {job_id} is a {job.type.value} job, not a mount")
        self.cancel_job(job_id)

    def refresh_archives(self, repository: str) -> int:
        check_name("repository", repository)
        repo = self._repository(repository)
        job = self._queue(
            JobType.LIST, profile="", repository=repo.name, repository_id=repo.id, options={}
        )
        return int(job.id)
