"""Event-loop lag of a running borgd while ordinary faults happen around it.

    .venv/bin/python bench/bench_fault_lag.py [--quick] [--seconds S]

Needs root (a private mount namespace, a FUSE mount).  One borgd runs inside
a private mount namespace whose /etc/hosts lacks this host's name and whose
/etc/resolv.conf names 127.0.0.1, where a UDP socket of the benchmark
receives and never answers: a DNS lookup there hangs.  A probe in the
benchmark sends `org.freedesktop.DBus.Peer.Ping` to borgd's unique bus name
every 10 ms (dbus-fast answers it on borgd's event loop, so its round trip is
the loop's lag plus the bus's own delay) and records the round trips of
each phase, S seconds each (5; ``--quick``: 3):

* baseline: a healthy repository backed up every 2 s (``*:*:0/2``);
* store locked: another process holds the store's write lock, while the
  schedule fires and a client calls StartJob every 0.5 s (refused);
* hung mount: a repository below a `borg mount` that is SIGSTOPped (every
  `stat` below it blocks), with a backup due every 2 s;
* DNS hangs: a profile whose archive name uses {fqdn}, backed up by hand;
* orphans at start: borgd is killed (-9) while a backup runs, the orphaned
  borg is SIGSTOPped (it ignores SIGINT and SIGTERM until SIGKILL, 15 s
  later), and borgd is started again: its recovery stops the orphan while
  the bus is served.

Target: the maximum round trip of every phase <= 50 ms beyond the baseline's
(the bus and the machine's noise are in the baseline, measured in the same run).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import _harness as h
import anyio

TARGET_EXTRA = 0.050
PING_EVERY = 0.010


def extra(parser) -> None:
    parser.add_argument("--seconds", type=float, help="length of each phase (5; quick 3)")


class Namespace:
    """A private mount namespace held by `sleep infinity` (as in tests/mountns.py)."""

    def __init__(self, cleanup: h.Cleanup) -> None:
        own = os.readlink("/proc/self/ns/mnt")
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sleep", "infinity"]
        )
        cleanup.callback(self._close)
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{self.holder.pid}/ns/mnt") == own:
            if time.monotonic() > deadline or self.holder.poll() is not None:
                raise RuntimeError("cannot make a private mount namespace (root needed)")
            time.sleep(0.01)

    @property
    def enter(self) -> list[str]:
        return ["nsenter", f"--target={self.holder.pid}", "--mount", "--"]

    def run(self, *argv: str) -> None:
        subprocess.run([*self.enter, *argv], check=True, capture_output=True)

    def path(self, inside: Path) -> Path:
        return Path(f"/proc/{self.holder.pid}/root") / inside.relative_to("/")

    def _close(self) -> None:
        self.holder.kill()
        self.holder.wait(10)


def silent_dns(cleanup: h.Cleanup) -> None:
    """A resolver on 127.0.0.1:53 that takes every query and answers none."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))
    sock.settimeout(0.5)
    stop = threading.Event()

    def swallow() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                sock.recv(4096)

    threading.Thread(target=swallow, daemon=True).start()
    cleanup.callback(lambda: (stop.set(), sock.close()))


class Pinger:
    """Peer.Ping to borgd's unique name every 10 ms; round trips per phase."""

    def __init__(self, address: str, pid_of: int) -> None:
        self.address = address
        self.pid = pid_of
        self.samples: list[tuple[float, float]] = []  # (sent at, round trip)

    async def unique_name(self, bus) -> str:
        names = (
            await h.call(
                bus,
                "ListNames",
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
            )
        )[0]
        for name in names:
            if not name.startswith(":"):
                continue
            with contextlib.suppress(h.BusError):
                pid = (
                    await h.call(
                        bus,
                        "GetConnectionUnixProcessID",
                        "s",
                        [name],
                        destination="org.freedesktop.DBus",
                        path="/org/freedesktop/DBus",
                        interface="org.freedesktop.DBus",
                    )
                )[0]
                if pid == self.pid:
                    return name
        raise LookupError

    async def run(self, until: anyio.Event) -> None:
        bus = await h.connect(self.address)
        try:
            name = None
            while name is None and not until.is_set():
                with contextlib.suppress(LookupError):
                    name = await self.unique_name(bus)
                await anyio.sleep(0.01)
            while not until.is_set():
                began = time.monotonic()
                with anyio.fail_after(30):
                    await h.call(
                        bus,
                        "Ping",
                        destination=name,
                        path="/",
                        interface="org.freedesktop.DBus.Peer",
                    )
                self.samples.append((began, time.monotonic() - began))
                await anyio.sleep(max(0.0, PING_EVERY - (time.monotonic() - began)))
        finally:
            bus.disconnect()

    def between(self, start: float, end: float) -> list[float]:
        return [rt for at, rt in self.samples if start <= at < end]


