"""Archives over D-Bus: ListArchives over 1,000 archives, and pages of a 100,000-entry listing.

    .venv/bin/python bench/bench_archives.py [--quick]

ListArchives: the archive cache of repository ``r0`` is seeded with 1,000
archives (2 profiles) before borgd starts, as a `list` job would leave it;
one dbus-fast client times round trips, one call at a time after 5 warm-up
calls: p50 and p95 of 200 calls (``--quick``: 30), whole list and ``limit
50``.  Target: p95 <= 30 ms.

ListArchiveContents: one archive of the cache gets a listing file of
100,000 entries (1,000 folders of 100 files; `execution.listings`), as the
first call of a real archive leaves it; timed are the second page of the top
folder's recursive listing (offset 1,000, limit 1,000), a page deep in it
(offset 90,000), and one folder's entries.  Target: the second page <= 50 ms.
Reading the archive from borg the first time is borg's own cost, not timed.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import _harness as h
import anyio

TARGET_LIST_P95 = 0.030
TARGET_PAGE = 0.050
ARCHIVES = 1000
FOLDERS, FILES = 1000, 100


def seed(home: Any, python: str) -> str:
    """The cache rows and one listing file, written with the installed borgd's own code."""
    script = f"""
import sys
from pathlib import Path
from borgd.core.archives import ArchiveEntry, ArchiveInfo
from borgd.execution.listings import write_listing
from borgd.store import Store

store = Store.open(Path({str(h.store_path(home))!r}))
repo = store.catalog.add_repository({{"name": "r0", "url": "/nonexistent/r0"}})
rows = [
    ArchiveInfo(
        name=f"p{{i % 2}}-{{i:05d}}", id=f"{{i:064x}}", start=1_700_000_000_000_000 + i * 10**9,
        end=1_700_000_000_000_000 + i * 10**9 + 10**7, nfiles=1000 + i, original_size=10**9 + i,
        compressed_size=5 * 10**8, deduplicated_size=10**6 + i, comment="", checkpoint=False,
    )
    for i in range({ARCHIVES})
]
store.archives.replace_set(repo, rows, {{r.name: r.name[:2] for r in rows}})
store.close()
entries = (
    ArchiveEntry(path=f"home/u/d{{d:04d}}/f{{f:03d}}.txt", type="-", size=d * f, mtime=0,
                 mode=0o100644, user="u", group="u", target="")
    for d in range({FOLDERS}) for f in range({FILES})
)
folder = Path({str(home / ".cache" / "borgd" / "listings")!r})
n = write_listing(folder / f"{{{ARCHIVES - 1}:064x}}.sqlite", entries)
print(n)
"""
    import subprocess

    out = subprocess.run([python, "-c", script], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def start_floor(session: Any, home: Any, python: str, cleanup: h.Cleanup) -> str:
    """`reply_floor.py` on the session bus; returns its bus name."""
    import subprocess
    from pathlib import Path

    proc = subprocess.Popen(
        [python, str(Path(__file__).with_name("reply_floor.py"))],
        env=session.env(home),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    cleanup.callback(h.stop, proc)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("reply_floor.py did not start")
    return "org.borgd1.BenchFloor"


async def time_calls(
    address: str,
    label: str,
    member: str,
    signature: str,
    args: list[Any],
    calls: int,
    destination: str = h.BUS_NAME,
) -> tuple[str, float, float, int]:
    bus = await h.connect(address)
    try:
        for _ in range(5):
            await h.call(bus, member, signature, args, destination=destination)
        times = []
        rows = 0
        for _ in range(calls):
            began = time.perf_counter()
            reply = await h.call(bus, member, signature, args, destination=destination)
            rows = len(reply[0])
            times.append(time.perf_counter() - began)
        return label, h.median(times), h.percentile(times, 95), rows
    finally:
        bus.disconnect()


def body(args, cleanup: h.Cleanup) -> int:
    calls = 30 if args.quick else 200
    session = h.Session.create(cleanup, "borgd-bench-archives-")
    installed = h.install_borgd(cleanup)
    home = session.home()
    print(f"seeding {ARCHIVES:,} archives and a {FOLDERS * FILES:,}-entry listing …", flush=True)
    first = h.Borgd(session, home, cleanup, installed=installed, tag="borgd-create")
    first.wait_ready()  # creates the store with this borgd's schema
    first.stop()
    entries = seed(home, installed.python)
    daemon = h.Borgd(session, home, cleanup, installed=installed)
    daemon.wait_ready()
    newest = f"p{(ARCHIVES - 1) % 2}-{ARCHIVES - 1:05d}"

    floor = start_floor(session, home, installed.python, cleanup)
    table = h.Table(
        f"Archives over D-Bus: {ARCHIVES:,} cached archives, a listing of {entries} entries; "
        f"{installed.describe()}; floor: a bare dbus-fast service sending the same rows "
        "built once (bench/reply_floor.py)"
    )
    address = session.session_bus
    top = ["r0", newest, ""]
    for label, member, sig, call_args, target in (
        ("ListArchives, all 1,000", "ListArchives", "sa{sv}", ["r0", h.asv()], TARGET_LIST_P95),
        (
            "ListArchives, limit 50",
            "ListArchives",
            "sa{sv}",
            ["r0", h.asv(limit=h.u(50))],
            TARGET_LIST_P95,
        ),
        (
            "ListArchiveContents, recursive, 2nd page of 1,000",
            "ListArchiveContents",
            "sssa{sv}",
            [*top, h.asv(recursive=True, offset=h.u(1000), limit=h.u(1000))],
            TARGET_PAGE,
        ),
        (
            "ListArchiveContents, recursive, offset 90,000",
            "ListArchiveContents",
            "sssa{sv}",
            [*top, h.asv(recursive=True, offset=h.u(90_000), limit=h.u(1000))],
            None,
        ),
        (
            "ListArchiveContents, one folder (100 entries)",
            "ListArchiveContents",
            "sssa{sv}",
            ["r0", newest, "home/u/d0500", h.asv(limit=h.u(100))],
            None,
        ),
    ):
        name, p50, p95, rows = anyio.run(time_calls, address, label, member, sig, call_args, calls)
        _, f50, f95, frows = anyio.run(
            functools.partial(time_calls, destination=floor),
            address,
            label,
            member,
            sig,
            call_args,
            calls,
        )
        assert frows == rows, (label, frows, rows)  # the same work on both sides
        table.add(
            f"{name}: p50 / p95 ({rows} rows)",
            f"{h.ms(p50)} / {h.ms(p95)}",
            f"p95 <= {h.ms(target)}" if target else "",
            None if target is None else p95 <= target,
        )
        table.add(
            "  floor: p50 / p95; borgd's p95 / floor's",
            f"{h.ms(f50)} / {h.ms(f95)}; {p95 / f95:.2f}x",
            "",
            None,
        )
    table.print()
    return 0


if __name__ == "__main__":
    h.main(body, h.parse_args(__doc__.splitlines()[0]))
