"""The one place that starts processes: borg and the profile's hooks.

borg gets an argument vector (never a shell), stdin from /dev/null, a new
session (so it can never wait on our terminal for a passphrase), and the
passphrase through an anonymous pipe named by BORG_PASSPHRASE_FD.  stderr
and stdout are read in chunks and split into lines here; callers get lines.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import anyio
import anyio.abc
import structlog

log = structlog.get_logger(__name__)

LineSink = Callable[[str], None]
CHUNK = 65536
MAX_LINE = 1 << 20  # a line longer than this is cut: borg never prints such lines
DRAIN_GRACE = 2.0  # seconds to read what is left in the pipes after the process exited


@dataclass
class StopPolicy:
    """How to stop a process: first signal, then SIGTERM and SIGKILL after bounded waits."""

    first: signal.Signals = signal.SIGTERM
    grace: float = 10.0  # after the first signal
    term_grace: float = 5.0  # after SIGTERM, before SIGKILL
    # Signal the whole session the process leads (a hook and what it started), not
    # just the process.  Never for borg: DESIGN says signal borg, not its group.
    group: bool = False
    # A `borg mount --foreground`: stop it by unmounting (it then exits 0); a signal
    # would end borg and leave the mount behind, dead ("Transport endpoint is not
    # connected").
    unmount: str | None = None


@dataclass
class RunningProcess:
    """Handle given to the caller while a process runs, to stop it or read its pid."""

    pid: int
    start_time: int
    policy: StopPolicy
    _process: anyio.abc.Process
    stop_requested: bool = False
    signals: list[str] = field(default_factory=list)  # what it was sent, in order
    _stopper_started: bool = field(default=False, repr=False)

    def send(self, sig: signal.Signals) -> None:
        """Signal the process (or, with `policy.group`, its process group)."""
        if self._process.returncode is None:
            self.signals.append(sig.name)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if self.policy.group:
                    # The process leads its own session and group (start_new_session).
                    os.killpg(self.pid, sig)
                else:
                    os.kill(self.pid, sig)


@dataclass(frozen=True)
class RunResult:
    returncode: int
    stdout: str
    stopped: bool  # a stop was requested (cancel, shutdown or timeout) while it ran
    timed_out: bool = False


def process_start_time(pid: int) -> int:
    """Field 22 of /proc/PID/stat (clock ticks since boot): with the pid, names a process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0
    # The command name may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return 0


def process_matches(pid: int, start_time: int) -> bool:
    return pid > 0 and start_time > 0 and process_start_time(pid) == start_time


async def _pump_lines(stream: anyio.abc.ByteReceiveStream | None, sink: LineSink) -> None:
    if stream is None:
        return
    pending = b""
    async for chunk in stream:
        pending += chunk
        if b"\n" not in pending:
            if len(pending) > MAX_LINE:
                sink(pending.decode("utf-8", "replace"))
                pending = b""
            continue
        *lines, pending = pending.split(b"\n")
        for line in lines:
            sink(line.decode("utf-8", "replace"))
    if pending:
        sink(pending.decode("utf-8", "replace"))


