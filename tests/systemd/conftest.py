"""One real `systemd --user` for the tests in this folder, with borgd installed as the
README says.

Setup (about 20 s, most of it pip): a throwaway user, a venv made from Debian's
Python with borgd (not editable) and borg 1.4, `borgd`, `borgctl` and `borg`
linked into ~/.local/bin, the shipped unit and D-Bus activation file in the
user's folders, a test drop-in, then the manager. Teardown (when this folder's
tests are done) stops the manager, kills what is left in its cgroups and the
namespace holder, and removes the folders and what the tests left in the home.
The user stays: the next run reuses it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.systemd import host
from tests.systemd.manager import UNIT, UserManager

# Test speed-ups (the shipped RestartSec=10s, WatchdogSec=60s stay as they are) and
# witnesses: no journal here, so borgd's log and each stop's result go to files
# (UserManager.unit_log, UserManager.results).
DROP_IN = """\
[Service]
WatchdogSec=4s
RestartSec=1s
StandardOutput=append:%h/borgd-unit.log
StandardError=inherit
ExecStopPost=-/bin/sh -c 'echo "$$SERVICE_RESULT $$EXIT_CODE $$EXIT_STATUS" >>%h/borgd-results.log'
"""


@pytest.fixture(scope="package")
def user_manager() -> Iterator[UserManager]:
    try:
        host.require_root_and_tools()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    with ExitStack() as stack:
        stack.enter_context(host.exclusive_run())
        host.remove_leftovers()
        user = host.fresh_user()
        stack.callback(host.empty_home, user)
        base = host.run_folder()
        stack.callback(shutil.rmtree, base, ignore_errors=True)
        venv = host.install_venv(ROOT, base)
        runtime = host.make_owned(base / "runtime", user, mode=0o700)
        install_for_user(user, venv)

        holder = host.start_namespace_holder()
        stack.callback(stop_process, holder)
        cgroups = host.delegate_cgroups(user)
        for folder in cgroups:
            stack.callback(host.remove_cgroup, folder)

        manager = UserManager(
            user=user,
            holder_pid=holder.pid,
            runtime_dir=runtime,
            cgroups=cgroups,
            manager_log=base / "manager.log",
        )
        stack.callback(manager.stop)
        manager.start()
        yield manager


@pytest.fixture
def borgd_unit(user_manager: UserManager) -> UserManager:
    """The manager, with borgd's failure state and start-rate counter reset.

    Several tests start, stop and crash the unit within seconds: without the
    reset, the default start limit (5 starts in 10 s) could refuse a start.
    """
    user_manager.systemctl("reset-failed", UNIT, check=False)
    return user_manager


def install_for_user(user: pwd.struct_passwd, venv: Path) -> None:
    """The README's "Install for your desktop session" steps, for `user`."""
    home = Path(user.pw_dir)
    bin_dir = host.make_owned(home / ".local" / "bin", user)
    for name in ("borgd", "borgctl", "borg"):
        (bin_dir / name).symlink_to(venv / "bin" / name)
        os.lchown(bin_dir / name, user.pw_uid, user.pw_gid)
    units = home / ".config" / "systemd" / "user"
    host.write_owned(units / UNIT, (ROOT / "systemd" / UNIT).read_text(), user)
    host.write_owned(units / f"{UNIT}.d" / "test.conf", DROP_IN, user)
    services = home / ".local" / "share" / "dbus-1" / "services"
    activation = ROOT / "dbus" / "org.borgd1.service"
    host.write_owned(services / activation.name, activation.read_text(), user)


def stop_process(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait(10)
