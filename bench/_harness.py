"""Shared helpers for the process-level benchmarks (bench/bench_*.py).

Everything a benchmark starts — temporary folders, private ``dbus-daemon``s,
``borgd`` itself and whatever it spawned — is registered on one `Cleanup`
stack that `main` unwinds on success, failure, Ctrl-C and SIGTERM.

Children are started in their own session, so a Ctrl-C in the terminal
reaches only the benchmark, which then stops them in order (borgd gets
SIGTERM and a bounded wait, then SIGKILL; its leftover children are killed
by pid *and* start time, so a recycled pid is never hit).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("borgd") is None and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # not installed: use the checkout

_VENV_PY = ROOT / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PY) if _VENV_PY.exists() else sys.executable
VENV_BIN = str(Path(PYTHON).parent)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
BUS_NAME = "org.borgd1"
MANAGER_PATH = "/org/borgd1"
MANAGER_IFACE = "org.borgd1.Manager"
FINISHED = ("succeeded", "warning", "failed", "cancelled", "interrupted", "skipped")

# ---------------------------------------------------------------------------
# entry point, arguments, cleanup


def parse_args(description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a short smoke-test run (under 30 s)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (its path is printed)"
    )
    if extra is not None:
        extra(parser)
    return parser.parse_args()


class Cleanup(contextlib.ExitStack):
    """An ExitStack with a `keep` switch for temporary folders."""

    keep = False

    def temp_dir(self, prefix: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=prefix))

        def remove() -> None:
            if self.keep:
                print(f"(kept {path})", file=sys.stderr)
            else:
                shutil.rmtree(path, ignore_errors=True)

        self.callback(remove)
        return path


def _sigterm(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(body: Callable[[argparse.Namespace, Cleanup], int | None], args: argparse.Namespace):
    """Run `body(args, cleanup)`; unwind the cleanup stack however it ends."""
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with `&`
    try:
        with Cleanup() as cleanup:
            cleanup.keep = bool(getattr(args, "keep", False))
            rc = body(args, cleanup)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaned up", file=sys.stderr)
        sys.exit(130)
    sys.exit(rc or 0)


# ---------------------------------------------------------------------------
# processes


def proc_stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (index 0 = field 3, `state`)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return data[data.rfind(b")") + 2 :].decode().split()


def start_ticks(pid: int) -> int:
    try:
        return int(proc_stat(pid)[19])
    except (OSError, IndexError, ValueError):
        return 0


def _parents() -> dict[int, list[int]]:
    """ppid → child pids, from a scan of /proc (no CONFIG_PROC_CHILDREN needed)."""
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            tree.setdefault(int(proc_stat(int(name))[1]), []).append(int(name))
    return tree


def children(pid: int) -> list[int]:
    return sorted(_parents().get(pid, []))


def descendants(pid: int) -> list[tuple[int, int]]:
    """(pid, start ticks) of every descendant of `pid`, children first."""
    tree = _parents()
    seen: list[tuple[int, int]] = []
    todo = list(tree.get(pid, []))
    while todo:
        child = todo.pop(0)
        seen.append((child, start_ticks(child)))
        todo += tree.get(child, [])
    return seen


def kill_exact(pids: Iterable[tuple[int, int]]) -> None:
    """SIGKILL processes still alive with the same pid *and* start time."""
    for pid, ticks in pids:
        if ticks and start_ticks(pid) == ticks:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    """Stop a child we started: `sig`, bounded wait, SIGKILL; then its leftovers."""
    if proc.poll() is not None:
        return
    tree = descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        tree = descendants(proc.pid) or tree
        proc.kill()
        proc.wait(10)
    kill_exact(tree)


def cpu_seconds(pid: int) -> float:
    fields = proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime, all threads


def _status_fields(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def ctx_switches(pid: int) -> tuple[int, int, int]:
    """(voluntary, involuntary, threads) summed over the live threads of `pid`."""
    vol = invol = n = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            st = _status_fields(f"/proc/{pid}/task/{task}/status")
            vol += int(st["voluntary_ctxt_switches"])
            invol += int(st["nonvoluntary_ctxt_switches"])
            n += 1
    return vol, invol, n


def per_thread_switches(pid: int) -> dict[str, int]:
    """voluntary switches per thread, keyed 'tid name'."""
    out: dict[str, int] = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            st = _status_fields(f"/proc/{pid}/task/{task}/status")
            out[f"{task} {st.get('Name', '?')}"] = int(st["voluntary_ctxt_switches"])
    return out


def schedstat(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one), summed over threads.

    A high wait share means other work on the machine delayed this process."""
    run = wait = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError, ValueError):
            fields = Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()
            run += int(fields[0])
            wait += int(fields[1])
    return run / 1e9, wait / 1e9


