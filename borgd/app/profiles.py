"""Profile use cases: what to back up, where, how long to keep it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from borgd import errors
from borgd.app.context import UseCaseContext
from borgd.core import borg_argv
from borgd.core.overdue import is_overdue
from borgd.core.records import Profile
from borgd.core.validation import (
    PROFILE_OPTIONS,
    PROFILE_UPDATE_OPTIONS,
    InvalidArgument,
    Variant,
    check_absolute_path,
    check_name,
    check_options,
)
from borgd.store.catalog import Conflict

DEFAULT_TEMPLATE = "{profile}-{now:%Y-%m-%dT%H:%M:%S}"
MAX_SOURCES = 1000


class ProfileCases(UseCaseContext):
    def _check_sources(self, sources: object) -> list[str]:
        if not isinstance(sources, list) or not sources:
            raise InvalidArgument("a profile needs at least one source path")
        if len(sources) > MAX_SOURCES:
            raise InvalidArgument(f"a profile takes at most {MAX_SOURCES} sources")
        return [check_absolute_path("source path", s) for s in sources]

    def _profile_values(self, opts: dict[str, Any], name: str) -> dict[str, Any]:
        values = dict(opts)
        if "archive_template" in values:
            template = values["archive_template"] or DEFAULT_TEMPLATE
            try:
                borg_argv.validate_archive_template(template)
            except ValueError as exc:
                raise InvalidArgument(f"archive_template: {exc}") from exc
            values["archive_template"] = template
        for key in ("compression", "keep_within", "pre_command", "post_command"):
            if key in values and values[key] == "":
                values[key] = None
        return values

    def add_profile(
        self, name: str, repository: str, sources: list[str], options: Mapping[str, Variant]
    ) -> int:
        check_name("profile", name)
        check_name("repository", repository)
        paths = self._check_sources(sources)
        opts = check_options("profile", PROFILE_OPTIONS, options)
        opts.setdefault("archive_template", DEFAULT_TEMPLATE)
        values = self._profile_values(opts, name)
        repo = self._repository(repository)
        values.update(name=name, repository_id=repo.id, sources=paths, created_at=self.clock())
        values.setdefault("excludes", [])
        values.setdefault("blackout", [])
        try:
            profile_id = self.store.catalog.add_profile(values)
        except Conflict as exc:
            raise errors.AlreadyExists(f"a profile named {name!r} exists already") from exc
        self.on_profiles_changed()
        return profile_id

    def update_profile(self, name: str, options: Mapping[str, Variant]) -> None:
        check_name("profile", name)
        opts = check_options("profile", PROFILE_UPDATE_OPTIONS, options)
        row = self._profile(name)
        if "sources" in opts:
            opts["sources"] = self._check_sources(opts["sources"])
        if "repository" in opts:
            opts["repository_id"] = self._repository(
                check_name("repository", opts.pop("repository"))
            ).id
        values = self._profile_values(opts, name)
        self.store.catalog.update_profile(row.id, values)
        changed = {k: v for k, v in values.items() if k != "repository_id"}
        self.events.profile_changed(name, changed)
        self.on_profiles_changed()

    def remove_profile(self, name: str) -> None:
        check_name("profile", name)
        row = self._profile(name)
        if any(
            j.profile == name and j.status in ("queued", "running") for j in self.store.jobs.live()
        ):
            raise errors.InvalidState(f"profile {name!r} has queued or running jobs; cancel them")
        self.store.catalog.remove_profile(row.id)
        self.on_profiles_changed()

    def list_profiles(self) -> list[dict[str, Any]]:
        repos = {r.id: r.name for r in self.store.catalog.repositories()}
        last = self.store.jobs.last_success_times()
        return [
            self.public_profile(p, repos[p.repository_id], last.get(p.name, 0))
            for p in self.store.catalog.profiles()
        ]

    def public_profile(self, row: Profile, repository: str, last_success: int) -> dict[str, Any]:
        """The profile as clients see it; `last_success`: when its newest successful
        backup finished (0 = never)."""
        overdue = is_overdue(int(row.max_age), last_success, row.created_at, self.clock())
        out = {
            k: getattr(row, k)
            for k in (
                "id",
                "name",
                "sources",
                "excludes",
                "compression",
                "archive_template",
                "keep_within",
                "keep_hourly",
                "keep_daily",
                "keep_weekly",
                "keep_monthly",
                "keep_yearly",
                "prune_after",
                "compact_after",
                "check_every",
                "pre_command",
                "post_command",
                "enabled",
                "max_age",
                "inhibit_sleep",
                "one_file_system",
                "nice",
                "ionice",
                "blackout",
            )
        }
        out.update(repository=repository, last_success=last_success, overdue=overdue)
        return {k: ("" if v is None else v) for k, v in out.items()}
