"""borg's read-only archive commands, run for ListArchiveContents and DiffArchives.

These are calls, not jobs: a client waits for the answer.  borg runs through
the runner, with the passphrase on a pipe as jobs get it; a listing is indexed
in a worker thread.  A client waits at most `WAIT_S`; a longer read goes on,
and the call answers `Unavailable` saying so, so that the next call finds it
done.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Protocol

from borgd import errors
from borgd.core import borg_argv
from borgd.core.archives import ArchiveEntry, DiffEntry, parse_contents_line, parse_diff_line
from borgd.core.config import RepoConfig
from borgd.execution import listings
from borgd.execution.borg_tool import BorgNotFound, BorgTool
from borgd.execution.runner import LineSink, run_process
from borgd.offloop import call_with_timeout

WAIT_S = 20.0  # below D-Bus's default call timeout of 25 s
WRITE_TIMEOUT_S = 300.0  # indexing 1,000,000 entries takes seconds
DIFF_MEMORY = 200_000  # entries kept over the remembered diffs (some tens of MB)
DiffKey = tuple[str, str, str]


class BorgFinder(Protocol):
    async def find(self) -> BorgTool: ...


PassphraseSource = Callable[[RepoConfig], Awaitable[bytes | None]]


def _ok(code: int) -> bool:
    return code in (0, 1) or 100 <= code <= 127  # success or a warning


class _Stderr:
    """The last lines borg wrote to stderr, for the error message."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        del self.lines[:-20]

    def failure(self, what: str, code: int) -> str:
        last = self.lines[-1].strip() if self.lines else "no message"
        return f"borg could not {what} (exit code {code}): {last[:500]}"


class ArchiveReader:
    def __init__(
        self,
        *,
        borg: BorgFinder,
        passphrase: PassphraseSource,
        base_env: Mapping[str, str],
        cache_dir: Path,
    ) -> None:
        self.borg = borg
        self.passphrase = passphrase
        self.base_env = dict(base_env)
        self.cache_dir = cache_dir
        self._reads: dict[Path, asyncio.Future[None]] = {}
        # Archives never change: a diff between two (by borg id) stays true.  The
        # newest few are kept so later pages need no borg (nor its lock).
        self._diffs: OrderedDict[DiffKey, list[DiffEntry]] = OrderedDict()

    def listing_path(self, archive_id: str) -> Path:
        return self.cache_dir / "listings" / f"{archive_id}.sqlite"

    async def _prepare(self, repo: RepoConfig) -> tuple[BorgTool, dict[str, str], bytes | None]:
        try:
            tool = await self.borg.find()
        except BorgNotFound as exc:
            raise errors.Unavailable(str(exc)) from exc
        secret = None
        if repo.has_passphrase:
            try:
                secret = await self.passphrase(repo)
            except Exception as exc:
                raise errors.Unavailable(f"the passphrase is unavailable: {exc}") from exc
            if secret is None:
                raise errors.Unavailable(f"no passphrase stored for repository {repo.name}")
        return tool, borg_argv.borg_env(repo, self.base_env), secret

    async def _run(
        self, repo: RepoConfig, build: Callable[[BorgTool], tuple[str, ...]], on_line: LineSink
    ) -> tuple[int, _Stderr]:
        tool, env, secret = await self._prepare(repo)
        stderr = _Stderr()
        result = await run_process(
            build(tool), env=env, passphrase=secret, on_stderr=stderr, on_stdout=on_line
        )
        return result.returncode, stderr

    async def _fetch(self, repo: RepoConfig, archive: str, target: Path) -> None:
        zone = datetime.now().astimezone().tzinfo
        assert zone is not None
        entries: list[ArchiveEntry] = []

        def take(line: str) -> None:
            entry = parse_contents_line(line, zone)
            if entry is not None:
                entries.append(entry)

        code, stderr = await self._run(
            repo,
            lambda tool: borg_argv.contents_argv(
                repo, archive, borg=tool.path, version=tool.version
            ),
            take,
        )
        if not _ok(code):
            raise errors.Unavailable(stderr.failure(f"list archive {archive!r}", code))
        await call_with_timeout(
            lambda: listings.write_listing(target, entries), WRITE_TIMEOUT_S, "listing-write"
        )

    async def listing(self, repo: RepoConfig, archive: str, key: str) -> Path:
        """The listing file of an archive, read from borg the first time.  A read that
        takes longer than `WAIT_S` goes on after this call answers `Unavailable`."""
        target = self.listing_path(key)
        if target.exists():
            return target
        task = self._reads.get(target)
        if task is None:
            task = asyncio.ensure_future(self._fetch(repo, archive, target))
            self._reads[target] = task
            task.add_done_callback(lambda _t: self._reads.pop(target, None))
        try:
            await asyncio.wait_for(asyncio.shield(task), WAIT_S)
        except TimeoutError:
            raise errors.Unavailable(
                f"borgd is still reading the contents of {archive!r} from borg; "
                "call again in a while"
            ) from None
        return target

    def remembered_diff(self, key: DiffKey | None) -> list[DiffEntry] | None:
        """A diff computed before: (archive1 id, archive2 id, path)."""
        found = self._diffs.get(key) if key is not None else None
        if found is not None and key is not None:
            self._diffs.move_to_end(key)
        return found

    def _remember(self, key: DiffKey, found: list[DiffEntry]) -> None:
        self._diffs[key] = found
        while len(self._diffs) > 1 and sum(map(len, self._diffs.values())) > DIFF_MEMORY:
            self._diffs.popitem(last=False)  # the least recently read

    async def diff(
        self,
        repo: RepoConfig,
        archive1: str,
        archive2: str,
        path: str,
        key: DiffKey | None = None,
    ) -> list[DiffEntry]:
        """What changed from `archive1` to `archive2` (below `path`); remembered under
        `key` when given (the archives' borg ids and the path)."""
        found: list[DiffEntry] = []

        def take(line: str) -> None:
            entry = parse_diff_line(line)
            if entry is not None:
                found.append(entry)

        code, stderr = await self._run(
            repo,
            lambda tool: borg_argv.diff_argv(
                repo, archive1, archive2, path, borg=tool.path, version=tool.version
            ),
            take,
        )
        if not _ok(code):
            raise errors.Unavailable(stderr.failure("compare the archives", code))
        if key is not None:
            self._remember(key, found)
        return found