def rss_mb(pid: int) -> float:
    st = _status_fields(f"/proc/{pid}/status")
    return int(st["VmRSS"].split()[0]) / 1024


def boot_wall_offset() -> float:
    """Wall-clock time of boot (s), precise to µs: /proc's start times count from it."""
    best = None
    for _ in range(5):
        a = time.time()
        b = time.clock_gettime(time.CLOCK_BOOTTIME)
        c = time.time()
        if best is None or c - a < best[0]:
            best = (c - a, (a + c) / 2 - b)
    assert best is not None
    return best[1]


# ---------------------------------------------------------------------------
# borgd installed as a user installs it, and the floor its libraries set

# What borgd cannot start without: its libraries' own import cost is the floor
# against which start-up time and memory are quoted.
FLOOR_IMPORTS = "import sqlalchemy, dbus_fast.aio, anyio, structlog, sdnotify"


@dataclass(frozen=True)
class Installed:
    """borgd installed non-editable into a temporary venv, its bytecode compiled.

    These machines set PYTHONDONTWRITEBYTECODE=1: an editable checkout (or
    ``python -m borgd.daemon`` from the repository root) compiles every borgd
    module again at each start, which no user's install does.  The venv gets
    borgd alone; its libraries come from the project's .venv through a .pth
    line, so the floor and borgd import the very same files.
    """

    venv: Path
    source: Path

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    @property
    def borgd(self) -> str:
        return str(self.venv / "bin" / "borgd")

    def describe(self) -> str:
        return f"borgd from {self.source} installed non-editable (pip, bytecode compiled)"


