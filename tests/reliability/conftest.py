"""The reliability runs report what they did (seed, iterations, job counts) at the end of
the pytest run, passed or not, so that a failure can be replayed with the same seed."""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import pytest

_REPORT: list[str] = []


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``report(text)``: one line in the run's summary, prefixed with the test's id."""

    def add(text: str) -> None:
        line = f"{request.node.name}: {text}"
        _REPORT.append(line)
        print(line)

    return add


@pytest.fixture
def seed(report: Callable[[str], None]) -> int:
    """The seed of a randomised run: $RELIABILITY_SEED, else a fresh one (always printed)."""
    value = int(os.environ.get("RELIABILITY_SEED") or random.SystemRandom().randrange(2**32))
    report(f"seed={value} (replay with RELIABILITY_SEED={value})")
    return value


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _REPORT:
        terminalreporter.section("reliability counts")
        for line in _REPORT:
            terminalreporter.write_line(line)
