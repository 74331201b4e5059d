"""borgctl notify: add, list, rm, test, log — notifiers and their deliveries.

A notifier's URL carries tokens: `notify add NAME -` reads it from stdin and
`--url-env VAR` from the environment, so it stays out of the shell's history
and out of the process list; borgd keeps it like a passphrase and never
shows it again (`list` shows the host only).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime

from borgd.cli import format as fmt
from borgd.cli.args import COUNT
from borgd.cli.client import Client, UsageError, v
from borgd.cli.format import emit_json

TYPE_CHECKING = False  # importing typing costs borgctl ~3 ms at start (cli/entry.py)
if TYPE_CHECKING:
    from typing import Any

    from borgd.cli.client import Arg

EXIT_OK = 0


def _url(a: argparse.Namespace) -> str:
    if a.url_env:
        if a.url not in (None, ""):
            raise UsageError("give the URL or --url-env, not both")
        found = os.environ.get(a.url_env)
        if found is None:
            raise UsageError(f"${a.url_env} is not set")
        return found
    if a.url == "-":
        return sys.stdin.readline().strip()
    if not a.url:
        raise UsageError("give the notifier's URL, - to read it from stdin, or --url-env VAR")
    return str(a.url)


def _options(a: argparse.Namespace) -> dict[str, Arg]:
    opts: dict[str, Arg] = {}
    if a.kind:
        opts["kind"] = v("s", a.kind)
    if a.event:
        opts["events"] = v("as", a.event)
    if a.profile is not None:
        opts["profiles"] = v("as", a.profile)
    if getattr(a, "disable", False):
        opts["enabled"] = v("b", False)
    if getattr(a, "enable", False):
        opts["enabled"] = v("b", True)
    return opts


async def cmd_notify(c: Client, a: argparse.Namespace) -> int:
    if a.action == "add":
        new_id = await c.call("AddNotifier", "ssa{sv}", a.name, _url(a), _options(a))
        print(f"notifier {a.name} added (id {new_id})")
    elif a.action == "edit":
        opts = _options(a)
        if a.url or a.url_env:
            opts["url"] = v("s", _url(a))
        await c.call("UpdateNotifier", "sa{sv}", a.name, opts)
    elif a.action == "rm":
        await c.call("RemoveNotifier", "s", a.name)
    elif a.action == "test":
        delivery = await c.call("TestNotifier", "s", a.name)
        print(f"test message queued (delivery {delivery}); see: borgctl notify log")
    elif a.action == "list":
        rows = list(await c.call("ListNotifiers", "") or [])
        if a.json:
            emit_json(rows)
            return EXIT_OK
        print(
            fmt.table(
                ("NAME", "KIND", "HOST", "EVENTS", "PROFILES", "ENABLED"),
                [
                    (
                        r["name"],
                        r["kind"],
                        r["host"] or "-",
                        ",".join(r["events"]),
                        ",".join(r["profiles"]) or "(all)",
                        "yes" if r["enabled"] else "no",
                    )
                    for r in rows
                ],
            )
        )
    else:  # log
        flt: dict[str, Arg] = {"limit": v("u", a.limit)}
        if a.name:
            flt["notifier"] = v("s", a.name)
        if a.status:
            flt["status"] = v("s", a.status)
        rows = list(await c.call("ListDeliveries", "a{sv}", flt) or [])
        if a.json:
            emit_json(rows)
            return EXIT_OK
        now = datetime.now(UTC).astimezone()
        print(
            fmt.table(
                ("ID", "NOTIFIER", "EVENT", "JOB", "STATUS", "TRIES", "WHEN", "ERROR"),
                [_log_row(r, now) for r in rows],
            )
        )
    return EXIT_OK


def _log_row(r: dict[str, Any], now: datetime) -> tuple[Any, ...]:
    return (
        r["id"],
        r["notifier"],
        r["event"],
        r["job_id"] or "-",
        r["status"],
        r["attempts"],
        fmt.human_time(r["sent_at"] or r["created_at"], now),
        r["last_error"] or "",
    )


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("notify", help="notifiers: add, edit, list, rm, test, log")
    nsub = p.add_subparsers(dest="action", required=True)
    for action in ("add", "edit"):
        np = nsub.add_parser(action)
        np.add_argument("name")
        np.add_argument(
            "url", nargs="?", help="the URL (apprise, healthchecks or webhook); - reads stdin"
        )
        np.add_argument("--url-env", metavar="VAR", help="read the URL from $VAR")
        np.add_argument("--kind", choices=("apprise", "healthchecks", "webhook"))
        np.add_argument("--event", action="append", help="an event to send (repeat)")
        np.add_argument("--profile", action="append", help="only these profiles (repeat)")
        if action == "edit":
            np.add_argument("--enable", action="store_true")
            np.add_argument("--disable", action="store_true")
    for action in ("rm", "test"):
        np = nsub.add_parser(action)
        np.add_argument("name")
    np = nsub.add_parser("list")
    np.add_argument("--json", action="store_true")
    np = nsub.add_parser("log", help="deliveries, newest first")
    np.add_argument("name", nargs="?", default="")
    np.add_argument("--status", choices=("pending", "sent", "failed", "dropped"))
    np.add_argument("--limit", type=COUNT, default=50)
    np.add_argument("--json", action="store_true")


COMMANDS = {"notify": cmd_notify}
