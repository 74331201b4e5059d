"""borgctl's archive commands: archives, ls, diff, mount, umount, archive rm, stats.

Each is one D-Bus call (borgd holds the passphrases); `--json` prints what
the call answered.  Times and sizes are made readable only for people.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from borgd.cli import format as fmt
from borgd.cli.args import COUNT, IDENT
from borgd.cli.client import Client, v
from borgd.cli.format import emit_json

TYPE_CHECKING = False  # importing typing costs borgctl ~3 ms at start (cli/entry.py)
if TYPE_CHECKING:
    from typing import Any

    from borgd.cli.client import Arg

EXIT_OK = 0
CHART_WIDTH = 40


def _now() -> datetime:
    return datetime.now(UTC).astimezone()


def _as_list(rows: Any) -> list[dict[str, Any]]:
    return list(rows or [])


async def cmd_archives(c: Client, a: argparse.Namespace) -> int:
    flt: dict[str, Arg] = {}
    if a.profile:
        flt["profile"] = v("s", a.profile)
    if a.checkpoints:
        flt["checkpoints"] = v("b", True)
    rows = _as_list(await c.call("ListArchives", "sa{sv}", a.repo, flt))
    if a.json:
        emit_json(rows)
        return EXIT_OK
    now = _now()
    print(
        fmt.table(
            ("NAME", "PROFILE", "WHEN", "FILES", "SIZE", "ADDED", "JOB"),
            [
                (
                    r["name"] + (" (checkpoint)" if r["checkpoint"] else ""),
                    r["profile"] or "-",
                    fmt.human_time(r["start"], now),
                    r["nfiles"] or "-",
                    fmt.human_size(r["original_size"]) if r["original_size"] else "-",
                    fmt.human_size(r["deduplicated_size"]) if r["original_size"] else "-",
                    r["job_id"] or "-",
                )
                for r in rows
            ],
        )
    )
    return EXIT_OK


async def cmd_ls(c: Client, a: argparse.Namespace) -> int:
    opts: dict[str, Arg] = {"limit": v("u", a.limit), "offset": v("u", a.offset)}
    if a.recursive:
        opts["recursive"] = v("b", True)
    if a.pattern:
        opts["pattern"] = v("s", a.pattern)
    rows = _as_list(
        await c.call("ListArchiveContents", "sssa{sv}", a.repo, a.archive, a.path, opts)
    )
    if a.json:
        emit_json(rows)
        return EXIT_OK
    for r in rows:
        target = f" -> {r['target']}" if r["target"] else ""
        size = fmt.human_size(r["size"]) if r["type"] == "-" else ""
        print(f"{r['type']} {size:>9}  {r['path']}{target}")
    return EXIT_OK


async def cmd_diff(c: Client, a: argparse.Namespace) -> int:
    opts: dict[str, Arg] = {"limit": v("u", a.limit)}
    if a.path:
        opts["path"] = v("s", a.path)
    rows = _as_list(await c.call("DiffArchives", "sssa{sv}", a.repo, a.first, a.second, opts))
    if a.json:
        emit_json(rows)
        return EXIT_OK
    for r in rows:
        delta = r["size_delta"]
        shown = f"{'+' if delta >= 0 else '-'}{fmt.human_size(abs(delta))}" if delta else ""
        print(f"{','.join(r['changes']):<24} {shown:>10}  {r['path']}")
    return EXIT_OK


async def cmd_mount(c: Client, a: argparse.Namespace) -> int:
    job_id = await c.call("MountArchive", "sssa{sv}", a.repo, a.archive, a.dir, {})
    print(f"mounting as job {job_id}; unmount with: borgctl umount {job_id}")
    return EXIT_OK


async def cmd_umount(c: Client, a: argparse.Namespace) -> int:
    await c.call("UnmountArchive", "t", a.job)
    print(f"job {a.job}: unmounting")
    return EXIT_OK


async def cmd_archive(c: Client, a: argparse.Namespace) -> int:
    opts = {"force": v("b", True)} if a.force else {}
    job_id = await c.call("DeleteArchive", "ssa{sv}", a.repo, a.archive, opts)
    print(f"job {job_id} queued: delete {a.archive}")
    return EXIT_OK


def size_chart(rows: list[dict[str, Any]], width: int = CHART_WIDTH) -> list[str]:
    """One bar per backup: what it added (deduplicated size), scaled to the largest."""
    largest = max((r["deduplicated_size"] for r in rows), default=0) or 1
    lines = []
    for r in rows:
        n = r["deduplicated_size"]
        bar = "#" * max(1 if n else 0, round(n / largest * width))
        when = fmt.iso_time(r["finished_at"]) or "-"
        lines.append(f"{when[:16]}  {bar:<{width}}  {fmt.human_size(n)}")
    return lines


async def cmd_stats(c: Client, a: argparse.Namespace) -> int:
    rows = _as_list(await c.call("RepositoryStats", "st", a.repo, 0))
    if a.json:
        emit_json(rows)
        return EXIT_OK
    if not rows:
        print(f"no backups of {a.repo} yet")
        return EXIT_OK
    print(f"deduplicated size added per backup ({a.repo}):")
    print("\n".join(size_chart(rows)))
    last = rows[-1]["repository_size"]
    if last:
        print(f"repository size after the last backup: {fmt.human_size(last)}")
    return EXIT_OK


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("archives", help="a repository's archives, newest first")
    p.add_argument("repo")
    p.add_argument("--profile")
    p.add_argument("--checkpoints", action="store_true", help="also checkpoint archives")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("ls", help="what an archive holds")
    p.add_argument("repo")
    p.add_argument("archive")
    p.add_argument("path", nargs="?", default="", help="a folder in the archive (default: top)")
    p.add_argument("-r", "--recursive", action="store_true")
    p.add_argument("--pattern", help="shell pattern on the whole path")
    p.add_argument("--offset", type=COUNT, default=0)
    p.add_argument("--limit", type=COUNT, default=1000)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("diff", help="what changed between two archives")
    p.add_argument("repo")
    p.add_argument("first")
    p.add_argument("second")
    p.add_argument("--path", help="only below this path in the archives")
    p.add_argument("--limit", type=COUNT, default=10000)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("mount", help="mount an archive (or every archive) as files")
    p.add_argument("repo")
    p.add_argument("archive", nargs="?", default="")
    p.add_argument("dir", nargs="?", default="", help="default $XDG_RUNTIME_DIR/borgd/mnt/…")

    p = sub.add_parser("umount", help="unmount what a mount job mounted")
    p.add_argument("job", type=IDENT)

    p = sub.add_parser("archive", help="archives: rm")
    asub = p.add_subparsers(dest="action", required=True)
    rm = asub.add_parser("rm", help="delete one archive (a delete job)")
    rm.add_argument("repo")
    rm.add_argument("archive")
    rm.add_argument("--force", action="store_true", help="even a profile's newest backup")

    p = sub.add_parser("stats", help="size per backup, as a chart")
    p.add_argument("repo")
    p.add_argument("--json", action="store_true")


COMMANDS = {
    "archives": cmd_archives,
    "ls": cmd_ls,
    "diff": cmd_diff,
    "mount": cmd_mount,
    "umount": cmd_umount,
    "archive": cmd_archive,
    "stats": cmd_stats,
}