async def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    passphrase: bytes | None = None,
    on_stderr: LineSink,
    on_stdout: LineSink | None = None,
    policy: StopPolicy | None = None,
    on_started: Callable[[RunningProcess], None] | None = None,
    timeout: float | None = None,
) -> RunResult:
    """Run argv to completion; stdout is collected (and passed line by line if asked).

    Cancelling the calling scope stops the process with `policy` before returning.
    """
    policy = policy or StopPolicy()
    child_env = dict(env)
    pass_fds: tuple[int, ...] = ()
    read_fd = write_fd = -1
    if passphrase is not None:
        read_fd, write_fd = os.pipe()
        os.set_inheritable(read_fd, True)
        child_env["BORG_PASSPHRASE_FD"] = str(read_fd)
        pass_fds = (read_fd,)
    stdout_lines: list[str] = []

    def collect(line: str) -> None:
        stdout_lines.append(line)
        if on_stdout is not None:
            on_stdout(line)

    try:
        # Never cancelled half-way: asyncio would leave a half-made subprocess transport
        # whose late clean-up closes file descriptors that are reused by then (seen under
        # load as the D-Bus socket going away).  A stop that comes meanwhile is served by
        # the first await after the spawn, with the handle in hand.
        with anyio.CancelScope(shield=True):
            process = await anyio.open_process(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=child_env,
                start_new_session=True,
                pass_fds=pass_fds,
            )
    except BaseException:
        if write_fd >= 0:
            os.close(write_fd)
        raise
    finally:
        if read_fd >= 0:
            os.close(read_fd)
    if write_fd >= 0:
        # A passphrase is far below the pipe's buffer: this never blocks.
        assert passphrase is not None
        try:
            os.write(write_fd, passphrase)
        finally:
            os.close(write_fd)

    handle = RunningProcess(
        pid=process.pid,
        start_time=process_start_time(process.pid),
        policy=policy,
        _process=process,
    )
    if on_started is not None:
        try:
            on_started(handle)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await stop_process(handle)
                await process.aclose()
            raise
    timed_out = False
    pumps_done = anyio.Event()
    pending = [2]

    async def pump(stream: anyio.abc.ByteReceiveStream | None, sink: LineSink) -> None:
        try:
            await _pump_lines(stream, sink)
        finally:
            pending[0] -= 1
            if not pending[0]:
                pumps_done.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump, process.stderr, on_stderr)
            tg.start_soon(pump, process.stdout, collect)
            if timeout is not None:
                with anyio.move_on_after(timeout) as scope:
                    await process.wait()
                if scope.cancelled_caught:
                    timed_out = True
                    await stop_process(handle)
            await process.wait()
            # borg's pipes close when it exits; a hook may leave a background child that
            # holds them open: read what is there, then stop waiting for the rest.
            with anyio.move_on_after(DRAIN_GRACE):
                await pumps_done.wait()
            tg.cancel_scope.cancel()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await stop_process(handle)
            await process.aclose()
        raise
    await process.aclose()
    rc = process.returncode if process.returncode is not None else -1
    return RunResult(
        returncode=rc,
        stdout="\n".join(stdout_lines),
        stopped=handle.stop_requested or timed_out,
        timed_out=timed_out,
    )


async def unmount(mountpoint: str, *, lazy: bool = False) -> bool:
    """`fusermount3 -u` (FUSE 2's `fusermount` if that is what there is); True if it
    unmounted.  `lazy` detaches a mount whose process is gone."""
    for tool in ("fusermount3", "fusermount"):
        argv = [tool, "-u", *(["-z"] if lazy else []), mountpoint]
        try:
            result = await anyio.run_process(
                argv, check=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        except OSError:
            continue  # not installed: try the other
        return result.returncode == 0
    return False


def is_mounted(mountpoint: str) -> bool:
    """`mountpoint` is in this process's mount table (no stat: a dead FUSE mount hangs)."""
    target = os.path.abspath(mountpoint)  # never realpath: it would stat a hung mount
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as table:
            return any(line.split()[4].replace("\\040", " ") == target for line in table)
    except OSError:
        return False


async def stop_process(handle: RunningProcess) -> None:
    """First signal, then SIGTERM, then SIGKILL, each after a bounded wait; a mount is
    unmounted first, and detached at the end if it outlived its process."""
    proc = handle._process
    if proc.returncode is not None:
        return  # it ended on its own: its outcome is its own, not a stop's
    handle.stop_requested = True
    mountpoint = handle.policy.unmount
    if mountpoint is not None:
        handle.signals.append("unmount")
        await unmount(mountpoint)
        with anyio.move_on_after(handle.policy.grace):
            await proc.wait()
        if proc.returncode is not None:
            return
    steps = (
        (handle.policy.first, handle.policy.grace),
        (signal.SIGTERM, handle.policy.term_grace),
        (signal.SIGKILL, 5.0),
    )
    for sig, grace in steps:
        if proc.returncode is not None:
            return
        handle.send(sig)
        with anyio.move_on_after(grace):
            await proc.wait()
    if proc.returncode is None:
        log.error("process.unkillable", pid=handle.pid)
    if mountpoint is not None and is_mounted(mountpoint):
        await unmount(mountpoint, lazy=True)


def request_stop(handle: RunningProcess, tg: anyio.abc.TaskGroup) -> None:
    """Start stopping a running process in the background (cancel, shutdown)."""
    if handle._stopper_started:
        return
    handle._stopper_started = True
    tg.start_soon(stop_process, handle)


def program_version(path: str, timeout: float = 30) -> tuple[int, int, int] | None:
    """`PATH --version` as (major, minor, patch); None when it cannot be run.

    Blocking: callers run it in a worker thread.
    """
    try:
        out = subprocess.run(
            [path, "--version"],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.error("program.not_runnable", program=path, error=str(exc))
        return None
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))
