"""The pure core imports nothing that does I/O; adapters depend inward, never the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

CORE = ROOT / "borgd" / "core"
FORBIDDEN = {
    "anyio",
    "asyncio",
    "sqlalchemy",
    "sqlite3",
    "dbus_fast",
    "subprocess",
    "socket",
    "structlog",
    "sdnotify",
    "shutil",
    "tempfile",
    "threading",
    "time",
    "borgd.store",
    "borgd.execution",
    "borgd.scheduling",
    "borgd.system",
    "borgd.dbus",
    "borgd.cli",
    "borgd.daemon",
    "borgd.app",
}
# The one documented exception: the system's time zone is read from $TZ and /etc/localtime.
MAY_USE_OS = {CORE / "schedule" / "zones.py"}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_imports_no_io():
    offenders = {}
    for path in CORE.rglob("*.py"):
        bad = {
            n
            for n in imported(path)
            if n.split(".")[0] in FORBIDDEN
            or n in FORBIDDEN
            or any(n.startswith(f + ".") for f in FORBIDDEN)
        }
        if "os" in imported(path) and path not in MAY_USE_OS:
            bad.add("os")
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_store_and_core_never_import_dbus_or_the_daemon():
    for package in ("store", "core"):
        for path in (ROOT / "borgd" / package).rglob("*.py"):
            names = imported(path)
            assert not any(
                n.startswith(("borgd.dbus", "borgd.daemon", "dbus_fast")) for n in names
            ), path


def test_only_the_runner_starts_processes():
    runner = ROOT / "borgd" / "execution" / "runner.py"
    starters = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "borgd").rglob("*.py")
        if path != runner
        and ("subprocess" in imported(path) or "open_process" in path.read_text())
    }
    assert starters == set()


def test_use_cases_live_in_the_app_layer():
    """The scheduler only plans and fires, the executor only runs lanes and processes:
    neither imports the application layer or the D-Bus adapter, the adapter imports no
    scheduling or execution module, and the schedule use cases are not the scheduler's."""
    from borgd.scheduling.scheduler import Scheduler

    for package in ("scheduling", "execution", "store", "system"):
        for path in (ROOT / "borgd" / package).rglob("*.py"):
            names = imported(path)
            assert not any(n.startswith(("borgd.app", "borgd.dbus")) for n in names), path
    for path in (ROOT / "borgd" / "dbus").rglob("*.py"):
        names = imported(path)
        assert not any(n.startswith(("borgd.scheduling", "borgd.execution")) for n in names), path
    use_cases = ("add_schedule", "update_schedule", "remove_schedule", "pause", "upcoming")
    assert not [name for name in use_cases if hasattr(Scheduler, name)]


def test_rows_leave_the_store_typed_and_its_errors_are_the_clients():
    """The D-Bus adapter needs no store import: every error the store or the job state
    machine raises is one of `borgd.errors`, and every row the store hands out is a
    typed record whose fields are exactly the table's columns."""
    import dataclasses
    import inspect

    from borgd import errors
    from borgd.core import jobs, records
    from borgd.store import catalog, health, models
    from borgd.store import jobs as job_store

    for path in (ROOT / "borgd" / "dbus").rglob("*.py"):
        assert not any(n.startswith("borgd.store") for n in imported(path)), path
    raised = [
        cls
        for module in (catalog, health, job_store, jobs)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, Exception) and cls.__module__ == module.__name__
    ]
    assert raised, "no error classes found"
    assert all(issubclass(cls, errors.BorgdError) for cls in raised), raised
    for record, table in (
        (records.Job, models.JOBS),
        (records.Profile, models.PROFILES),
        (records.Repository, models.REPOSITORIES),
        (records.Schedule, models.SCHEDULES),
    ):
        assert [f.name for f in dataclasses.fields(record)] == [c.name for c in table.columns]
