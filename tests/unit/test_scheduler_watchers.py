"""What wakes the scheduler besides its timer, and what it tells the user.

Overdue profiles and notifications on a fake clock and timer; the network
settle time after a resume; the keyring watcher against a fake Secret
Service; the mount table watcher in a private mount namespace; the time zone
watcher against python-dbusmock's timedated.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import dbusmock
import pytest
from dbus_fast import Message
from dbus_fast.aio import MessageBus
from dbusmock import SpawnedMock
from dbusmock.testcase import BusType, PrivateDBus

from borgd.core.jobs import JobStatus
from borgd.events import Events
from borgd.scheduling.alerts import Alerts
from borgd.scheduling.conditions import Conditions, NetworkSettle
from borgd.scheduling.overdue import OverdueWatcher
from borgd.scheduling.runtime import parse_notify_kinds
from borgd.scheduling.secretwatch import SecretWatcher
from borgd.scheduling.testing import FakeClock, FakeTimer
from borgd.scheduling.tzwatch import TimezoneWatcher
from borgd.store import Store
from borgd.system.secrets import SecretStore
from tests import test_system_secrets as fake_secrets
from tests.mountns import unshare_argv
from tests.test_system_secrets import BASE, COLLECTION, FakeService
from tests.unit.test_scheduler_service import HOUR, MIN, Recorder, at, settle

pytestmark = pytest.mark.anyio

DAY = 24 * HOUR
ROOT = Path(__file__).resolve().parents[2]
TIMEDATE = "org.freedesktop.timedate1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# The fake Secret Service of the SecretStore tests, on its private session bus.
session_bus = fake_secrets.session_bus
fake_service = fake_secrets.fake_service
client = fake_secrets.client


class World:
    """A store with repository ``main`` and profile ``home`` (max_age 2 days)."""

    def __init__(self, tmp_path: Path, start: int) -> None:
        self.clock = FakeClock(start)
        self.store = Store.open(tmp_path / "borgd.sqlite3")
        self.events = Events()
        self.rec = Recorder()
        self.events.subscribe(self.rec)
        repo_id = self.store.catalog.add_repository(
            {"name": "main", "url": str(tmp_path), "created_at": start}
        )
        self.store.catalog.add_profile(
            {
                "name": "home",
                "repository_id": repo_id,
                "sources": ["/tmp"],
                "archive_template": "{now}",
                "created_at": start,
                "max_age": 2 * DAY,
            }
        )
        self.repo_id = repo_id

    def job(self, status: str, **fields: Any) -> dict[str, Any]:
        row = self.store.jobs.create(
            type="backup",
            status=status,
            trigger="schedule",
            profile="home",
            repository="main",
            repository_id=self.repo_id,
            created_at=self.clock(),
            **fields,
        )
        return row

    def finish(self, status: str, message: str = "") -> dict[str, Any]:
        row = self.job("queued")
        self.store.jobs.transition(row.id, JobStatus.RUNNING, started_at=self.clock())
        done = self.store.jobs.transition(
            row.id, JobStatus(status), finished_at=self.clock(), message=message
        )
        self.events.job_changed(row.id, {"status": status}, done)
        return done


class FakeNotifier:
    def __init__(self, enabled: frozenset[str] = frozenset({"failure", "overdue", "blocked"})):
        self.enabled = enabled
        self.sent: list[tuple[str, str, str]] = []
        self.episodes: set[str] = set()

    async def notify(self, key: str, summary: str, body: str) -> bool:
        if key.partition(":")[0] not in self.enabled or key in self.episodes:
            return False
        self.episodes.add(key)
        self.sent.append((key, summary, body))
        return True

    def clear(self, key: str) -> None:
        self.episodes.discard(key)


# -- overdue ----------------------------------------------------------------------


async def test_overdue_flips_once_at_its_instant_and_clears_on_success(tmp_path: Path) -> None:
    w = World(tmp_path, at(10))
    flips: list[tuple[str, bool]] = []
    timer = FakeTimer(w.clock)
    watcher = OverdueWatcher(
        store=w.store,
        events=w.events,
        clock=w.clock,
        timer=timer,
        on_overdue=lambda name, overdue, info: flips.append((name, overdue)),
    )
    w.events.subscribe(watcher)
    async with anyio.create_task_group() as tg:
        tg.start_soon(watcher.run)
        await settle()
        # Armed for the instant the profile becomes overdue: no polling.
        assert timer.armed == [at(10) + 2 * DAY + 1]
        w.clock.advance_to(at(10) + 2 * DAY)
        await settle()
        assert flips == [] and timer.wakeups == 0
        w.clock.advance(1e-6)
        await settle()
        assert flips == [("home", True)]
        assert w.rec.profiles == [("home", {"overdue": True, "last_success": 0})]
        assert timer.armed == []  # nothing more to wait for
        w.clock.advance(5 * DAY / 1e6)
        await settle()
        assert len(flips) == 1, "one episode, one flip"

        done = w.finish("succeeded")
        await settle()
        assert flips == [("home", True), ("home", False)]
        assert w.rec.profiles[-1] == (
            "home",
            {"overdue": False, "last_success": done.finished_at},
        )
        assert timer.armed == [done.finished_at + 2 * DAY + 1]
        tg.cancel_scope.cancel()


# -- notifications -------------------------------------------------------------------


async def test_one_failure_notification_per_episode(tmp_path: Path) -> None:
    w = World(tmp_path, at(10))
    notifier = FakeNotifier()
    alerts = Alerts(notifier=notifier, store=w.store, clock=w.clock, timer=FakeTimer(w.clock))
    w.events.subscribe(alerts)
    async with anyio.create_task_group() as tg:
        tg.start_soon(alerts.run)
        for _ in range(3):
            w.finish("failed", "repository does not exist")
            await settle()
        assert [key for key, _, _ in notifier.sent] == ["failure:home/backup"]
        _key, summary, body = notifier.sent[0]
        assert summary == "Backup of home failed"
        assert "repository does not exist" in body
        w.finish("succeeded")
        await settle()
        w.finish("failed", "again")
        await settle()
        assert [key for key, _, _ in notifier.sent] == ["failure:home/backup"] * 2
        tg.cancel_scope.cancel()


async def test_blocked_backup_notifies_once_after_the_threshold(tmp_path: Path) -> None:
    w = World(tmp_path, at(10))
    notifier = FakeNotifier()
    timer = FakeTimer(w.clock)
    alerts = Alerts(
        notifier=notifier, store=w.store, clock=w.clock, timer=timer, blocked_after=30 * MIN
    )
    w.events.subscribe(alerts)
    async with anyio.create_task_group() as tg:
        tg.start_soon(alerts.run)
        intent = w.job("scheduled", scheduled_for=at(10), schedule_id=1)
        w.store.jobs.update_fields(intent.id, blocked_by="on-battery")
        w.events.job_changed(intent.id, {"blocked_by": "on-battery"}, intent)
        await settle()
        assert timer.armed == [at(10, 30)]
        w.clock.advance_to(at(10, 29))
        await settle()
        assert notifier.sent == []
        w.clock.advance_to(at(10, 30))
        await settle()
        assert [(k, s) for k, s, _ in notifier.sent] == [
            ("blocked:home", "Backup of home is waiting")
        ]
        assert "on battery" in notifier.sent[0][2]
        assert timer.armed == []
        # Overtaken: a new held-back intent of the same profile is the same episode.
        w.store.jobs.transition(intent.id, JobStatus.SKIPPED, skip_reason="on-battery")
        nxt = w.job("scheduled", scheduled_for=at(11), schedule_id=1, blocked_by="on-battery")
        w.events.job_changed(intent.id, {"status": "skipped"}, intent)
        w.events.job_added(nxt)
        w.clock.advance_to(at(12))
        await settle()
        assert len(notifier.sent) == 1
        # It runs: the episode ends, and a later one notifies again.
        w.store.jobs.transition(nxt.id, JobStatus.QUEUED, blocked_by="")
        w.events.job_changed(nxt.id, {"status": "queued", "blocked_by": ""}, nxt)
        await settle()
        assert "blocked:home" not in notifier.episodes
        tg.cancel_scope.cancel()


async def test_switched_off_kinds_are_not_sent(tmp_path: Path) -> None:
    w = World(tmp_path, at(10))
    notifier = FakeNotifier(enabled=frozenset({"overdue"}))
    timer = FakeTimer(w.clock)
    alerts = Alerts(notifier=notifier, store=w.store, clock=w.clock, timer=timer)
    w.events.subscribe(alerts)
    async with anyio.create_task_group() as tg:
        tg.start_soon(alerts.run)
        w.finish("failed", "boom")
        intent = w.job("scheduled", scheduled_for=at(10), schedule_id=1, blocked_by="on-battery")
        w.events.job_added(intent)
        await settle()
        assert timer.armed == [], "no wakeup for a kind that is off"
        alerts.overdue("home", True, {"last_success": 0, "max_age": 2 * DAY})
        await settle()
        assert [k for k, _, _ in notifier.sent] == ["overdue:home"]
        assert notifier.sent[0][2] == "No successful backup yet (maximum age 2 d)."
        tg.cancel_scope.cancel()


def test_notify_kinds_setting() -> None:
    assert parse_notify_kinds("all") == {"failure", "overdue", "blocked"}
    assert parse_notify_kinds("none") == frozenset()
    assert parse_notify_kinds("failure, blocked") == {"failure", "blocked"}
    with pytest.raises(ValueError, match="sound"):
        parse_notify_kinds("failure,sound")


# -- network settle after resume -----------------------------------------------------


async def test_remote_repositories_wait_for_the_network_to_settle_after_resume() -> None:
    cond = Conditions()
    changes: list[bool] = []
    settle_time = NetworkSettle(cond, lambda: changes.append(cond.network_settled), settle_s=0.2)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(settle_time.run)
            settle_time.suspending()
            cond.online = False  # NetworkManager: the link is down after resume
            settle_time.resumed()
            await anyio.sleep(0.3)
            assert cond.network_settled is False and changes == []
            cond.online = True
            started = time.monotonic()
            settle_time.network_changed()
            while not changes:
                await anyio.sleep(0.01)
            assert time.monotonic() - started >= 0.19
            assert changes == [True]
            tg.cancel_scope.cancel()


# -- the keyring -------------------------------------------------------------------


async def test_locked_keyring_is_reported_and_unlocking_is_noticed(
    tmp_path: Path, fake_service: FakeService, client: MessageBus
) -> None:
    secrets = SecretStore(tmp_path, client)
    store = Store.open(tmp_path / "borgd.sqlite3")
    store.catalog.add_repository({"name": "main", "url": "/r", "has_passphrase": True})
    store.catalog.add_repository({"name": "cmd", "url": "/c", "passcommand": "pass x"})
    cond = Conditions()
    pokes: list[set[str]] = []
    with anyio.fail_after(10):
        await secrets.set("main", b"pw")
        fake_service.locked = True
        assert await secrets.is_locked("main") is True
        assert await secrets.is_locked("nothing-stored") is False
        watcher = SecretWatcher(
            conditions=cond,
            store=store,
            is_locked=secrets.is_locked,
            on_change=lambda: pokes.append(set(cond.locked_secrets)),
            bus=client,
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(watcher.run)
            while not pokes:
                await anyio.sleep(0.01)
            assert cond.locked_secrets == {"main"}

            # The keyring is unlocked; the service says so with CollectionChanged.
            fake_service.locked = False
            await fake_service.bus.send(
                Message.new_signal(
                    BASE, "org.freedesktop.Secret.Service", "CollectionChanged", "o", [COLLECTION]
                )
            )
            while len(pokes) < 2:
                await anyio.sleep(0.01)
            assert cond.locked_secrets == set()
            tg.cancel_scope.cancel()


# -- the mount table -------------------------------------------------------------------


MOUNT_CHILD = textwrap.dedent(
    """
    import os, subprocess, sys, anyio
    from borgd.scheduling.mounts import MountWatcher

    def watching_the_table():
        # The watcher opens the mount table and reads it to its end in one step, before it
        # first waits: once the fd exists, any later mount is a change it must see.
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}").endswith("/mountinfo"):
                    return True
            except OSError:
                pass
        return False

    async def main():
        seen = anyio.Event()
        watcher = MountWatcher(seen.set)
        async with anyio.create_task_group() as tg:
            tg.start_soon(watcher.run)
            with anyio.fail_after(10):
                while not watching_the_table():
                    await anyio.sleep(0.01)
            subprocess.run(["mount", "-t", "tmpfs", "none", sys.argv[1]], check=True)
            with anyio.fail_after(10):
                await seen.wait()
            tg.cancel_scope.cancel()
        print("noticed", watcher.changes)

    anyio.run(main)
    """
)


def test_mount_watcher_notices_a_mount(tmp_path: Path) -> None:
    """In a private mount namespace (the host's mount table is untouched, and no host
    mount made meanwhile propagates in to be counted), a tmpfs mount is one change."""
    (tmp_path / "disk").mkdir()
    done = subprocess.run(
        [*unshare_argv(), sys.executable, "-c", MOUNT_CHILD, str(tmp_path / "disk")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "noticed 1", done.stdout


# -- the time zone ------------------------------------------------------------------


@pytest.fixture
def system_bus() -> Iterator[PrivateDBus]:
    saved = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    bus = PrivateDBus(BusType.SYSTEM)
    bus.start()
    try:
        yield bus
    finally:
        bus.stop()
        if saved is None:
            os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = saved


async def test_timezone_watcher_follows_timedated_without_starting_it(
    system_bus: PrivateDBus,
) -> None:
    changes: list[int] = []
    watcher = TimezoneWatcher(lambda: changes.append(1), system_bus.address)
    mock: SpawnedMock | None = None
    try:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(watcher.run)
                await anyio.sleep(0.3)  # timedated is not running: nothing to do
                mock = await anyio.to_thread.run_sync(
                    lambda: SpawnedMock.spawn_with_template(
                        "timedated", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                    )
                )
                # When the watcher has subscribed is not observable from here: set zones
                # until one change arrives (each SetTimezone emits PropertiesChanged).
                zones = ("America/New_York", "Europe/Berlin")
                sets = 0
                while not changes:
                    zone = zones[sets % 2]
                    await anyio.to_thread.run_sync(
                        lambda zone=zone: mock.obj.SetTimezone(
                            zone, False, dbus_interface=TIMEDATE
                        )
                    )
                    sets += 1
                    with anyio.move_on_after(0.5):
                        while not changes:
                            await anyio.sleep(0.02)
                assert 1 <= watcher.changes <= sets
                tg.cancel_scope.cancel()
        # It only listened: no call of its own reached timedated (a call would start it).
        calls = [c[1] for c in mock.obj.GetCalls(dbus_interface=dbusmock.MOCK_IFACE)]
        assert set(calls) == {"SetTimezone"}, calls
    finally:
        if mock is not None:
            mock.terminate()
