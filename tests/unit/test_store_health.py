"""StoreHealth: one episode per outage, told on the event loop, ended by a probe."""

from __future__ import annotations

import threading

import anyio
import pytest

from borgd.store.health import StoreHealth

pytestmark = pytest.mark.anyio


async def test_a_failure_seen_in_a_worker_thread_is_told_on_the_loop() -> None:
    health = StoreHealth()  # built where the loop runs, as the daemon does
    seen: list[tuple[str, int]] = []
    health.subscribe(lambda state: seen.append((state, threading.get_ident())))
    await anyio.to_thread.run_sync(health.failed, "database is locked")
    assert seen == [("unavailable: database is locked", threading.get_ident())]
    health.failed("database is locked")  # the same outage: told once
    assert len(seen) == 1 and health.outages == 1


async def test_the_probe_ends_the_outage_and_wakes_the_waiters() -> None:
    health = StoreHealth()
    attempts: list[int] = []

    def probe() -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise OSError("still locked")

    health.failed("database is locked")
    async with anyio.create_task_group() as tg:
        tg.start_soon(health.run, probe)
        # 0.5 s, then 1 s between attempts: the third succeeds; 10 s is a hang guard.
        with anyio.fail_after(10):
            await health.wait_recovered()
        tg.cancel_scope.cancel()
    assert health.ok and len(attempts) == 3
