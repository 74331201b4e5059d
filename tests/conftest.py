"""Shared fixtures: private buses, a temporary XDG tree, borgd as a real process.

Every end-to-end test gets its own session and system dbus-daemon, so a
daemon left behind by a failed test cannot disturb the next one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def borg_binary() -> str:
    found = shutil.which("borg", path=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    assert found, "borg is not installed: run scripts/bootstrap.sh --test"
    return found


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def bus_config(listen: str, kind: str = "session") -> str:
    """A dbus-daemon configuration that lets the tests own and see everything."""
    return f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>{kind}</type>
  <listen>{listen}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


def start_dbus_daemon(tmp: Path, name: str) -> tuple[subprocess.Popen[str], str]:
    config = tmp / f"{name}.conf"
    config.write_text(bus_config(f"unix:dir={tmp}"))
    proc = subprocess.Popen(
        ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    address = proc.stdout.readline().strip()
    assert address, f"dbus-daemon for {name} did not start"
    return proc, address


@dataclass
class Buses:
    session: str
    system: str
    procs: list[subprocess.Popen[str]] = field(default_factory=list)


@pytest.fixture
def buses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Buses]:
    tmp = tmp_path_factory.mktemp("bus")
    s_proc, s_addr = start_dbus_daemon(tmp, "session")
    y_proc, y_addr = start_dbus_daemon(tmp, "system")
    yield Buses(s_addr, y_addr, [s_proc, y_proc])
    for proc in (s_proc, y_proc):
        proc.terminate()
        proc.wait(5)


@dataclass
class Env:
    """The environment a user's session would give borgd, borgctl and busctl."""

    vars: dict[str, str]
    home: Path

    @property
    def state_dir(self) -> Path:
        return Path(self.vars["XDG_STATE_HOME"]) / "borgd"


@pytest.fixture
def session_env(tmp_path: Path, buses: Buses) -> Env:
    home = tmp_path / "home"
    for sub in ("state", "config", "runtime"):
        (home / sub).mkdir(parents=True)
    (home / "runtime").chmod(0o700)
    env = {
        k: v
        for k, v in os.environ.items()
        # Nothing of the host's own session or borg setup leaks in (BORGD_BORG included).
        if not k.startswith(
            ("DBUS_", "XDG_", "NOTIFY_", "WATCHDOG_", "BORG_", "BORGD_", "JOURNAL_")
        )
    }
    env.update(
        HOME=str(home),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_RUNTIME_DIR=str(home / "runtime"),
        DBUS_SESSION_BUS_ADDRESS=buses.session,
        DBUS_SYSTEM_BUS_ADDRESS=buses.system,
        PATH=f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        LANG="C.UTF-8",
        PYTHONUNBUFFERED="1",
    )
    return Env(env, home)


