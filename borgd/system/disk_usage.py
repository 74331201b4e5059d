"""How much disk a local repository takes, measured off the event loop.

A repository's folder may sit on a slow or hung mount, and walking a large
one takes a while.  `size` measures again only when the figure predates the
repository's last job, waits at most `WAIT_S` for that, and otherwise
answers with the last figure (0 = never measured) while the measurement
finishes on its own; a measurement still running is never started twice.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from borgd.core.config import local_path
from borgd.offloop import call_with_timeout

WAIT_S = 1.0  # walking a repository of 10,000 segment files takes ~50 ms here


def disk_usage(path: str) -> int:
    """Bytes allocated to the files under `path` (like `du -s --block-size=1`)."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:
                continue
    return total


@dataclass
class _Measure:
    size: int = 0
    as_of: int = -1  # the job time the size is from (-1: never measured)
    running: bool = False


class DiskUsage:
    def __init__(self) -> None:
        self._sizes: dict[str, _Measure] = {}

    async def repository(self, url: str, as_of: int) -> int:
        """A repository's size on disk as of its last job; 0 for a remote one."""
        path = local_path(url)
        return await self.size(path, as_of) if path else 0

    async def size(self, path: str, as_of: int) -> int:
        """The size of `path` as of the repository's last job (`as_of`)."""
        m = self._sizes.setdefault(path, _Measure())
        if m.as_of >= as_of or m.running:
            return m.size
        m.running = True

        def measure() -> None:
            try:
                m.size = disk_usage(path) if os.path.isdir(path) else 0
                m.as_of = as_of
            finally:
                m.running = False

        # On a timeout it goes on in its thread; a later call gets its figure.
        with contextlib.suppress(TimeoutError):
            await call_with_timeout(measure, WAIT_S, "disk-usage")
        return m.size
