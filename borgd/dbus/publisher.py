"""Turns engine events into D-Bus signals, property changes and job objects."""

from __future__ import annotations

from typing import Any

from borgd.core.records import Job
from borgd.dbus.jobs import JobObjects
from borgd.dbus.manager import ManagerInterface
from borgd.dbus.types import JOB_KEYS, PROFILE_KEYS, to_variants


class DbusPublisher:
    def __init__(self, manager: ManagerInterface, jobs: JobObjects) -> None:
        self._manager = manager
        self._jobs = jobs

    def job_added(self, job: Job) -> None:
        self._jobs.added(job)
        self._manager.JobAdded(job.id, to_variants(job.as_dict(), JOB_KEYS))

    def job_changed(self, job_id: int, changed: dict[str, Any], job: Job) -> None:
        self._manager.JobChanged(job_id, to_variants(changed, JOB_KEYS, only=changed.keys()))
        self._jobs.changed(job_id, changed, job)

    def job_removed(self, job_id: int) -> None:
        self._jobs.removed(job_id)

    def profile_changed(self, name: str, changed: dict[str, Any]) -> None:
        self._manager.ProfileChanged(name, to_variants(changed, PROFILE_KEYS, only=changed.keys()))

    def manager_changed(self, changed: dict[str, Any]) -> None:
        self._manager.emit_properties_changed(changed)
