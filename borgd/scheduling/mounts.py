"""Notice mounts and unmounts, so a job waiting for a removable disk starts when it appears.

``/proc/self/mountinfo`` is pollable: a mount or an unmount in the daemon's
mount namespace marks it with ``POLLPRI`` (proc(5)).  A worker thread waits
on it with ``poll(2)`` — no timeout, so no periodic wakeups — together with
a pipe that ends the wait on shutdown, and calls ``on_change`` in the event
loop.  This covers UDisks2, fstab automounts and a manual ``mount`` alike,
without a D-Bus dependency.  Where the file cannot be polled the watcher logs
that once and does nothing: a held-back job then starts at the next wakeup
of the scheduler for another reason.
"""

from __future__ import annotations

import contextlib
import os
import select
from collections.abc import Callable
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import structlog

MOUNTINFO = "/proc/self/mountinfo"


def _log() -> Any:
    return structlog.get_logger(__name__)


class MountWatcher:
    def __init__(self, on_change: Callable[[], None], path: str = MOUNTINFO) -> None:
        self.on_change = on_change
        self.path = path
        self.changes = 0

    def _wait_loop(self, fd: int, stop_fd: int) -> None:
        """The worker thread: owns ``fd`` and ``stop_fd`` and closes them on its way out."""
        try:
            poller = select.poll()
            poller.register(fd, select.POLLPRI | select.POLLERR)
            poller.register(stop_fd, select.POLLIN)
            while True:
                events = poller.poll()
                if any(efd == stop_fd for efd, _ in events):
                    return
                # Reading the table to its end re-arms the notification.
                os.lseek(fd, 0, os.SEEK_SET)
                while os.read(fd, 65536):
                    pass
                self.changes += 1
                try:
                    anyio.from_thread.run_sync(self._changed)
                except RuntimeError:  # the event loop is gone: the daemon is stopping
                    return
        finally:
            os.close(fd)
            os.close(stop_fd)

    def _changed(self) -> None:
        _log().debug("mounts.changed")
        try:
            self.on_change()
        except Exception:
            _log().exception("mounts.on_change_failed")

    async def run(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            while os.read(fd, 65536):  # consume the current table first
                pass
        except OSError as exc:
            _log().info("mounts.not_watched", path=self.path, error=str(exc))
            await anyio.sleep_forever()
            return
        stop_r, stop_w = os.pipe2(os.O_CLOEXEC)
        try:
            await anyio.to_thread.run_sync(self._wait_loop, fd, stop_r, abandon_on_cancel=True)
        finally:
            with contextlib.suppress(OSError):
                os.write(stop_w, b"x")  # ends the thread's poll()
            os.close(stop_w)
