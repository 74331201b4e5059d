"""What borgd adds to a backup: through borgd vs. the same `borg create` run directly.

    .venv/bin/python bench/bench_backup_overhead.py [--runs 5] [--files 5000] [--unchanged]

A private session and system dbus-daemon and one borgd process (as in
tests/conftest.py, without pytest), a source tree of `--files` files of about
10 KB, and an unencrypted repository.  The runs alternate:

* A (borgd): StartJob over D-Bus, until the JobChanged signal that says
  ``succeeded`` (dbus-fast client in this process: no polling, no busctl);
* B (direct): ``borg create --log-json --progress --json REPO::NAME SRC`` with
  the environment borgd gives borg, its output read through pipes.

By default every run backs up into a fresh repository (a first backup of the
tree); ``--unchanged`` backs up again into one repository (borg's files cache
makes it a re-read of metadata only, so borgd's fixed costs weigh more).
Prints each mode's median, the ratio A/B (target: <= 1.05) and the daemon's
own timings for the job (queued → started → finished).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import _harness as h  # noqa: E402

from borgd.core.borg_argv import borg_env  # noqa: E402
from borgd.core.config import RepoConfig  # noqa: E402

FINISHED = {"succeeded", "warning", "failed", "cancelled", "interrupted", "skipped"}


def borg_path() -> str:
    found = shutil.which("borg", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if not found:
        sys.exit("borg not found: run scripts/bootstrap.sh --test")
    return found


def make_tree(root: Path, files: int, size: int = 10_000) -> None:
    for i in range(files):
        sub = root / f"d{i % 50}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}.bin").write_bytes(os.urandom(size))


class Borgd:
    """borgd on private buses, and a dbus-fast client that sees its signals."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.bus: MessageBus | None = None
        self.finished: dict[int, tuple[float, str]] = {}
        self.changed = asyncio.Event()

    async def start(self) -> None:
        notify_path = self.tmp / "notify.sock"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_path))
        notify.settimeout(30)
        log = open(self.tmp / "borgd.log", "wb")  # noqa: SIM115 - for the process' lifetime
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "borgd.daemon"],
            env={**self.env, "NOTIFY_SOCKET": str(notify_path)},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
        while b"READY=1" not in notify.recv(4096):
            pass
        notify.close()
        self.bus = await MessageBus(bus_address=self.env["DBUS_SESSION_BUS_ADDRESS"]).connect()
        self.bus.add_message_handler(self._on_message)
        await self.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "AddMatch",
            "s",
            ["type='signal',interface='org.borgd1.Manager',member='JobChanged'"],
        )

    def _on_message(self, msg: Message) -> None:
        if msg.message_type is MessageType.SIGNAL and msg.member == "JobChanged":
            job_id, changed = msg.body
            status = changed.get("status")
            if status is not None and status.value in FINISHED:
                self.finished[job_id] = (time.perf_counter(), status.value)
                self.changed.set()

    async def call(
        self, dest: str, path: str, iface: str, member: str, sig: str, body: list[Any]
    ) -> list[Any]:
        assert self.bus is not None
        reply = await self.bus.call(
            Message(
                destination=dest,
                path=path,
                interface=iface,
                member=member,
                signature=sig,
                body=body,
            )
        )
        assert reply is not None
        if reply.message_type is MessageType.ERROR:
            raise RuntimeError(f"{member}: {reply.error_name}: {reply.body}")
        return list(reply.body)

    async def manager(self, member: str, sig: str, *body: Any) -> list[Any]:
        return await self.call(
            "org.borgd1", "/org/borgd1", "org.borgd1.Manager", member, sig, list(body)
        )

    async def backup(self, profile: str) -> tuple[float, dict[str, Any]]:
        """Seconds from StartJob to the signal that says it finished; and the job."""
        start = time.perf_counter()
        (job_id,) = await self.manager("StartJob", "ssa{sv}", profile, "backup", {})
        while job_id not in self.finished:
            self.changed.clear()
            await self.changed.wait()
        end, status = self.finished[job_id]
        (job,) = await self.manager("GetJob", "t", job_id)
        if status != "succeeded":
            raise RuntimeError(f"job {job_id} {status}: {job['message'].value}")
        return end - start, {k: v.value for k, v in job.items()}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


def direct(
    borg: str, repo: Path, name: str, source: Path, env: dict[str, str]
) -> tuple[float, float]:
    """Seconds the direct run took, and borg's own duration of the archive."""
    argv = [borg, "create", "--log-json", "--progress", "--json", f"{repo}::{name}", str(source)]
    start = time.perf_counter()
    res = subprocess.run(
        argv, env=env, capture_output=True, stdin=subprocess.DEVNULL, start_new_session=True
    )
    took = time.perf_counter() - start
    if res.returncode != 0:
        raise RuntimeError(res.stderr.decode(errors="replace")[-2000:])
    return took, float(json.loads(res.stdout)["archive"]["duration"])


