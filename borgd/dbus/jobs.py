"""Live jobs as objects `/org/borgd1/job/<id>` with `org.borgd1.Job`, as UDisks2 does.

Scheduled, queued and running jobs are exported; a job that reaches a
terminal state is unexported.  InterfacesAdded/Removed go out from the
manager path (see `bus.py`), so GLib's ObjectManager client sees them.
"""

from collections.abc import Callable
from typing import Annotated, Any

from dbus_fast import Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusSignature
from dbus_fast.constants import PropertyAccess
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

from borgd.core.jobs import LIVE, JobStatus
from borgd.core.records import Job
from borgd.dbus.errors import guarded
from borgd.dbus.types import JOB_KEYS, to_variants

NONE = Annotated[None, DBusSignature("")]
JOB_INTERFACE = "org.borgd1.Job"
JOB_PATH_PREFIX = "/org/borgd1/job/"


def job_path(job_id: int) -> str:
    return f"{JOB_PATH_PREFIX}{job_id}"


class JobObject(ServiceInterface):
    """Properties are the job dictionary's keys; generated below from JOB_KEYS."""

    def __init__(self, job: Job, cancel: Callable[[int], None]) -> None:
        super().__init__(JOB_INTERFACE)
        self._job = job.as_dict()
        self._cancel = cancel

    def update(self, changed: dict[str, Any]) -> None:
        self._job.update(changed)
        variants = to_variants(changed, JOB_KEYS, only=changed.keys())
        if variants:
            self.emit_properties_changed({k: v.value for k, v in variants.items()})

    @dbus_method()
    @guarded
    def Cancel(self) -> NONE:
        self._cancel(int(self._job["id"]))


def _make_property(key: str, signature: str) -> Any:
    def getter(self: JobObject) -> Any:
        return to_variants({key: self._job.get(key)}, JOB_KEYS)[key].value

    getter.__name__ = f"_prop_{key}"
    getter.__qualname__ = f"JobObject._prop_{key}"
    getter.__annotations__ = {"return": signature}
    return dbus_property(access=PropertyAccess.READ, name=key)(getter)


for _key, _sig in JOB_KEYS.items():
    setattr(JobObject, f"_prop_{_key}", _make_property(_key, _sig))


class JobObjects:
    """Keeps the exported job objects in step with the engine's events."""

    def __init__(self, bus: MessageBus, cancel: Callable[[int], None]) -> None:
        self._bus = bus
        self._cancel = cancel
        self._objects: dict[int, JobObject] = {}

    def export_live(self, jobs: list[Job]) -> None:
        for job in jobs:
            self.added(job)

    def added(self, job: Job) -> None:
        job_id = job.id
        if not job.live or job_id in self._objects:
            return
        obj = JobObject(job, self._cancel)
        self._objects[job_id] = obj
        self._bus.export(job_path(job_id), obj)

    def changed(self, job_id: int, changed: dict[str, Any], job: Job) -> None:
        obj = self._objects.get(job_id)
        if obj is None:
            self.added(job)
            return
        obj.update(changed)
        status = changed.get("status")
        if status is not None and JobStatus(status) not in LIVE:
            self.removed(job_id)

    def removed(self, job_id: int) -> None:
        if self._objects.pop(job_id, None) is not None:
            self._bus.unexport(job_path(job_id), JOB_INTERFACE)

    def __len__(self) -> int:
        return len(self._objects)


__all__ = ["JOB_INTERFACE", "JobObject", "JobObjects", "Variant", "job_path"]
