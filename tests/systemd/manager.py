"""A throwaway user's `systemd --user`, and the commands a user would run against it.

Every command enters the holder's mount namespace (`nsenter -m`) and becomes
the user (`runuser`) with a clean environment like a session's: HOME,
XDG_RUNTIME_DIR, the session bus at $XDG_RUNTIME_DIR/bus (dbus.socket from
dbus-user-session), ~/.local/bin on PATH.
"""

from __future__ import annotations

import json
import pwd
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import _busctl_value, wait_until
from tests.systemd.host import SYSTEM_PATH, USER_MANAGER

UNIT = "borgd.service"


class CommandFailed(AssertionError):
    pass


@dataclass
class UserManager:
    user: pwd.struct_passwd
    holder_pid: int
    runtime_dir: Path
    cgroups: list[Path]
    manager_log: Path
    proc: subprocess.Popen[bytes] | None = None

    # -- paths a user knows -------------------------------------------------------------

    @property
    def home(self) -> Path:
        return Path(self.user.pw_dir)

    @property
    def unit_log(self) -> Path:
        """borgd's stderr (the test drop-in's StandardOutput=): there is no journal here."""
        return self.home / "borgd-unit.log"

    @property
    def results_log(self) -> Path:
        return self.home / "borgd-results.log"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {
            "HOME": str(self.home),
            "USER": self.user.pw_name,
            "LOGNAME": self.user.pw_name,
            "SHELL": "/bin/sh",
            "PATH": f"{self.home}/.local/bin:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={self.runtime_dir}/bus",
            **(extra or {}),
        }

    # -- running commands ---------------------------------------------------------------

    def in_namespace(self, argv: Iterable[str]) -> list[str]:
        return ["nsenter", "-t", str(self.holder_pid), "-m", "--", *argv]

    def as_user_argv(self, argv: Iterable[str], env: dict[str, str] | None = None) -> list[str]:
        pairs = [f"{k}={v}" for k, v in self.env(env).items()]
        return self.in_namespace(
            ["runuser", "-u", self.user.pw_name, "--", "env", "-i", *pairs, *argv]
        )

    def run(
        self,
        *argv: str,
        env: dict[str, str] | None = None,
        timeout: float = 60,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` as the user; with `check`, a non-zero exit fails the test with its output."""
        done = subprocess.run(
            self.as_user_argv(argv, env),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env={"PATH": SYSTEM_PATH},
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise CommandFailed(
                f"{' '.join(argv)} exited {done.returncode}\nstdout: {done.stdout}\n"
                f"stderr: {done.stderr}\n{self.diagnostics()}"
            )
        return done

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("systemctl", "--user", "--no-pager", *args, check=check)

    def show(self, *props: str, unit: str = UNIT) -> dict[str, str]:
        out = self.systemctl("show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def busctl(self, member: str, signature: str = "", *args: Any) -> Any:
        """Call org.borgd1.Manager with `busctl --user`, as a widget or a script would."""
        argv = ["busctl", "--user", "--json=short", "call", "org.borgd1", "/org/borgd1"]
        argv += ["org.borgd1.Manager", member]
        if signature:
            argv += [signature, *map(str, args)]
        done = self.run(*argv)
        data = _busctl_value(json.loads(done.stdout)["data"]) if done.stdout.strip() else []
        return data[0] if len(data) == 1 else data

    def bus_name_owner_pid(self) -> int:
        out = self.run("busctl", "--user", "status", "org.borgd1").stdout
        match = re.search(r"^PID=(\d+)$", out, re.MULTILINE)
        assert match, out
        return int(match.group(1))

    def borgctl(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.home / ".local/bin/borgctl"), *args, env=env, timeout=timeout)

    def borgctl_json(self, *args: str) -> Any:
        return json.loads(self.borgctl(*args, "--json").stdout)

    # -- the unit ---------------------------------------------------------------------------

    def wait_state(self, state: str, timeout: float, why: str) -> dict[str, str]:
        return wait_until(
            lambda: (
                (s := self.show("ActiveState", "SubState", "MainPID", "Result"))["ActiveState"]
                == state
                and s
            ),
            timeout,
            f"{UNIT} to be {state} ({why})",
        )

    def start_borgd(self) -> int:
        """Running and READY (Type=notify: `start` returns after READY=1); its MainPID."""
        self.systemctl("start", UNIT)
        state = self.show("ActiveState", "SubState", "MainPID")
        assert (state["ActiveState"], state["SubState"]) == ("active", "running"), state
        return int(state["MainPID"])

    def results(self) -> list[str]:
        """ "RESULT EXIT_CODE EXIT_STATUS" of each stop of borgd, oldest first.

        Written by the test drop-in's ExecStopPost= from $SERVICE_RESULT and
        friends: Result= itself is reset when systemd restarts the unit, and
        this manager has no journal to read it from afterwards.
        """
        try:
            return self.results_log.read_text().splitlines()
        except FileNotFoundError:
            return []

    def diagnostics(self) -> str:
        parts = []
        for name, path in (
            ("borgd's log", self.unit_log),
            ("stop results", self.results_log),
            ("manager log", self.manager_log),
        ):
            try:
                tail = path.read_text(errors="replace").splitlines()[-30:]
            except OSError:
                tail = ["(none)"]
            parts.append(f"--- {name} ({path}), last lines:\n" + "\n".join(tail))
        return "\n".join(parts)

    # -- the manager itself --------------------------------------------------------------

    def start(self) -> None:
        """Start the manager inside the delegated cgroups, then wait until it runs.

        The shell writes its own pid into each cgroup.procs before it becomes
        runuser, so the manager is born inside the cgroups its user owns.
        """
        enter = " && ".join(f"echo $$ > {cg}/cgroup.procs" for cg in self.cgroups)
        # What user@.service would give it: no PATH (systemd's default, without
        # ~/.local/bin: a login shell's PATH is not a service's), no bus address (it
        # sets its own once dbus.socket listens).
        manager_env = {
            k: v for k, v in self.env().items() if k not in ("PATH", "DBUS_SESSION_BUS_ADDRESS")
        }
        pairs = " ".join(f"'{k}={v}'" for k, v in manager_env.items())
        script = (
            f"{enter} && exec runuser -u {self.user.pw_name} -- env -i {pairs} "
            f"{USER_MANAGER} --user"
        )
        with open(self.manager_log, "wb") as log:
            self.proc = subprocess.Popen(
                self.in_namespace(["sh", "-c", script]),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={"PATH": SYSTEM_PATH},
            )

        def running() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"systemd --user exited {self.proc.returncode}:\n{self.diagnostics()}"
                )
            done = self.run("systemctl", "--user", "is-system-running", check=False)
            return done.stdout.strip() == "running" and (self.runtime_dir / "bus").exists()

        # A user manager is up in well under a second here; 30 s covers a loaded machine.
        wait_until(running, 30, "systemd --user to run", interval=0.2)

    def stop(self) -> None:
        """`systemctl --user exit` (stops every unit first); host.remove_cgroup kills leftovers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.run("systemctl", "--user", "exit", check=False, timeout=30)
            try:
                # The manager stops its units (borgd's TimeoutStopSec is 45 s at worst).
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