class NotifySocket:
    """A NOTIFY_SOCKET the test owns: collects what borgd tells systemd."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[str] = []

    def drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, BlockingIOError):
                return
            self.messages.extend(data.decode().splitlines())

    def wait_for(self, line: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.drain()
            if line in self.messages:
                return True
        return False

    def close(self) -> None:
        self.sock.close()


@dataclass
class Daemon:
    proc: subprocess.Popen[str]
    notify: NotifySocket
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 15) -> None:
        if not self.notify.wait_for("READY=1", timeout):
            raise AssertionError(f"borgd did not send READY=1; its log:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@pytest.fixture
def start_borgd(session_env: Env, tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(
        *args: str,
        env: dict[str, str] | None = None,
        ready: bool = True,
        wrap: Sequence[str] = (),
    ) -> Daemon:
        """Start borgd with `args`; `wrap` is a command it runs under (e.g. nsenter)."""
        n = len(started)
        notify = NotifySocket(tmp_path / f"notify-{n}.sock")
        log_path = tmp_path / f"borgd-{n}.log"
        penv = {**session_env.vars, "NOTIFY_SOCKET": str(notify.path), **(env or {})}
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [*wrap, sys.executable, "-m", "borgd.daemon", *args],
                env=penv,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                stdin=subprocess.DEVNULL,
            )
        daemon = Daemon(proc, notify, log_path)
        started.append(daemon)
        if ready:
            daemon.wait_ready()
        return daemon

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(10)
        daemon.notify.close()


class BusctlError(Exception):
    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{name}: {text}")
        self.name = name
        self.text = text


def _busctl_value(data: Any) -> Any:
    """busctl --json=short wraps every variant as {"type": .., "data": ..}."""
    if isinstance(data, dict):
        if set(data) == {"type", "data"}:
            return _busctl_value(data["data"])
        return {k: _busctl_value(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_busctl_value(v) for v in data]
    return data


@pytest.fixture
def busctl(session_env: Env) -> Callable[..., Any]:
    """Call org.borgd1.Manager through `busctl --user`, the real client."""

    def call(
        member: str,
        signature: str = "",
        *args: Any,
        path: str = "/org/borgd1",
        interface: str = "org.borgd1.Manager",
    ) -> Any:
        argv = ["busctl", "--user", "--json=short", "call", "org.borgd1", path, interface, member]
        if signature:
            argv += [signature, *map(str, args)]
        res = subprocess.run(
            argv, env=session_env.vars, capture_output=True, text=True, timeout=30
        )
        if res.returncode != 0:
            err = res.stderr.strip()
            name = ""
            for candidate in (
                "NotFound",
                "InvalidArgument",
                "AlreadyExists",
                "InvalidState",
                "Unavailable",
            ):
                if f"org.borgd1.Error.{candidate}" in err:
                    name = f"org.borgd1.Error.{candidate}"
            raise BusctlError(name or "unknown", err)
        if not res.stdout.strip():
            return None
        data = json.loads(res.stdout)["data"]
        data = _busctl_value(data)
        return data[0] if len(data) == 1 else data

    return call


@pytest.fixture
def borgctl(session_env: Env) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(
        *args: str,
        input: str | None = None,
        timeout: float = 120,
        env_extra: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "borgd.cli.main", *args],
            env={**session_env.vars, **(env_extra or {})},
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )

    return run


@pytest.fixture
def complete(
    borgctl: Callable[..., subprocess.CompletedProcess[str]], session_env: Env, tmp_path: Path
) -> Callable[..., list[str]]:
    """Tab completion as bash-completion runs it: `complete("ls", "r", "web-")` gives
    what `borgctl ls r web-<Tab>` offers.  The script is `borgctl completion bash`;
    the `borgctl` it runs for names is this checkout's, through a shim on PATH."""
    script = borgctl("completion", "bash").stdout
    bin_dir = tmp_path / "complete-bin"
    bin_dir.mkdir()
    shim = bin_dir / "borgctl"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m borgd.cli.main "$@"\n')
    shim.chmod(0o755)
    env = {**session_env.vars, "PATH": f"{bin_dir}:{session_env.vars['PATH']}"}

    def run(*words: str) -> list[str]:
        probe = "COMP_WORDS=(borgctl " + " ".join(f"'{w}'" for w in words) + ")"
        probe += f"; COMP_CWORD={len(words)}; _borgctl; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        done = subprocess.run(
            ["bash", "-c", script + "\n" + probe], env=env, capture_output=True, text=True
        )
        return done.stdout.split()

    return run


def make_tree(root: Path, files: int, size: int = 200) -> Path:
    """A source folder of `files` small files in a few subfolders."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        sub = root / f"d{i % 7}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i}.txt").write_bytes(os.urandom(size // 2).hex().encode()[:size])
    return root


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def borg_json(*args: str, env: dict[str, str] | None = None) -> Any:
    res = subprocess.run(
        [borg_binary(), *args, "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes", **(env or {})},
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.fixture
def gdbus(session_env: Env) -> Callable[..., str]:
    """Call a Manager method with `gdbus` (GVariant text arguments).

    busctl prints only an error's message; gdbus also names it, so tests of
    `org.borgd1.Error.*` use this real client.
    """

    def call(member: str, *args: str, path: str = "/org/borgd1") -> str:
        res = subprocess.run(
            [
                "gdbus",
                "call",
                "--session",
                "--dest",
                "org.borgd1",
                "--object-path",
                path,
                "--method",
                f"org.borgd1.Manager.{member}",
                *args,
            ],
            env=session_env.vars,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if res.returncode != 0:
            err = res.stderr.strip()
            marker = "GDBus.Error:"
            if marker in err:
                name, _, text = err.split(marker, 1)[1].partition(": ")
                raise BusctlError(name, text)
            raise BusctlError("unknown", err)
        return res.stdout.strip()

    return call
