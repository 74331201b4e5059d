"""Archive use cases: what a repository holds, answered from borgd's cache.

Clients never hold a passphrase, so borgd lists archives for them.  The
cache is kept by `archive_cache.ArchiveCacheKeeper`; RefreshArchives asks
borg again with a `list` job in the repository's lane.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from borgd import errors
from borgd.app.context import UseCaseContext
from borgd.core.jobs import JobType
from borgd.core.records import Archive
from borgd.core.validation import (
    ARCHIVE_FILTER,
    DELETE_OPTIONS,
    Variant,
    check_name,
    check_options,
)


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


class ArchiveCases(UseCaseContext):
    def list_archives(self, repository: str, flt: Mapping[str, Variant]) -> list[dict[str, Any]]:
        check_name("repository", repository)
        opts = check_options("ListArchives filter", ARCHIVE_FILTER, flt)
        repo = self._repository(repository)
        if opts.get("profile"):
            self._profile(opts["profile"])  # a misspelt profile is NotFound, not an empty list
        rows = self.store.archives.query(
            repo.id,
            profile=opts.get("profile") or None,
            checkpoints=bool(opts.get("checkpoints", False)),
            limit=opts.get("limit", 0),
        )
        return [archive_dict(a, repo.name) for a in rows]

    def repository_stats(self, repository: str, since: int) -> list[dict[str, Any]]:
        """One row per backup that made an archive since `since` (µs), oldest first."""
        check_name("repository", repository)
        repo = self._repository(repository)
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
        known = {a.name: a for a in self.store.archives.query(repo.id, checkpoints=True)}
        if archive not in known:
            raise errors.NotFound(
                f"no archive named {archive!r} in repository {repository!r} "
                "(RefreshArchives first if it was made outside borgd)"
            )
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

    def refresh_archives(self, repository: str) -> int:
        check_name("repository", repository)
        repo = self._repository(repository)
        job = self._queue(
            JobType.LIST, profile="", repository=repo.name, repository_id=repo.id, options={}
        )
        return int(job.id)
