"""Fixtures of the end-to-end tests that mock system services with python-dbusmock."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dbusmock import SpawnedMock


@pytest.fixture
def spawn_mock(session_env) -> Iterator[Callable[..., SpawnedMock]]:
    """Spawn a dbusmock template on the test's own system (or session) bus."""
    spawned: list[SpawnedMock] = []

    def spawn(
        template: str, parameters: dict[str, Any] | None = None, *, session: bool = False
    ) -> SpawnedMock:
        var = "DBUS_SESSION_BUS_ADDRESS" if session else "DBUS_SYSTEM_BUS_ADDRESS"
        saved = os.environ.get(var)
        os.environ[var] = session_env.vars[var]  # dbusmock reads the address from here
        try:
            mock = SpawnedMock.spawn_with_template(
                template, parameters, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        finally:
            if saved is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = saved
        spawned.append(mock)
        return mock

    yield spawn
    for mock in spawned:
        mock.terminate()
