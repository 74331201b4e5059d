"""D-Bus API: ListJobs over 100,000 stored jobs, and JobChanged fan-out to 20 clients.

    .venv/bin/python bench/bench_api.py [--quick]

The store is seeded with 100,000 finished jobs (20 profiles on 5
repositories, 150 days of history; see `_harness.seed_finished_jobs`)
before borgd starts.  One dbus-fast client then times ListJobs round trips
(send → reply parsed) for several filter shapes, one call at a time, after
5 warm-up calls: p50 and p95 of 200 calls each (``--quick``: 30).
Target: p95 <= 30 ms for the limited queries.  ListProfiles (20 profiles,
each with ``last_success`` looked up in the history) is timed the same way.

Fan-out: 20 more client connections subscribe to JobAdded and JobChanged
(AddMatch, confirmed by an awaited call); a real backup of a small tree
runs on a local unencrypted repository that borgd initialised.  Each client
must see every status of the job (queued in JobAdded, then running and
succeeded in JobChanged) and the same number of JobChanged signals.
"""

from __future__ import annotations

import time
from typing import Any

import _harness as h
import anyio

TARGET_P95 = 0.030
CLIENTS = 20
DAY_US = 86_400 * 1_000_000


def shapes(now_us: int) -> list[tuple[str, dict[str, Any], bool]]:
    """(label, filter, has a target)."""
    return [
        ("no filter, limit 50", h.asv(limit=h.u(50)), True),
        (
            "profile + status list, limit 50",
            h.asv(profile="p07", status=["failed", "warning"], limit=h.u(50)),
            True,
        ),
        (
            "type list + since 7 days, limit 50",
            h.asv(type=["prune", "compact"], since=h.t(now_us - 7 * DAY_US), limit=h.u(50)),
            True,
        ),
        ("offset 50,000, limit 50", h.asv(offset=h.u(50_000), limit=h.u(50)), True),
        (
            "status failed, since 30 days, no limit",
            h.asv(status="failed", since=h.t(now_us - 30 * DAY_US)),
            False,
        ),
    ]


