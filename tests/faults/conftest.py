"""Fixtures of the fault suite: the reliability runs' report and the dbusmock spawner."""

from __future__ import annotations

from tests.e2e.conftest import spawn_mock
from tests.reliability.conftest import report

__all__ = ["report", "spawn_mock"]
