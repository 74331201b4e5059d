"""A private mount namespace for tests that mount: the host's mount table never changes.

`unshare --mount --propagation private` gives a copy of the host's mount tree
in which mounts made later stay private (and host mounts made later do not
come in).  A sleeping process holds the namespace open; `enter` runs a command
inside it (nsenter), and `path` reaches a file in it from outside through
/proc/PID/root.  Mounting needs CAP_SYS_ADMIN: root has it; another user gets
it in a user namespace of its own (`--map-root-user`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import wait_until


def unshare_argv() -> list[str]:
    """The unshare command line of a private mount namespace for this user."""
    argv = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        argv.insert(1, "--map-root-user")
    return argv


class MountNamespace:
    """A private mount namespace held open by `sleep infinity` (see the module docstring)."""

    def __init__(self) -> None:
        self._own = os.readlink("/proc/self/ns/mnt")
        self.holder = subprocess.Popen(
            [*unshare_argv(), "sleep", "infinity"],
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        pid = self.holder.pid
        # unshare execs sleep once the namespace exists: wait for that, or its refusal.
        wait_until(
            lambda: self.holder.poll() is not None or self._inside(pid),
            10,
            "the private mount namespace",
        )
        if self.holder.poll() is not None:
            assert self.holder.stderr is not None
            raise AssertionError(f"unshare failed: {self.holder.stderr.read().strip()}")

    def _inside(self, pid: int) -> bool:
        try:
            return os.readlink(f"/proc/{pid}/ns/mnt") != self._own
        except OSError:
            return False

    @property
    def enter(self) -> Sequence[str]:
        """A command prefix that runs a program inside the namespace (same working dir)."""
        return ["nsenter", f"--target={self.holder.pid}", "--mount", f"--wd={os.getcwd()}", "--"]

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.enter, *argv], capture_output=True, text=True, timeout=30, check=False
        )

    def mount_tmpfs(self, target: Path, options: str) -> None:
        target.mkdir(parents=True, exist_ok=True)
        res = self.run("mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target))
        assert res.returncode == 0, f"mount in the private namespace failed: {res.stderr}"

    def path(self, inside: Path) -> Path:
        """`inside` as the namespace sees it, reachable from the test's own namespace."""
        return Path(f"/proc/{self.holder.pid}/root") / Path(inside).resolve().relative_to("/")

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait(10)
        if self.holder.stderr is not None:
            self.holder.stderr.close()


@contextmanager
def private_mounts() -> Iterator[MountNamespace]:
    ns = MountNamespace()
    try:
        yield ns
    finally:
        ns.close()
