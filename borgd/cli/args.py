"""The command line's own checks: one line for every mistake, before borgd is asked.

borgd refuses bad values too (InvalidArgument), but a value D-Bus cannot even
carry (a negative id, a count past 2**32, text that is not UTF-8) never gets
that far: it would fail in marshalling, with a traceback.  So every number
argument has a range here, argv is checked for UTF-8 once, and argparse's
errors are one line (exit 2) naming the flag the user typed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from borgd.cli.format import columns

TYPE_CHECKING = False  # importing typing costs borgctl ~3 ms at start (cli/entry.py)
if TYPE_CHECKING:
    from typing import Any, NoReturn

U32 = 2**32 - 1
ID_MAX = 2**63 - 1  # borgd's ids are SQLite integers
EXIT_USAGE = 2


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, told the width: left to find it, it imports shutil
    (format.columns says why not) for every command line, help or not."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=max(columns() - 2, 20))


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors on one line (usage is one ``--help`` away)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``."""

    def convert(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, not {text[:40]}")
        return value

    convert.__name__ = "number"  # argparse names the type in some messages
    return convert


COUNT = int_in(0, U32)
IDENT = int_in(1, ID_MAX)


def not_utf8(argv: Sequence[str]) -> str | None:
    """The first argument that is not UTF-8 (Python keeps such bytes as surrogates),
    shown with the bad bytes escaped; None when all are fine."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
            return shown[:120]
    return None


def refuse_non_utf8(argv: Sequence[str]) -> int | None:
    """Exit status 2 with one line when an argument is not UTF-8, else None.

    D-Bus strings are UTF-8, and borgd keeps names, paths and patterns as text:
    a file name with other bytes cannot be named to it (rename it, or back up
    its folder)."""
    bad = not_utf8(argv)
    if bad is None:
        return None
    print(
        f"borgctl: argument {bad!r} is not valid UTF-8; borgd takes names, paths and "
        "patterns as UTF-8 text (name the folder that holds such a file instead)",
        file=sys.stderr,
    )
    return EXIT_USAGE