def install_borgd(cleanup: Cleanup, source: Path = ROOT) -> Installed:
    """`pip install --no-deps` a clean copy of `source` (pyproject.toml, README.md, borgd/)
    into a new venv; a copy, so that setuptools' build/ folder never lands in the checkout."""
    tmp = cleanup.temp_dir("borgd-bench-install-")
    tree = tmp / "src"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(source / name, tree / name)
    shutil.copytree(source / "borgd", tree / "borgd", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp / "venv"
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = [PYTHON, "-m", "pip", "--python", str(venv / "bin" / "python")]
    res = subprocess.run(
        [*pip, "install", "-q", "--no-deps", "--compile", str(tree)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise RuntimeError(f"pip install of {source} failed:\n{res.stdout}{res.stderr}")

    def purelib(python: str) -> str:
        code = "import sysconfig; print(sysconfig.get_path('purelib'))"
        return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()

    site = Path(purelib(str(venv / "bin" / "python")))
    (site / "_borgd_bench_libraries.pth").write_text(purelib(PYTHON) + "\n")
    return Installed(venv, source)


@dataclass(frozen=True)
class Measured:
    """One child process run to its end."""

    wall: float  # seconds
    cpu: float  # user + system seconds: less disturbed than `wall` by a busy machine
    peak_mib: float  # peak RSS


def measure_process(argv: Sequence[str], cwd: Path) -> Measured:
    begin = time.perf_counter()
    proc = subprocess.Popen(
        list(argv), cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - begin
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} exited {proc.returncode}")
    # ru_maxrss is in KiB on Linux
    return Measured(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def measure_floor(python: str, cwd: Path) -> Measured:
    """Importing borgd's libraries in a fresh interpreter."""
    return measure_process([python, "-c", FLOOR_IMPORTS], cwd)


# ---------------------------------------------------------------------------
# buses, environment, borgd


def start_dbus_daemon(tmp: Path, name: str, cleanup: Cleanup) -> str:
    config = tmp / f"{name}.conf"
    config.write_text(
        f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={tmp}</listen>
  <auth>EXTERNAL</auth>
  <limit name="max_replies_per_connection">50000</limit>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""
    )
    proc = subprocess.Popen(
        ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # "Failed to set fd limit" and the like
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    cleanup.callback(stop, proc, signal.SIGTERM, 5)
    assert proc.stdout is not None
    address = proc.stdout.readline().strip()
    if not address:
        raise RuntimeError(f"dbus-daemon for {name} did not start")
    return address


@dataclass
class Session:
    """Two private buses and a temporary home: what a user session gives borgd."""

    root: Path
    session_bus: str
    system_bus: str

    @classmethod
    def create(cls, cleanup: Cleanup, prefix: str) -> Session:
        root = cleanup.temp_dir(prefix)
        (root / "bus").mkdir()
        session_bus = start_dbus_daemon(root / "bus", "session", cleanup)
        system_bus = start_dbus_daemon(root / "bus", "system", cleanup)
        return cls(root, session_bus, system_bus)

    def home(self, name: str = "home") -> Path:
        home = self.root / name
        for sub in ("state", "config", "runtime"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        (home / "runtime").chmod(0o700)
        return home

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DBUS_", "XDG_", "NOTIFY_", "WATCHDOG_", "BORG_", "JOURNAL_"))
        }
        env.update(
            HOME=str(home),
            XDG_STATE_HOME=str(home / "state"),
            XDG_CONFIG_HOME=str(home / "config"),
            XDG_RUNTIME_DIR=str(home / "runtime"),
            DBUS_SESSION_BUS_ADDRESS=self.session_bus,
            DBUS_SYSTEM_BUS_ADDRESS=self.system_bus,
            PATH=f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}",
            LANG="C.UTF-8",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env


def store_path(home: Path) -> Path:
    return home / "state" / "borgd" / "borgd.sqlite3"


class NotifySocket:
    """The NOTIFY_SOCKET borgd talks to, read at once by a thread, as systemd would.

    (Unread, the datagram queue fills after a few messages and borgd's
    blocking ``sendto`` — a watchdog ping — would stall its event loop.)
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            with self._cond:
                self.messages.append((now, data.decode(errors="replace")))
                self._cond.notify_all()

    def wait_for(self, text: str, timeout: float, start: int = 0) -> float | None:
        """time.monotonic() at which the first datagram (from index `start`) holding the
        line `text` arrived, or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for at, msg in self.messages[start:]:
                    if text in msg.split("\n"):
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def close(self) -> None:
        self._closed = True
        self._thread.join(1)
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class Borgd:
    """borgd as a process (`python -m borgd.daemon` from the checkout, or an installed
    package's `borgd`), with its own notify socket and log file."""

    def __init__(
        self,
        session: Session,
        home: Path,
        cleanup: Cleanup,
        *args: str,
        env: dict[str, str] | None = None,
        tag: str = "borgd",
        installed: Installed | None = None,
        wrap: Sequence[str] = (),
    ) -> None:
        if "--keep-jobs" not in args:
            # The benchmarks seed large histories; job retention would prune them.
            args = ("--keep-jobs", "10000000", *args)
        self.notify = NotifySocket(session.root / f"{tag}.notify")
        cleanup.callback(self.notify.close)
        self.log_path = session.root / f"{tag}.log"
        penv = session.env(home, NOTIFY_SOCKET=str(self.notify.path), **(env or {}))
        if installed is None:  # the checkout, as the tests run it
            argv, cwd = [PYTHON, "-m", "borgd.daemon"], ROOT
        else:  # the console script, as systemd's ExecStart runs it
            argv, cwd = [installed.borgd], session.root
        self.started = time.monotonic()
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [*wrap, *argv, *args],  # wrap: e.g. nsenter
                env=penv,
                cwd=str(cwd),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        cleanup.callback(self.stop)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 30) -> float:
        """Seconds from Popen to READY=1."""
        at = self.notify.wait_for("READY=1", timeout)
        if at is None:
            self.stop()
            raise RuntimeError(f"borgd did not send READY=1; its log:\n{self.log_tail()}")
        return at - self.started

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        stop(self.proc, signal.SIGTERM, 30)


# ---------------------------------------------------------------------------
# D-Bus client (dbus-fast, low-level messages)


class BusError(Exception):
    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{name}: {text}")
        self.name = name


def u(value: int) -> Any:
    from dbus_fast import Variant

    return Variant("u", value)


def t(value: int) -> Any:
    from dbus_fast import Variant

    return Variant("t", value)


def asv(**options: Any) -> dict[str, Any]:
    """str → s, bool → b, list → as, Variant as is (use `u()`/`t()` for integers)."""
    from dbus_fast import Variant

    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, Variant):
            out[key] = value
        elif isinstance(value, bool):
            out[key] = Variant("b", value)
        elif isinstance(value, str):
            out[key] = Variant("s", value)
        elif isinstance(value, (list, tuple)):
            out[key] = Variant("as", list(value))
        else:
            raise TypeError(f"{key}: wrap integers with u() or t()")
    return out


def plain(value: Any) -> Any:
    from dbus_fast import Variant

    if isinstance(value, Variant):
        return plain(value.value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


async def connect(address: str) -> Any:
    from dbus_fast.aio import MessageBus

    return await MessageBus(bus_address=address).connect()


async def call(
    bus: Any,
    member: str,
    signature: str = "",
    body: Sequence[Any] = (),
    *,
    destination: str = BUS_NAME,
    path: str = MANAGER_PATH,
    interface: str = MANAGER_IFACE,
) -> list[Any]:
    from dbus_fast import Message, MessageType

    reply = await bus.call(
        Message(
            destination=destination,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=list(body),
        )
    )
    if reply.message_type == MessageType.ERROR:
        raise BusError(reply.error_name or "?", str(reply.body[0] if reply.body else ""))
    return list(reply.body)


async def add_match(bus: Any, rule: str) -> None:
    await call(
        bus,
        "AddMatch",
        "s",
        [rule],
        destination="org.freedesktop.DBus",
        path="/org/freedesktop/DBus",
        interface="org.freedesktop.DBus",
    )


async def wait_job(bus: Any, job_id: int, timeout: float = 120) -> dict[str, Any]:
    import anyio

    with anyio.fail_after(timeout):
        while True:
            job = plain((await call(bus, "GetJob", "t", [job_id]))[0])
            if job["status"] in FINISHED:
                return job
            await anyio.sleep(0.1)


async def init_repo(bus: Any, name: str, url: Path) -> None:
    """AddRepository with init and encryption none; waits for the init job to succeed."""
    url.parent.mkdir(parents=True, exist_ok=True)
    await call(
        bus, "AddRepository", "ssa{sv}", [name, str(url), asv(init=True, encryption="none")]
    )
    jobs = plain((await call(bus, "ListJobs", "a{sv}", [asv(type="init")]))[0])
    mine = [j for j in jobs if j["repository"] == name]
    if len(mine) != 1:
        raise RuntimeError(f"expected one init job for {name}, got {mine}")
    done = await wait_job(bus, mine[0]["id"])
    if done["status"] != "succeeded":
        raise RuntimeError(f"init of {name} {done['status']}: {done['message']}")


def make_tree(root: Path, files: int = 20, size: int = 2000) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(7)
    for i in range(files):
        (root / f"f{i}.txt").write_bytes(rnd.randbytes(size))
    return root


# ---------------------------------------------------------------------------
# the store


def seed_finished_jobs(
    path: Path, n: int, *, now_us: int, seed: int = 1, python: str | None = None
) -> dict[str, Any]:
    """Insert `n` finished jobs in bulk (store created if missing); returns the mix used.

    With `python`, the seeding runs in that interpreter (an `Installed` borgd's),
    so the store gets that borgd's schema version.

    The catalog gets the 5 repositories (paths that do not exist: nothing may
    run) and the 20 profiles (max_age 30 days, so the overdue watcher reads
    their history at start); no schedules.  The jobs: types 70 % backup, 15 % prune, 10 % compact,
    5 % check; statuses 86 % succeeded, 5 % warning, 6 % failed, 1 % cancelled,
    2 % skipped; created over the last 150 days, oldest first.
    """
    profiles = [f"p{i:02d}" for i in range(20)]
    repos = {p: f"r{i % 5}" for i, p in enumerate(profiles)}
    span = 150 * 86_400 * 1_000_000
    mix = {"profiles": profiles, "repositories": sorted(set(repos.values())), "span_us": span}
    if python is not None:
        argv = [python, __file__, "seed", str(path), str(n), str(now_us), str(seed)]
        subprocess.run(argv, check=True, cwd=path.parent)
        return mix

    from sqlalchemy import insert, text

    from borgd.store import Store
    from borgd.store.jobs import JOBS

    rnd = random.Random(seed)
    types = ["backup"] * 70 + ["prune"] * 15 + ["compact"] * 10 + ["check"] * 5
    statuses = (
        ["succeeded"] * 86 + ["warning"] * 5 + ["failed"] * 6 + ["cancelled"] + ["skipped"] * 2
    )
    start = now_us - span
    store = Store.open(path)
    try:
        repo_ids = {
            name: store.catalog.add_repository(
                {"name": name, "url": f"/nonexistent/borgd-bench/{name}", "encryption": "none"}
            )
            for name in sorted(set(repos.values()))
        }
        for p in profiles:
            store.catalog.add_profile(
                {
                    "name": p,
                    "repository_id": repo_ids[repos[p]],
                    "sources": ["/nonexistent/borgd-bench/src"],
                    "archive_template": p + "-{now}",
                    "max_age": 30 * 86_400 * 1_000_000,
                }
            )
        batch: list[dict[str, Any]] = []
        with store.engine.begin() as conn:
            for i in range(n):
                profile = rnd.choice(profiles)
                job_type = rnd.choice(types)
                status = rnd.choice(statuses)
                created = start + (span * i) // n
                started = created + 1_000
                finished = started + rnd.randint(1, 600) * 1_000_000
                row: dict[str, Any] = {
                    "type": job_type,
                    "status": status,
                    "trigger": "schedule" if i % 4 else "manual",
                    "profile": profile,
                    "repository": repos[profile],
                    "repository_id": repo_ids[repos[profile]],
                    "schedule_id": 0,
                    "scheduled_for": created,
                    "created_at": created,
                    "queued_at": created,
                    "started_at": started if status != "skipped" else 0,
                    "finished_at": finished,
                    "exit_code": {"succeeded": 0, "warning": 1, "failed": 2}.get(status, -1),
                    "message": "" if status == "succeeded" else f"{status}: see the log",
                    "skip_reason": "on-battery" if status == "skipped" else "",
                    "archive": f"{profile}-{i}" if job_type == "backup" else "",
                    "progress": 1.0,
                    "nfiles": rnd.randint(100, 100_000),
                    "original_size": rnd.randint(10**6, 10**10),
                    "compressed_size": rnd.randint(10**5, 10**9),
                    "deduplicated_size": rnd.randint(0, 10**8),
                    "duration": (finished - started) / 1e6,
                    "options": {},
                }
                batch.append(row)
                if len(batch) >= 10_000:
                    conn.execute(insert(JOBS), batch)
                    batch = []
            if batch:
                conn.execute(insert(JOBS), batch)
        with store.engine.connect() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    finally:
        store.close()
    return mix


def count_jobs(path: Path) -> int:
    import sqlite3

    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return int(con.execute("SELECT count(*) FROM jobs").fetchone()[0])
    finally:
        con.close()


# ---------------------------------------------------------------------------
# figures


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100), nearest rank: p99 of 50 values is the maximum."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


@dataclass
class Table:
    title: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(self, figure: str, value: str, target: str = "", ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        self.rows.append((figure, value, target, verdict))

    def print(self) -> None:
        head = ("figure", "value", "target", "")
        widths = [max(len(r[i]) for r in [head, *self.rows]) for i in range(4)]
        print(f"\n{self.title}")
        line = "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
        print(line.rstrip())
        print("  ".join("-" * w for w in widths[:3]))
        for row in self.rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


if __name__ == "__main__" and sys.argv[1:2] == ["seed"]:  # seed_finished_jobs(python=…)
    _path, _n, _now, _seed = sys.argv[2:6]
    seed_finished_jobs(Path(_path), int(_n), now_us=int(_now), seed=int(_seed))
