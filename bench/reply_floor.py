"""The least a dbus-fast service spends to send borgd's archive replies.

    python bench/reply_floor.py

Owns ``org.borgd1.BenchFloor`` on the session bus and answers ListArchives
and ListArchiveContents with rows built once at start-up: 1,000 archives of
13 keys, 1,000 entries of 8 keys, the shapes and sizes borgd sends, and
nothing of borgd's code.  A call then costs only dbus-fast's marshalling,
the bus, and the client's unmarshalling: `bench_archives.py` times borgd's
answers beside these.  Prints "ready" once the name is owned.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from dbus_fast import Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusSignature
from dbus_fast.service import ServiceInterface, dbus_method

BUS_NAME = "org.borgd1.BenchFloor"
S = Annotated[str, DBusSignature("s")]
ASV = Annotated[dict[str, Variant], DBusSignature("a{sv}")]
AASV = Annotated[list[dict[str, Variant]], DBusSignature("aa{sv}")]


def archive(i: int) -> dict[str, Variant]:
    t = 1_700_000_000_000_000 + i * 10**9
    return {
        "name": Variant("s", f"p{i % 2}-{i:05d}"),
        "id": Variant("s", f"{i:064x}"),
        "repository": Variant("s", "r0"),
        "profile": Variant("s", f"p{i % 2}"),
        "start": Variant("t", t),
        "end": Variant("t", t + 10**7),
        "nfiles": Variant("t", 1000 + i),
        "original_size": Variant("t", 10**9 + i),
        "compressed_size": Variant("t", 5 * 10**8),
        "deduplicated_size": Variant("t", 10**6 + i),
        "comment": Variant("s", ""),
        "job_id": Variant("t", 0),
        "checkpoint": Variant("b", False),
    }


def entry(i: int) -> dict[str, Variant]:
    d, f = divmod(i, 100)
    return {
        "path": Variant("s", f"home/u/d{d:04d}/f{f:03d}.txt"),
        "type": Variant("s", "-"),
        "size": Variant("t", d * f),
        "mtime": Variant("t", 0),
        "mode": Variant("u", 0o100644),
        "user": Variant("s", "u"),
        "group": Variant("s", "u"),
        "target": Variant("s", ""),
    }


ARCHIVES = [archive(i) for i in range(1000)]
ENTRIES = [entry(i) for i in range(1000)]


def limited(rows: list[dict[str, Variant]], options: dict[str, Variant]) -> list[Any]:
    limit = options["limit"].value if "limit" in options else len(rows)
    return rows[:limit]


class Floor(ServiceInterface):
    def __init__(self) -> None:
        super().__init__("org.borgd1.Manager")

    @dbus_method()
    def ListArchives(self, repository: S, filter: ASV) -> AASV:
        return limited(ARCHIVES, filter)

    @dbus_method()
    def ListArchiveContents(self, repository: S, archive: S, path: S, options: ASV) -> AASV:
        return limited(ENTRIES, options)


async def main() -> None:
    bus = await MessageBus().connect()
    bus.export("/org/borgd1", Floor())
    await bus.request_name(BUS_NAME)
    print("ready", flush=True)
    await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main)
