"""Which borg a job runs, looked up for every job.

borg may be installed after borgd started, removed, or upgraded under it
(Debian's 1.2 replaced by 1.4 from pip): each job looks for it again on PATH
(or takes `--borg` / $BORGD_BORG), and asks `borg --version` again only when
the binary found is another file or was changed since it last asked.  The
default `borg` is also looked for in ~/.local/bin after PATH: systemd gives
user services its own PATH, without it, and that is where users (the README,
pipx) put borg beside borgd and borgctl.  The
look-up and the version question run in a worker thread with a time limit, so
a PATH entry on a hung mount never stalls the event loop.

A job runs the file it identified (the link resolved), not the name: an
upgrade that swaps the link between the look-up and the start of borg would
otherwise run the new borg with the old one's version, never asked.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import structlog

from borgd.execution.runner import program_version
from borgd.offloop import call_with_timeout

log = structlog.get_logger(__name__)

FIND_TIMEOUT_S = 30.0  # `borg --version` takes ~0.3 s; a hung PATH entry gets this long


@dataclass(frozen=True)
class BorgTool:
    path: str  # the file that was identified and asked its version: what jobs execute
    version: tuple[int, int, int]


class BorgNotFound(Exception):
    """borg cannot be run; the message names what was looked for and where."""


@dataclass(frozen=True)
class _Identity:
    path: str  # the file behind the name found on PATH, links resolved
    inode: int
    size: int
    mtime_ns: int


class BorgLocator:
    def __init__(self, candidate: str, search_path: str | None = None) -> None:
        self.candidate = candidate
        self.search_path = search_path  # None: $PATH as it is when a job starts
        self._known: tuple[_Identity, BorgTool] | None = None

    def _where(self) -> str:
        path = self.search_path if self.search_path is not None else os.environ.get("PATH", "")
        if self.candidate == "borg":
            path = f"{path}:{Path.home() / '.local' / 'bin'}".lstrip(":")
        return path

    def _identify(self) -> _Identity | None:
        found = shutil.which(self.candidate, path=self._where())
        if found is None:
            return None
        resolved = os.path.realpath(found)  # resolved once: what is stat'ed is what runs
        try:
            st = os.stat(resolved)
        except OSError:
            return None
        return _Identity(resolved, st.st_ino, st.st_size, st.st_mtime_ns)

    def _find(self) -> BorgTool:
        identity = self._identify()
        if identity is None and "/" in self.candidate:
            raise BorgNotFound(
                f"borg was not found: {self.candidate} does not exist or is not executable "
                "(named by --borg or $BORGD_BORG)"
            )
        if identity is None:
            raise BorgNotFound(
                f"borg was not found ({self.candidate!r} is not an executable file "
                f"in PATH={self._where()}); install BorgBackup, or start borgd with "
                "--borg PATH or $BORGD_BORG"
            )
        if self._known is not None and self._known[0] == identity:
            return self._known[1]
        version = program_version(identity.path)
        if version is None:
            raise BorgNotFound(f"{identity.path} does not run: '{identity.path} --version' failed")
        tool = BorgTool(identity.path, version)
        log.info(
            "borg.found", name=self.candidate, path=tool.path, version=".".join(map(str, version))
        )
        self._known = (identity, tool)
        return tool

    async def find(self) -> BorgTool:
        """The borg to run now; raises BorgNotFound with a message for the job."""
        try:
            return await call_with_timeout(self._find, FIND_TIMEOUT_S, "borg-lookup")
        except TimeoutError:
            raise BorgNotFound(
                f"looking for borg ({self.candidate!r}) did not finish in {FIND_TIMEOUT_S:g} s "
                "(a folder in PATH on a hung mount?)"
            ) from None


class FixedBorg:
    """A borg known in advance (tests, benchmarks): no look-up."""

    def __init__(self, tool: BorgTool) -> None:
        self.tool = tool

    async def find(self) -> BorgTool:
        return self.tool
