"""Repositories, profiles and schedules: the user's configuration."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from borgd import errors
from borgd.core.config import ProfileConfig, RepoConfig
from borgd.core.records import Profile, Repository, Schedule
from borgd.store import models

REPOS: Table = models.REPOSITORIES
PROFILES: Table = models.PROFILES
SCHEDULES: Table = models.SCHEDULES
SETTINGS: Table = models.SETTINGS

Row = dict[str, Any]


class Conflict(errors.AlreadyExists):
    """A name or URL already exists, or a row is still referenced."""


class NotFound(errors.NotFound):
    """No row by that name or id; the message says which."""


class Catalog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _insert(self, table: Any, what: str, values: Row) -> int:
        try:
            with self._engine.begin() as conn:
                key = conn.execute(insert(table).values(**values)).inserted_primary_key
                assert key is not None
                return int(key[0])
        except IntegrityError as exc:
            raise Conflict(f"{what} already exists") from exc

    def _one(self, table: Any, what: str, **where: Any) -> Row:
        stmt = select(table)
        for key, value in where.items():
            stmt = stmt.where(table.c[key] == value)
        with self._engine.connect() as conn:
            row = conn.execute(stmt).mappings().one_or_none()
        if row is None:
            raise NotFound(what)
        return dict(row)

    def _all(self, table: Any, **where: Any) -> list[Row]:
        stmt = select(table).order_by(table.c.id)
        for key, value in where.items():
            stmt = stmt.where(table.c[key] == value)
        with self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def _update(self, table: Any, what: str, row_id: int, values: Row) -> None:
        if not values:
            return
        try:
            with self._engine.begin() as conn:
                conn.execute(update(table).where(table.c.id == row_id).values(**values))
        except IntegrityError as exc:
            raise Conflict(f"{what}: {exc.orig}") from exc

    def _delete(self, table: Any, what: str, row_id: int) -> None:
        try:
            with self._engine.begin() as conn:
                conn.execute(delete(table).where(table.c.id == row_id))
        except IntegrityError as exc:
            raise Conflict(f"{what} is still in use") from exc

    # -- repositories ---------------------------------------------------------

    def add_repository(self, values: Row) -> int:
        return self._insert(REPOS, f"a repository named {values['name']!r} or at that URL", values)

    def repository(self, name: str) -> Repository:
        return Repository.from_row(self._one(REPOS, f"no repository named {name!r}", name=name))

    def repository_by_id(self, repo_id: int) -> Repository:
        return Repository.from_row(
            self._one(REPOS, f"no repository with id {repo_id}", id=repo_id)
        )

    def repositories(self) -> list[Repository]:
        return [Repository.from_row(r) for r in self._all(REPOS)]

    def update_repository(self, repo_id: int, values: Row) -> None:
        self._update(REPOS, "repository", repo_id, values)

    def remove_repository(self, repo_id: int) -> None:
        self._delete(REPOS, "the repository (a profile uses it)", repo_id)

    # -- profiles -------------------------------------------------------------

    def add_profile(self, values: Row) -> int:
        return self._insert(PROFILES, f"a profile named {values['name']!r}", values)

    def profile(self, name: str) -> Profile:
        return Profile.from_row(self._one(PROFILES, f"no profile named {name!r}", name=name))

    def profile_by_id(self, profile_id: int) -> Profile:
        return Profile.from_row(
            self._one(PROFILES, f"no profile with id {profile_id}", id=profile_id)
        )

    def profiles(self, **where: Any) -> list[Profile]:
        return [Profile.from_row(r) for r in self._all(PROFILES, **where)]

    def update_profile(self, profile_id: int, values: Row) -> None:
        self._update(PROFILES, "profile", profile_id, values)

    def remove_profile(self, profile_id: int) -> None:
        self._delete(PROFILES, "the profile", profile_id)

    def profile_config(self, name: str) -> tuple[ProfileConfig, RepoConfig, Profile, Repository]:
        profile = self.profile(name)
        repo = self.repository_by_id(profile.repository_id)
        return profile.config(repo.name), repo.config(), profile, repo

    # -- schedules ------------------------------------------------------------

    def add_schedule(self, values: Row) -> int:
        return self._insert(SCHEDULES, "that schedule", values)

    def schedule(self, schedule_id: int) -> Schedule:
        return Schedule.from_row(
            self._one(SCHEDULES, f"no schedule with id {schedule_id}", id=schedule_id)
        )

    def schedules(self, **where: Any) -> list[Schedule]:
        return [Schedule.from_row(r) for r in self._all(SCHEDULES, **where)]

    def update_schedule(self, schedule_id: int, values: Row) -> None:
        self._update(SCHEDULES, "schedule", schedule_id, values)

    def remove_schedule(self, schedule_id: int) -> None:
        self._delete(SCHEDULES, "the schedule", schedule_id)

    # -- settings -------------------------------------------------------------

    def setting(self, key: str, default: str = "") -> str:
        with self._engine.connect() as conn:
            value = conn.execute(
                select(SETTINGS.c.value).where(SETTINGS.c.key == key)
            ).scalar_one_or_none()
        return default if value is None else str(value)

    def set_setting(self, key: str, value: str) -> None:
        self.set_settings({key: value})

    def set_settings(self, values: dict[str, str]) -> None:
        """Several settings in one transaction (the pause and its end go together)."""
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        with self._engine.begin() as conn:
            for key, value in values.items():
                stmt = sqlite_insert(SETTINGS).values(key=key, value=value)
                stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value})
                conn.execute(stmt)
