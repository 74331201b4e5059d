"""Fixtures of the fault suite: the reliability runs' report, and what every fault test
checks afterwards (`sound`)."""

from __future__ import annotations

from tests.reliability.conftest import report

__all__ = ["report"]