def ping_during(address: str, pid: int, seconds: float, action=None) -> list[float]:
    """Ping borgd for `seconds` while `action(bus)` (a coroutine function) runs."""

    async def go() -> list[float]:
        pinger = Pinger(address, pid)
        done = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(pinger.run, done)
            start = time.monotonic()
            if action is not None:
                bus = await h.connect(address)
                try:
                    with anyio.move_on_after(seconds):
                        await action(bus)
                finally:
                    bus.disconnect()
            await anyio.sleep(max(0.0, start + seconds - time.monotonic()))
            done.set()
        return pinger.between(start, start + seconds)

    return anyio.run(go)


async def setup(address: str, root: Path, mnt: Path) -> None:
    bus = await h.connect(address)
    try:
        await h.init_repo(bus, "good", root / "good")
        await h.init_repo(bus, "slow", root / "slow")
        tree = h.make_tree(root / "tree")
        big = h.make_tree(root / "big", files=40, size=8 << 20)
        await h.call(bus, "AddProfile", "ssasa{sv}", ["g", "good", [str(tree)], h.asv()])
        await h.call(bus, "AddSchedule", "sssa{sv}", ["g", "backup", "*:*:0/2", h.asv()])
        await h.call(bus, "AddRepository", "ssa{sv}", ["hung", str(mnt / "a" / "repo"), h.asv()])
        await h.call(bus, "AddProfile", "ssasa{sv}", ["h", "hung", [str(tree)], h.asv()])
        template = "{fqdn}-{profile}-{now:%Y-%m-%dT%H:%M:%S.%f}"
        await h.call(
            bus,
            "AddProfile",
            "ssasa{sv}",
            ["dns", "slow", [str(tree)], h.asv(archive_template=template)],
        )
        await h.call(bus, "AddProfile", "ssasa{sv}", ["big", "slow", [str(big)], h.asv()])
    finally:
        bus.disconnect()


