"""Repository use cases: add (and initialise), change, remove, list; passphrases go
to the keyring, never to the store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from borgd import errors
from borgd.app.context import UseCaseContext
from borgd.core.config import local_path
from borgd.core.jobs import JobType
from borgd.core.records import Repository
from borgd.core.validation import (
    REPOSITORY_OPTIONS,
    InvalidArgument,
    Variant,
    check_name,
    check_options,
    check_url,
)
from borgd.store.catalog import Conflict

log = structlog.get_logger(__name__)


def canonical_url(url: str) -> str:
    """One spelling per repository, so two profiles on it share one lane."""
    if url.startswith("file://"):
        url = url[len("file://") :]
    if url.startswith("/"):
        url = "/" + "/".join(p for p in url.split("/") if p and p != ".")
    return url.rstrip("/") if len(url) > 1 else url


class RepositoryCases(UseCaseContext):
    async def add_repository(self, name: str, url: str, options: Mapping[str, Variant]) -> int:
        check_name("repository", name)
        url = canonical_url(check_url(url))
        opts = check_options("repository", REPOSITORY_OPTIONS, options)
        encryption = opts.get("encryption", "repokey-blake2")
        passphrase = opts.get("passphrase")
        passcommand = opts.get("passcommand") or None
        if passphrase is not None and passcommand is not None:
            raise InvalidArgument("give either passphrase or passcommand, not both")
        if passphrase == "":
            raise InvalidArgument("the passphrase must not be empty")
        if opts.get("init") and encryption != "none" and passphrase is None and not passcommand:
            raise InvalidArgument(
                f"encryption {encryption!r} needs a passphrase or a passcommand "
                "(or use encryption 'none')"
            )
        if any(r.name == name or r.url == url for r in self.store.catalog.repositories()):
            raise errors.AlreadyExists(f"a repository named {name!r} or at {url!r} exists already")
        path = local_path(url)
        if "device" not in opts and path is not None:
            # On a removable drive known to UDisks2: its filesystem's UUID (issue 13).
            opts["device"] = self.removable_device(path)
        values = {
            "name": name,
            "url": url,
            "encryption": encryption,
            "ssh_command": opts.get("ssh_command") or None,
            "lock_wait": opts.get("lock_wait"),
            "upload_ratelimit": opts.get("upload_ratelimit", 0),
            "device": opts.get("device", ""),
            "automount": opts.get("automount", False),
            "eject_after": opts.get("eject_after", False),
            "passcommand": passcommand,
            "has_passphrase": passphrase is not None,
            "created_at": self.clock(),
        }
        try:
            repo_id = self.store.catalog.add_repository(values)
        except Conflict as exc:
            raise errors.AlreadyExists(str(exc)) from exc
        if passphrase is not None:
            try:
                await self._set_secret(name, passphrase.encode())
            except Exception as exc:
                self.store.catalog.remove_repository(repo_id)
                raise errors.Unavailable(f"cannot store the passphrase: {exc}") from exc
        log.info("repository.added", repository=name, init=bool(opts.get("init")))
        self.on_repositories_changed()
        if opts.get("init"):
            self._queue(
                JobType.INIT, profile="", repository=name, repository_id=repo_id, options={}
            )
        return repo_id

    async def update_repository(self, name: str, options: Mapping[str, Variant]) -> None:
        check_name("repository", name)
        opts = check_options("repository", REPOSITORY_OPTIONS, options)
        row = self._repository(name)
        if opts.pop("init", False):
            raise InvalidArgument(
                "'init' is only for AddRepository; use StartJob(profile, 'init')"
            )
        passphrase = opts.pop("passphrase", None)
        values: dict[str, Any] = {}
        for key in ("encryption", "ssh_command", "lock_wait"):
            if key in opts:
                values[key] = opts[key] if opts[key] != "" else None
        for key in ("upload_ratelimit", "device", "automount", "eject_after"):
            if key in opts:
                values[key] = opts[key]
        if "passcommand" in opts:
            values["passcommand"] = opts["passcommand"] or None
        if passphrase is not None:
            if passphrase == "":
                await self._delete_secret(name)
                values["has_passphrase"] = False
            else:
                try:
                    await self._set_secret(name, passphrase.encode())
                except Exception as exc:
                    raise errors.Unavailable(f"cannot store the passphrase: {exc}") from exc
                values["has_passphrase"] = True
        self.store.catalog.update_repository(row.id, values)
        self.on_repositories_changed()

    async def remove_repository(self, name: str) -> None:
        check_name("repository", name)
        row = self._repository(name)
        users = [p.name for p in self.store.catalog.profiles(repository_id=row.id)]
        if users:
            raise errors.InvalidState(
                f"repository {name!r} is used by profile(s) {', '.join(users)}: remove them first"
            )
        if any(j.repository_id == row.id for j in self.store.jobs.live()):
            raise errors.InvalidState(f"repository {name!r} has queued or running jobs")
        self.store.catalog.remove_repository(row.id)
        if row.has_passphrase:
            await self._delete_secret(name)
        self.on_repositories_changed()

    async def list_repositories(self) -> list[dict[str, Any]]:
        """Each repository with what it holds: archives (from the cache), its size on
        disk (local ones; 0 = not known yet) and when each kind of job last ended well."""
        out = []
        for row in self.store.catalog.repositories():
            last = self.store.jobs.last_finished(row.id)
            size = await self.disk_usage.repository(row.url, max(last.values()))
            out.append(
                {
                    **public_repository(row),
                    "archives": self.store.archives.count(row.id),
                    "size": size,
                    "last_backup": last["backup"],
                    "last_prune": last["prune"],
                    "last_compact": last["compact"],
                    "last_check": last["check"],
                }
            )
        return out


def public_repository(row: Repository) -> dict[str, Any]:
    """A repository as clients see it: never a secret, not even the passcommand's text."""
    return {
        "id": row.id,
        "name": row.name,
        "url": row.url,
        "encryption": row.encryption,
        "ssh_command": row.ssh_command or "",
        "lock_wait": row.lock_wait or 0,
        "upload_ratelimit": row.upload_ratelimit,
        "device": row.device,
        "automount": bool(row.automount),
        "eject_after": bool(row.eject_after),
        "has_passphrase": bool(row.has_passphrase),
        "has_passcommand": bool(row.passcommand),
        "remote": local_path(row.url) is None,
    }
