"""Is a local repository's folder there?  Asked off the event loop, with a time limit.

A repository on an NFS or a removable disk that went away can make `stat`
hang for minutes.  The scheduler asks before due jobs start: each folder is
looked at in a worker thread; one that does not answer within
``PROBE_TIMEOUT_S`` counts as unavailable, and while its thread is still
stuck no second one is started for it (the answer is "unavailable" until the
stuck one returns).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import anyio
import structlog

from borgd.offloop import call_with_timeout

log = structlog.get_logger(__name__)

PROBE_TIMEOUT_S = 2.0


class PathProbe:
    def __init__(self, timeout: float = PROBE_TIMEOUT_S, *, in_thread: bool = True) -> None:
        self.timeout = timeout
        # Tests that wait for "all tasks blocked" look in the loop (a thread looks blocked).
        self.in_thread = in_thread
        self.unavailable: set[str] = set()
        self._stuck: set[str] = set()

    async def _is_dir(self, path: str) -> bool:
        if not self.in_thread:
            return os.path.isdir(path)
        if path in self._stuck:
            return False
        self._stuck.add(path)
        try:
            return await call_with_timeout(lambda: self._look(path), self.timeout, "path-probe")
        except TimeoutError:
            log.warning("repository.path_hangs", path=path, timeout_s=self.timeout)
            return False

    def _look(self, path: str) -> bool:
        try:
            return os.path.isdir(path)
        finally:
            self._stuck.discard(path)  # the thread came back, however late

    async def refresh(self, paths: Iterable[str]) -> None:
        """Look at every path (in parallel); ``unavailable`` then names the missing."""
        found: dict[str, bool] = {}

        async def one(path: str) -> None:
            found[path] = await self._is_dir(path)

        async with anyio.create_task_group() as tg:
            for path in set(paths):
                tg.start_soon(one, path)
        self.unavailable = {p for p, ok in found.items() if not ok}