def body(args, cleanup: h.Cleanup) -> int:
    seconds = args.seconds or (3.0 if args.quick else 5.0)
    session = h.Session.create(cleanup, "borgd-bench-fault-lag-")
    home = session.home()
    root = session.root / "data"
    root.mkdir()
    ns = Namespace(cleanup)
    # DNS that hangs, for borgd only (inside its namespace).
    hosts, resolv = session.root / "hosts", session.root / "resolv.conf"
    hosts.write_text("127.0.0.1 localhost\n")
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:5 attempts:2\n")
    ns.run("mount", "--bind", str(hosts), "/etc/hosts")
    ns.run("mount", "--bind", str(resolv), "/etc/resolv.conf")
    silent_dns(cleanup)
    # A FUSE mount to freeze later.
    env = session.env(home, BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes")
    scratch, mnt = root / "scratch", root / "mnt"
    mnt.mkdir()
    borg = str(Path(h.VENV_BIN) / "borg")
    subprocess.run([borg, "init", "-e", "none", str(scratch)], env=env, check=True)
    subprocess.run(
        [borg, "create", f"{scratch}::a", str(h.make_tree(root / "s", 3))], env=env, check=True
    )
    fuse = subprocess.Popen([*ns.enter, borg, "mount", "-f", str(scratch), str(mnt)], env=env)
    cleanup.callback(lambda: (os.kill(fuse.pid, signal.SIGCONT), fuse.kill()))
    deadline = time.monotonic() + 30
    while not (ns.path(mnt) / "a").is_dir():
        if time.monotonic() > deadline:
            raise RuntimeError("borg mount did not come up")
        time.sleep(0.1)

    daemon = h.Borgd(session, home, cleanup, wrap=ns.enter)
    daemon.wait_ready()
    anyio.run(setup, session.session_bus, root, mnt)
    store = h.store_path(home)
    table = h.Table(f"event-loop lag under faults: Peer.Ping round trips, {seconds:g} s a phase")
    results: dict[str, list[float]] = {}

    results["baseline (a backup every 2 s)"] = ping_during(
        session.session_bus, daemon.pid, seconds
    )

    lock = sqlite3.connect(store, timeout=10, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    lock.execute("CREATE TABLE IF NOT EXISTS bench_lock (x)")

    async def start_jobs(bus) -> None:
        while True:
            with contextlib.suppress(h.BusError):
                await h.call(bus, "StartJob", "ssa{sv}", ["g", "backup", h.asv()])
            await anyio.sleep(0.5)

    try:
        results["store locked, StartJob every 0.5 s"] = ping_during(
            session.session_bus, daemon.pid, seconds, start_jobs
        )
    finally:
        lock.rollback()
        lock.close()

    os.kill(fuse.pid, signal.SIGSTOP)

    async def hung_schedule(bus) -> None:
        await h.call(bus, "AddSchedule", "sssa{sv}", ["h", "backup", "*:*:0/2", h.asv()])
        await anyio.sleep_forever()

    results["repository on a frozen FUSE mount"] = ping_during(
        session.session_bus, daemon.pid, max(seconds, 5.0), hung_schedule
    )

    async def dns_backup(bus) -> None:
        await h.call(bus, "StartJob", "ssa{sv}", ["dns", "backup", h.asv()])
        await anyio.sleep_forever()

    results["DNS hangs for {fqdn} (5 s limit)"] = ping_during(
        session.session_bus, daemon.pid, max(seconds, 9.0), dns_backup
    )

    # Orphans: borgd killed while a big backup runs, its borg frozen.
    async def big_backup(address: str) -> int:
        bus = await h.connect(address)
        try:
            return (await h.call(bus, "StartJob", "ssa{sv}", ["big", "backup", h.asv()]))[0]
        finally:
            bus.disconnect()

    anyio.run(big_backup, session.session_bus)
    deadline = time.monotonic() + 30
    borgs: list[int] = []
    while not borgs and time.monotonic() < deadline:
        borgs = [
            p for p in h.children(daemon.pid) if "borg" in Path(f"/proc/{p}/cmdline").read_text()
        ]
        time.sleep(0.05)
    for pid in borgs:
        os.kill(pid, signal.SIGSTOP)
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.proc.wait(10)
    again = h.Borgd(session, home, cleanup, wrap=ns.enter, tag="borgd-again")
    results["start-up while an orphaned borg is stopped"] = ping_during(
        session.session_bus, again.pid, 12.0
    )
    again.wait_ready(60)

    again_log = again.log_path.read_text(errors="replace")
    first_log = daemon.log_path.read_text(errors="replace")
    table.add("the fault happened: a folder probe timed out", str("path_hangs" in first_log))
    table.add("the fault happened: the {fqdn} lookup timed out", str("fqdn_timeout" in first_log))
    table.add("the fault happened: an orphan was stopped", str("stopping_orphan" in again_log))
    base = max(results["baseline (a backup every 2 s)"], default=float("nan"))
    for phase, rts in results.items():
        worst = max(rts, default=float("nan"))
        extra_lag = worst - base
        table.add(
            f"{phase}: max (p99) round trip, {len(rts)} pings",
            f"{h.ms(worst)} ({h.ms(h.percentile(rts, 99))})",
            "" if phase.startswith("baseline") else f"<= baseline + {TARGET_EXTRA * 1000:.0f} ms",
            None if phase.startswith("baseline") else extra_lag <= TARGET_EXTRA,
        )
    table.print()
    return 0


if __name__ == "__main__":
    h.main(body, h.parse_args(__doc__.splitlines()[0], extra))
