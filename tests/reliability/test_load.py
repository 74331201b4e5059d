"""Twenty D-Bus clients at once: StartJob, CancelJob, RequeueJob and ListJobs at random.

Each client is its own dbus-fast connection in this process.  Three
repositories, four profiles (two share a repository, one chains prune and
compact), tiny trees.  While the load runs, a sampler asks for the running
jobs every few tens of milliseconds: never two on one repository.  After
it: every job reaches a terminal state, no two jobs' started/finished
intervals overlap on one repository, and the only errors the clients saw
are ``InvalidState`` and ``NotFound`` (a job that moved on or went away
meanwhile, which makes the request moot).
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from typing import Any

import anyio
import pytest
from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from tests.conftest import BusctlError, make_tree
from tests.reliability.helpers import (
    FINISHED,
    add_profile,
    all_jobs,
    chain_violations,
    init_repo,
    internal_errors,
    log_on_failure,
    overlapping_runs,
    status_counts,
)

CLIENTS = 20
MOOT = frozenset({"org.borgd1.Error.InvalidState", "org.borgd1.Error.NotFound"})
PROFILES = {"p1": "r1", "p2": "r1", "p3": "r2", "p4": "r3"}
TYPES = ("backup", "backup", "backup", "check", "compact")
LIVE_CAP = 12  # beyond this many queued or running jobs, clients cancel instead of adding
CALL_TIMEOUT = 15.0


class CallError(Exception):
    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{name}: {text}")
        self.name = name


async def call(bus: MessageBus, member: str, signature: str = "", body: list[Any] | None = None):
    msg = Message(
        destination="org.borgd1",
        path="/org/borgd1",
        interface="org.borgd1.Manager",
        member=member,
        signature=signature,
        body=body or [],
    )
    with anyio.fail_after(CALL_TIMEOUT):
        reply = await bus.call(msg)
    assert reply is not None
    if reply.message_type == MessageType.ERROR:
        raise CallError(reply.error_name or "", str(reply.body[0] if reply.body else ""))
    return reply.body[0] if reply.body else None


def unwrap(rows: list[dict[str, Variant]]) -> list[dict[str, Any]]:
    return [{k: v.value for k, v in row.items()} for row in rows]


class Shared:
    """What the clients know between them: job ids seen, and how busy the daemon is."""

    def __init__(self) -> None:
        self.ids: set[int] = set()
        self.live: set[int] = set()
        self.finished: set[int] = set()
        self.calls: Counter[str] = Counter()
        self.moot: Counter[str] = Counter()
        self.unexpected: list[str] = []
        self.samples = 0
        self.doubles: list[list[dict[str, Any]]] = []

    def saw(self, jobs: list[dict[str, Any]]) -> None:
        for j in jobs:
            self.ids.add(j["id"])
            if j["status"] in ("queued", "running"):
                self.live.add(j["id"])
                self.finished.discard(j["id"])
            elif j["status"] in FINISHED:
                self.finished.add(j["id"])
                self.live.discard(j["id"])


async def client(address: str, rng: random.Random, shared: Shared, deadline: float) -> None:
    bus = await MessageBus(bus_address=address).connect()
    try:
        while time.monotonic() < deadline:
            op = rng.choices(
                ("ListJobs", "StartJob", "CancelJob", "RequeueJob"), weights=(40, 25, 20, 15)
            )[0]
            if op in ("StartJob", "RequeueJob") and len(shared.live) >= LIVE_CAP:
                op = "CancelJob"
            try:
                if op == "ListJobs":
                    flt = rng.choice(
                        (
                            {},
                            {"status": Variant("as", ["queued", "running"])},
                            {"profile": Variant("s", rng.choice(list(PROFILES)))},
                            {"limit": Variant("u", 20)},
                        )
                    )
                    shared.saw(unwrap(await call(bus, "ListJobs", "a{sv}", [flt])))
                elif op == "StartJob":
                    profile = rng.choice(list(PROFILES))
                    job_type = rng.choice(TYPES + (("prune",) if profile == "p1" else ()))
                    new = await call(bus, "StartJob", "ssa{sv}", [profile, job_type, {}])
                    shared.ids.add(new)
                    shared.live.add(new)
                elif op == "CancelJob" and shared.ids:
                    pool = shared.live if shared.live and rng.random() < 0.7 else shared.ids
                    await call(bus, "CancelJob", "t", [rng.choice(sorted(pool))])
                elif op == "RequeueJob" and shared.ids:
                    pool = (
                        shared.finished if shared.finished and rng.random() < 0.7 else shared.ids
                    )
                    new = await call(bus, "RequeueJob", "t", [rng.choice(sorted(pool))])
                    shared.ids.add(new)
                    shared.live.add(new)
                shared.calls[op] += 1
            except CallError as exc:
                shared.calls[op] += 1
                if exc.name in MOOT:
                    shared.moot[f"{op}:{exc.name.rsplit('.', 1)[1]}"] += 1
                else:
                    shared.unexpected.append(f"{op}: {exc}")
            except TimeoutError:
                shared.unexpected.append(f"{op}: no reply within {CALL_TIMEOUT} s")
            await anyio.sleep(rng.uniform(0.01, 0.08))
    finally:
        bus.disconnect()


async def sampler(address: str, shared: Shared, deadline: float) -> None:
    """Ask for the running jobs every few tens of ms: at most one per repository."""
    bus = await MessageBus(bus_address=address).connect()
    try:
        while time.monotonic() < deadline:
            try:
                running = unwrap(
                    await call(bus, "ListJobs", "a{sv}", [{"status": Variant("s", "running")}])
                )
                live = unwrap(
                    await call(
                        bus,
                        "ListJobs",
                        "a{sv}",
                        [{"status": Variant("as", ["queued", "running"])}],
                    )
                )
            except (CallError, TimeoutError) as exc:
                shared.unexpected.append(f"sampler: {exc!r}")
                return
            shared.samples += 1
            per_repo = defaultdict(list)
            for j in running:
                per_repo[j["repository"]].append(j)
            shared.doubles += [jobs for jobs in per_repo.values() if len(jobs) > 1]
            shared.live = {j["id"] for j in live}
            await anyio.sleep(0.03)
    finally:
        bus.disconnect()


@pytest.mark.parametrize(
    "seconds",
    [
        pytest.param(10, id="fast"),
        pytest.param(60, id="long", marks=[pytest.mark.slow, pytest.mark.timeout(900)]),
    ],
)
@pytest.mark.anyio
async def test_twenty_clients_at_random(
    seconds, seed, report, start_borgd, busctl, session_env, tmp_path
):
    began = time.monotonic()
    daemon = start_borgd("--max-parallel", "3")
    for repo in sorted(set(PROFILES.values())):
        init_repo(busctl, repo, tmp_path / repo)
    for i, (profile, repo) in enumerate(PROFILES.items()):
        options: dict[str, Any] = {"keep_within": "1d"}
        if profile == "p1":
            options.update(prune_after=True, compact_after=True)
        add_profile(busctl, profile, repo, [make_tree(tmp_path / f"src{i}", 8)], **options)

    with log_on_failure(lambda: daemon):
        address = session_env.vars["DBUS_SESSION_BUS_ADDRESS"]
        shared = Shared()
        deadline = time.monotonic() + seconds
        async with anyio.create_task_group() as tg:
            tg.start_soon(sampler, address, shared, deadline)
            for k in range(CLIENTS):
                tg.start_soon(client, address, random.Random(seed * 100 + k), shared, deadline)
        assert daemon.proc.poll() is None, f"borgd died under load:\n{daemon.log()[-6000:]}"
        try:
            all_jobs(busctl, limit=("u", 1))
        except BusctlError as exc:
            pytest.fail(
                f"borgd stopped serving under load ({exc}); its log:\n{daemon.log()[-8000:]}"
            )

        drain_started = time.monotonic()
        with anyio.fail_after(90):
            while all_jobs(busctl, status=["queued", "running"]):
                await anyio.sleep(0.2)
        drained = time.monotonic() - drain_started
        jobs = all_jobs(busctl)

        assert shared.unexpected == [], shared.unexpected[:20]
        assert shared.doubles == [], shared.doubles[:5]
        assert all(j["status"] in FINISHED for j in jobs), status_counts(jobs)
        assert overlapping_runs(jobs) == []
        started = [j for j in jobs if j["started_at"]]
        assert started, "the load never ran a job"
        assert all(j["finished_at"] >= j["started_at"] for j in started)
        failed = [(j["id"], j["type"], j["message"]) for j in jobs if j["status"] == "failed"]
        assert failed == [], failed[:10]
        assert chain_violations(jobs) == []
        assert internal_errors(daemon.log()) == []

    report(
        f"seconds={seconds} clients={CLIENTS} calls={sum(shared.calls.values())} "
        f"{dict(shared.calls)} moot-errors={dict(shared.moot)} running-samples={shared.samples} "
        f"jobs={len(jobs)} ran={len(started)} statuses={status_counts(jobs)} "
        f"drain={drained:.1f}s total={time.monotonic() - began:.0f}s"
    )