def borgmatic_path() -> str | None:
    """borgmatic, when installed into the bench environment (`pip install borgmatic`)."""
    return shutil.which("borgmatic", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


def via_borgmatic(
    borgmatic: str, borg: str, repo: Path, source: Path, tmp: Path, env: dict[str, str]
) -> float:
    """Seconds one `borgmatic create` of the same source into the same repository took."""
    config = tmp / "borgmatic.yaml"
    config.write_text(
        f"source_directories:\n    - {source}\n"
        f"repositories:\n    - path: {repo}\n      label: bench\n"
        f"archive_name_format: 'borgmatic-{{now:%Y-%m-%dT%H:%M:%S.%f}}'\n"
        f"local_path: {borg}\n"
    )
    start = time.perf_counter()
    res = subprocess.run(
        [borgmatic, "--config", str(config), "create"],
        env=env, capture_output=True, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    took = time.perf_counter() - start
    if res.returncode != 0:
        raise RuntimeError(res.stderr.decode(errors="replace")[-2000:])
    return took


def fresh_repo(borg: str, repo: Path, env: dict[str, str]) -> None:
    shutil.rmtree(repo, ignore_errors=True)
    subprocess.run([borg, "init", "-e", "none", str(repo)], env=env, check=True,
                   capture_output=True, stdin=subprocess.DEVNULL)  # fmt: skip


async def bench(args: argparse.Namespace, tmp: Path) -> None:
    borg = borg_path()
    home = tmp / "home"
    for sub in ("state", "config", "cache", "runtime"):
        (home / sub).mkdir(parents=True)
    bus_dir = tmp / "bus"
    bus_dir.mkdir()
    buses = h.Cleanup()
    session_addr = h.start_dbus_daemon(bus_dir, "session", buses)
    system_addr = h.start_dbus_daemon(bus_dir, "system", buses)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DBUS_", "XDG_", "NOTIFY_", "BORG_", "JOURNAL_"))
    }
    env.update(
        HOME=str(home),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_RUNTIME_DIR=str(home / "runtime"),
        DBUS_SESSION_BUS_ADDRESS=session_addr,
        DBUS_SYSTEM_BUS_ADDRESS=system_addr,
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
    )
    source = tmp / "src"
    make_tree(source, args.files)
    repo = tmp / "repo"
    # What borgd gives borg (the same function), so both sides run the same borg the same way.
    borg_side = borg_env(RepoConfig(name="bench", url=str(repo), encryption="none"), env)
    fresh_repo(borg, repo, borg_side)

    daemon = Borgd(tmp, env)
    try:
        await daemon.start()
        await daemon.manager(
            "AddRepository", "ssa{sv}", "bench", str(repo), {"encryption": Variant("s", "none")}
        )
        await daemon.manager("AddProfile", "ssasa{sv}", "bench", "bench", [str(source)], {})
        a_times: list[float] = []
        b_times: list[float] = []
        c_times: list[float] = []
        borgmatic = borgmatic_path()
        sides = ("A", "B", "C") if borgmatic else ("A", "B")
        b_borg: list[float] = []
        phases: list[tuple[float, float, float]] = []
        for i in range(args.runs + 1):  # run 0 of each warms the caches and is not counted
            # Rotate the order (A B C, B C A, C A B) so no side always runs first.
            for side in sides[i % len(sides) :] + sides[: i % len(sides)]:
                if not args.unchanged:
                    fresh_repo(borg, repo, borg_side)
                if side == "A":
                    took, job = await daemon.backup("bench")
                    if i:
                        a_times.append(took)
                        phases.append(
                            (
                                (job["started_at"] - job["queued_at"]) / 1e6,
                                (job["finished_at"] - job["started_at"]) / 1e6,
                                job["duration"],
                            )
                        )
                elif side == "B":
                    took, borg_duration = direct(borg, repo, f"direct-{i}", source, borg_side)
                    if i:
                        b_times.append(took)
                        b_borg.append(borg_duration)
                else:
                    assert borgmatic is not None
                    took = via_borgmatic(borgmatic, borg, repo, source, tmp, borg_side)
                    if i:
                        c_times.append(took)
        a, b = statistics.median(a_times), statistics.median(b_times)
        mode = "unchanged re-backup into one repository" if args.unchanged else "fresh repository"
        print(f"backup of {args.files} files ({mode}), {args.runs} runs each, order rotated")
        print(f"  A through borgd: median {a:.3f} s  {[round(t, 3) for t in a_times]}")
        print(f"  B borg directly: median {b:.3f} s  {[round(t, 3) for t in b_times]}")
        print(f"  ratio A/B: {a / b:.3f} (target <= 1.05); A - B = {1000 * (a - b):.0f} ms")
        if c_times:
            c = statistics.median(c_times)
            print(f"  C borgmatic:     median {c:.3f} s  {[round(t, 3) for t in c_times]}")
            print(f"  ratio C/B: {c / b:.3f}; borgd below borgmatic: {'yes' if a < c else 'NO'}")
        else:
            print("  C borgmatic: not installed (pip install borgmatic into .venv to compare)")
        q, run, dur = (statistics.median(x) for x in zip(*phases, strict=True))
        print(
            f"  borgd's view (medians): queued→started {1000 * q:.1f} ms, "
            f"started→finished {1000 * run:.0f} ms, borg's own duration {1000 * dur:.0f} ms"
        )
        direct_borg = statistics.median(b_borg)
        print(f"  borg's own duration when run directly (median): {1000 * direct_borg:.0f} ms")
        print(f"  fastest runs: A {min(a_times):.3f} s, B {min(b_times):.3f} s")
    finally:
        daemon.stop()
        buses.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--unchanged", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="borgd-bench-") as tmp:
        asyncio.run(bench(args, Path(tmp)))


if __name__ == "__main__":
    main()
