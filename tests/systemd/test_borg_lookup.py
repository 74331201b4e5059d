"""borgd finds the borg the README links into ~/.local/bin, although the unit's PATH lacks it.

systemd gives user services its own PATH (/usr/local/bin:/usr/bin:/bin and the
sbin folders), not a login shell's: before this lookup, every job of the
README's install failed under the unit with "borg was not found". The backup
tests in this folder show it under a real manager; this one shows the order
in a second, without one.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import anyio
import pytest

from borgd.execution.borg_tool import BorgLocator, BorgNotFound, BorgTool
from tests.conftest import borg_binary

SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def find_borg(candidate: str = "borg") -> BorgTool:
    return anyio.run(BorgLocator(candidate).find)


@pytest.fixture
def service_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home whose ~/.local/bin/borg is the test venv's borg; the unit's PATH."""
    bin_dir = tmp_path / "home" / ".local" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "borg").symlink_to(borg_binary())
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PATH", SERVICE_PATH)
    monkeypatch.delenv("BORGD_BORG", raising=False)
    return bin_dir


def test_borg_in_local_bin_is_found_with_a_service_path(service_env: Path) -> None:
    found = find_borg()
    assert found.path == os.path.realpath(service_env / "borg")
    assert found.version >= (1, 2, 0)


def test_path_and_explicit_choices_come_first(
    service_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = tmp_path / "on-path"
    on_path.mkdir()
    (on_path / "borg").symlink_to(borg_binary())
    monkeypatch.setenv("PATH", f"{on_path}:{SERVICE_PATH}")
    assert find_borg().path == os.path.realpath(on_path / "borg")
    # A named borg that does not exist is reported as such, never swapped for another.
    with pytest.raises(BorgNotFound, match=r"'borg-1\.4' is not an executable file"):
        find_borg("borg-1.4")
    with pytest.raises(BorgNotFound, match="/nonexistent/borg"):
        find_borg("/nonexistent/borg")


def test_borg_installed_or_upgraded_later_is_used_without_a_restart(
    service_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One locator, as in the daemon: missing first, then installed, then upgraded."""
    (service_env / "borg").unlink()
    later = tmp_path / "later"
    later.mkdir()
    monkeypatch.setenv("PATH", f"{later}:{SERVICE_PATH}")
    locator = BorgLocator("borg")

    async def find() -> BorgTool:
        return await locator.find()

    with pytest.raises(BorgNotFound, match=r"PATH=.*later"):
        anyio.run(find)
    (later / "borg").symlink_to(borg_binary())  # installed
    first = anyio.run(find)
    assert first.path == os.path.realpath(borg_binary()) and first.version >= (1, 2, 0)
    fake = later / "borg-9"  # "upgraded": another binary behind the same name
    fake.write_text("#!/bin/sh\necho borg 9.8.7\n")
    fake.chmod(0o755)
    (later / "borg").unlink()
    (later / "borg").symlink_to(fake)
    # A job that found borg just before the swap runs the borg it asked, not the new one
    # with the old one's version (a fresh-clone run once caught a job doing that).
    ran = subprocess.run([first.path, "--version"], capture_output=True, text=True, check=True)
    assert ran.stdout.split()[1] == ".".join(map(str, first.version)), ran.stdout
    upgraded = anyio.run(find)
    assert upgraded.version == (9, 8, 7) and upgraded.path == str(fake)
