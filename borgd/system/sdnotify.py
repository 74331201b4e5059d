"""systemd's notify protocol: READY, STATUS, WATCHDOG, STOPPING.

sdnotify swallows errors and encodes latin-1; we keep STATUS to ASCII and
compute the watchdog interval from WATCHDOG_USEC ourselves.
"""

from __future__ import annotations

import os

import anyio
import sdnotify


class SystemdNotifier:
    def __init__(self) -> None:
        self._notifier = sdnotify.SystemdNotifier()
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))

    def send(self, *lines: str) -> None:
        if self.enabled:
            self._notifier.notify("\n".join(lines))

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={_ascii(status)}", f"MAINPID={os.getpid()}")

    def status(self, text: str) -> None:
        self.send(f"STATUS={_ascii(text)}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def watchdog_interval(self) -> float | None:
        """Half of WATCHDOG_USEC when the watchdog is meant for us."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return max(int(usec) / 2_000_000, 0.05)
        except ValueError:
            return None

    async def feed_watchdog(self) -> None:
        interval = self.watchdog_interval()
        if interval is None:
            return
        while True:
            self.send("WATCHDOG=1")
            await anyio.sleep(interval)


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii").replace("\n", " ")
