"""The least any daemon built on borgd's libraries holds while idle.

    python bench/idle_skeleton.py STORE_FILE [SETTLE_S]

The floor (``import sqlalchemy, dbus_fast.aio, anyio, structlog, sdnotify``)
counts imports only.  A daemon also opens its SQLite store (libsqlite3 and a
connection) and owns a name on the session bus with an object exported, from
an event loop with a worker thread for the store.  This does exactly that and
nothing of borgd's, waits SETTLE_S seconds (default 3), and prints its VmRSS
in MiB: `bench_idle.py` sets borgd's idle RSS beside it.
"""

from __future__ import annotations

import sys
from typing import Annotated

import anyio
import anyio.to_thread
import sdnotify  # noqa: F401  (the floor's imports, all of them)
import structlog  # noqa: F401
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusSignature
from dbus_fast.service import ServiceInterface, dbus_method
from sqlalchemy import create_engine, text

BUS_NAME = "org.borgd1.BenchSkeleton"


class Skeleton(ServiceInterface):
    def __init__(self) -> None:
        super().__init__(BUS_NAME)

    @dbus_method()
    def Ping(self) -> Annotated[str, DBusSignature("s")]:
        return "pong"


def vm_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def main(store: str, settle: float) -> None:
    engine = create_engine(f"sqlite:///{store}")

    def use_store() -> int:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY, v TEXT)"))
            conn.execute(text("INSERT INTO jobs (v) VALUES ('x')"))
            return int(conn.execute(text("SELECT count(*) FROM jobs")).scalar_one())

    await anyio.to_thread.run_sync(use_store)
    bus = await MessageBus().connect()
    bus.export("/org/borgd1/BenchSkeleton", Skeleton())
    await bus.request_name(BUS_NAME)
    await anyio.sleep(settle)
    print(f"{vm_rss_mib():.2f}")
    bus.disconnect()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 3.0)