async def time_list_jobs(address: str, calls: int, now_us: int, table: h.Table) -> None:
    bus = await h.connect(address)
    try:
        for label, flt, has_target in shapes(now_us):
            n = calls if has_target else max(10, calls // 10)
            rows = 0
            for _ in range(5):
                rows = len((await h.call(bus, "ListJobs", "a{sv}", [flt]))[0])
            times = []
            for _ in range(n):
                begin = time.perf_counter()
                await h.call(bus, "ListJobs", "a{sv}", [flt])
                times.append(time.perf_counter() - begin)
            p50, p95 = h.median(times), h.percentile(times, 95)
            table.add(
                f"ListJobs {label} ({rows} rows), p50 / p95",
                f"{h.ms(p50)} / {h.ms(p95)}",
                f"p95 <= {TARGET_P95 * 1000:.0f} ms" if has_target else "(no target)",
                p95 <= TARGET_P95 if has_target else None,
            )
        # ListProfiles computes last_success/overdue from the history of each profile.
        n = max(10, calls // 4)
        profiles = len((await h.call(bus, "ListProfiles"))[0])
        times = []
        for _ in range(n):
            begin = time.perf_counter()
            await h.call(bus, "ListProfiles")
            times.append(time.perf_counter() - begin)
        p50, p95 = h.median(times), h.percentile(times, 95)
        table.add(
            f"ListProfiles ({profiles} profiles, last_success of each), p50 / p95",
            f"{h.ms(p50)} / {h.ms(p95)}",
            f"p95 <= {TARGET_P95 * 1000:.0f} ms (as ListJobs)",
            p95 <= TARGET_P95,
        )
    finally:
        bus.disconnect()


class Listener:
    """One subscribed client: records JobAdded/JobChanged per job id."""

    def __init__(self) -> None:
        self.bus: Any = None
        self.added: dict[int, str] = {}
        self.changed: dict[int, list[dict[str, Any]]] = {}
        self.done = anyio.Event()
        self.watch = 0

    async def start(self, address: str) -> None:
        from dbus_fast import MessageType

        self.bus = await h.connect(address)

        def on_message(msg: Any) -> None:
            if msg.message_type != MessageType.SIGNAL or msg.interface != h.MANAGER_IFACE:
                return
            job_id, fields = msg.body[0], h.plain(msg.body[1])
            if msg.member == "JobAdded":
                self.added[job_id] = fields.get("status", "?")
            elif msg.member == "JobChanged":
                self.changed.setdefault(job_id, []).append(fields)
                if job_id == self.watch and fields.get("status") in h.FINISHED:
                    self.done.set()

        self.bus.add_message_handler(on_message)
        for member in ("JobAdded", "JobChanged"):
            await h.add_match(
                self.bus,
                f"type='signal',sender='{h.BUS_NAME}',interface='{h.MANAGER_IFACE}',"
                f"member='{member}',path='{h.MANAGER_PATH}'",
            )
        # An awaited call: the AddMatch replies above came back, so the matches are in.
        await h.call(
            self.bus,
            "GetId",
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
        )

    def statuses(self, job_id: int) -> list[str]:
        seq = [self.added.get(job_id, "(no JobAdded)")]
        seq += [c["status"] for c in self.changed.get(job_id, []) if "status" in c]
        return seq


async def fan_out(address: str, root, table: h.Table) -> None:
    control = await h.connect(address)
    listeners = [Listener() for _ in range(CLIENTS)]
    try:
        await h.init_repo(control, "fan", root / "fan-repo")
        tree = h.make_tree(root / "fan-tree", files=200, size=4000)
        await h.call(control, "AddProfile", "ssasa{sv}", ["fan", "fan", [str(tree)], h.asv()])
        for listener in listeners:
            await listener.start(address)
        job_id = (await h.call(control, "StartJob", "ssa{sv}", ["fan", "backup", h.asv()]))[0]
        for listener in listeners:
            listener.watch = job_id
            if any(c.get("status") in h.FINISHED for c in listener.changed.get(job_id, [])):
                listener.done.set()
        with anyio.fail_after(120):
            for listener in listeners:
                await listener.done.wait()
        await anyio.sleep(0.5)  # anything sent after the final status arrives too
        final = h.plain((await h.call(control, "GetJob", "t", [job_id]))[0])
    finally:
        control.disconnect()
        for listener in listeners:
            if listener.bus is not None:
                listener.bus.disconnect()

    counts = [len(li.changed.get(job_id, [])) for li in listeners]
    sequences = {" → ".join(li.statuses(job_id)) for li in listeners}
    want = "queued → running → succeeded"
    table.add(f"fan-out: backup job {job_id} ({final['status']}), {CLIENTS} clients", "", "")
    table.add(
        "  status sequence seen (distinct)",
        " | ".join(sorted(sequences)),
        want + " in all",
        sequences == {want},
    )
    table.add(
        "  JobChanged per client",
        " ".join(map(str, counts)),
        "the same for all",
        len(set(counts)) == 1 and counts[0] > 0,
    )


def body(args, cleanup: h.Cleanup) -> int:
    calls = 30 if args.quick else 200
    n_jobs = 100_000
    session = h.Session.create(cleanup, "borgd-bench-api-")
    home = session.home()
    now_us = time.time_ns() // 1000
    print(f"seeding {n_jobs:,} finished jobs …", flush=True)
    h.seed_finished_jobs(h.store_path(home), n_jobs, now_us=now_us)
    daemon = h.Borgd(session, home, cleanup)
    daemon.wait_ready()
    stored = h.count_jobs(h.store_path(home))

    table = h.Table(f"D-Bus API, {stored:,} jobs in the store, one call at a time")
    if stored < n_jobs:
        table.add("jobs left after start (retention?)", f"{stored:,}", f"{n_jobs:,}", False)
    anyio.run(time_list_jobs, session.session_bus, calls, now_us, table)
    anyio.run(fan_out, session.session_bus, session.root / "data", table)
    table.print()
    return 0


if __name__ == "__main__":
    h.main(body, h.parse_args(__doc__.splitlines()[0]))
