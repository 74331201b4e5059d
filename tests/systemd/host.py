"""Root-side plumbing for a real `systemd --user`: the user, its cgroups, a mount namespace.

There is no systemd as PID 1 on these machines, yet a user manager runs when
(1) /run/systemd/system exists — here a tmpfs in a private mount namespace, so
the host's mount table is never touched; (2) it starts inside a cgroup its user
owns (else it exits at once: EACCES on init.scope/cgroup.procs); (3) it runs as
a real non-root user (as root it gives its services HOME=/root, and D-Bus
activation looks in the wrong home).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

USER = "borgd-systemd-test"
# useradd's comment field marks the account as ours: only then is its home wiped.
USER_MARK = "borgd systemd tests (throwaway)"
CGROUP_PREFIX = "borgd-systemd-test-"
RUN_LOCK = Path("/var/tmp/borgd-systemd-test.lock")
RUN_FOLDERS = Path("/var/tmp")
RUN_FOLDER_PREFIX = "borgd-systemd-run-"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Debian's own Python: the user cannot execute the pyenv Python under /root (mode 0700).
SYSTEM_PYTHON = "/usr/bin/python3"
TOOLS = ("useradd", "runuser", "nsenter", "unshare", "mount", "systemctl", "busctl", "dbus-daemon")
USER_MANAGER = Path("/lib/systemd/systemd")
DBUS_USER_SOCKET = Path("/usr/lib/systemd/user/dbus.socket")


def require_root_and_tools() -> None:
    """Fail (never skip) with what is missing: CI runs the suite as root on Debian 12."""
    if os.geteuid() != 0:
        raise RuntimeError(
            "tests/systemd start a real `systemd --user` for a throwaway user: they need "
            "root (useradd, cgroups, a private mount namespace). Run the suite as root, "
            "as .ci/run does."
        )
    missing = [t for t in TOOLS if shutil.which(t, path=SYSTEM_PATH) is None]
    missing += [
        str(p) for p in (USER_MANAGER, DBUS_USER_SOCKET, Path(SYSTEM_PYTHON)) if not p.exists()
    ]
    if missing:
        raise RuntimeError(
            f"tests/systemd need {', '.join(missing)}: run scripts/bootstrap.sh --test "
            "(packages systemd, dbus-user-session, util-linux, mount, passwd, python3-venv)"
        )


def exclusive_run() -> IO[str]:
    """Held for a whole run: two runs at once would wipe each other's user and cgroups.

    While it is held, every cgroup or run folder of these tests is a dead run's leftover.
    """
    handle = open(RUN_LOCK, "a")  # noqa: SIM115 - held until the run ends
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def fresh_user() -> pwd.struct_passwd:
    """The throwaway user, created once and reused; its home emptied for this run."""
    try:
        user = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/sh", "--comment", USER_MARK, USER],
            check=True,
            capture_output=True,
            env={"PATH": SYSTEM_PATH},
            timeout=60,
        )
        user = pwd.getpwnam(USER)
    if user.pw_gecos != USER_MARK or user.pw_uid == 0:
        raise RuntimeError(f"user {USER} exists but was not made by these tests: not touching it")
    empty_home(user)
    return user


def empty_home(user: pwd.struct_passwd) -> None:
    home = Path(user.pw_dir)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(mode=0o755, parents=True)
    os.chown(home, user.pw_uid, user.pw_gid)


def make_owned(path: Path, user: pwd.struct_passwd, mode: int = 0o755) -> Path:
    """mkdir -p as root, then hand every new folder to `user`."""
    missing = []
    for p in (path, *path.parents):
        if p.exists():
            break
        missing.append(p)
    for p in reversed(missing):
        p.mkdir(mode=mode)
        os.chown(p, user.pw_uid, user.pw_gid)
    return path


def write_owned(path: Path, text: str, user: pwd.struct_passwd) -> Path:
    make_owned(path.parent, user)
    path.write_text(text)
    os.chown(path, user.pw_uid, user.pw_gid)
    return path


def chown_tree(root: Path, user: pwd.struct_passwd) -> None:
    for folder, dirs, files in os.walk(root):
        for name in (folder, *(os.path.join(folder, n) for n in dirs + files)):
            os.lchown(name, user.pw_uid, user.pw_gid)


# -- cgroups -----------------------------------------------------------------------------


def cgroup_roots() -> list[Path]:
    """The hierarchies systemd uses: hybrid (unified + name=systemd) or pure cgroup2."""
    hybrid = [Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup/systemd")]
    if all((p / "cgroup.procs").exists() for p in hybrid):
        return hybrid
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return [Path("/sys/fs/cgroup")]
    raise RuntimeError("no cgroup hierarchy that systemd --user can use under /sys/fs/cgroup")


def cgroup_pids(folder: Path) -> list[int]:
    pids: list[int] = []
    for procs in folder.rglob("cgroup.procs"):
        try:
            pids += [int(line) for line in procs.read_text().split()]
        except OSError:
            continue
    return pids


def remove_cgroup(folder: Path, timeout: float = 10) -> None:
    """Kill whatever still runs in `folder`, then remove it, deepest folders first."""
    deadline = time.monotonic() + timeout
    while (pids := cgroup_pids(folder)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        sub.rmdir()
    folder.rmdir()


def remove_leftovers() -> None:
    """What an earlier run that died before its teardown left: its cgroups (and the
    processes in them), its folder. Called under exclusive_run, so none is in use."""
    for root in cgroup_roots():
        for folder in root.glob(f"{CGROUP_PREFIX}*"):
            remove_cgroup(folder)
    for folder in RUN_FOLDERS.glob(f"{RUN_FOLDER_PREFIX}*"):
        shutil.rmtree(folder, ignore_errors=True)


def run_folder() -> Path:
    """World-readable (0755): the user runs the venv's Python from here."""
    folder = Path(tempfile.mkdtemp(prefix=RUN_FOLDER_PREFIX, dir=RUN_FOLDERS))
    folder.chmod(0o755)
    return folder


def delegate_cgroups(user: pwd.struct_passwd) -> list[Path]:
    folders = []
    for root in cgroup_roots():
        folder = root / f"{CGROUP_PREFIX}{os.getpid()}"
        folder.mkdir()
        folders.append(folder)
        chown_tree(folder, user)
    return folders


# -- the mount namespace -----------------------------------------------------------------


def die_with_parent() -> None:
    """PR_SET_PDEATHSIG(SIGKILL), kept across exec: a killed test run leaves no holder.

    (What it started inside the cgroups is removed by the next run's remove_leftovers.)
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)


def start_namespace_holder() -> subprocess.Popen[str]:
    """A process whose private mount namespace has a tmpfs on /run/systemd.

    The mount runs inside the namespace by construction (one shell after
    `unshare`), and "ready" is printed only after it: no window in which a
    mount could land on the host.
    """
    Path("/run/systemd").mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -t tmpfs -o mode=0755 tmpfs /run/systemd"
            " && mkdir -p /run/systemd/system && echo ready && exec sleep infinity",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env={"PATH": SYSTEM_PATH},
        preexec_fn=die_with_parent,
    )
    assert holder.stdout is not None
    line = holder.stdout.readline().strip()
    if line != "ready":
        holder.kill()
        rest = holder.communicate(timeout=10)[0]
        raise RuntimeError(f"cannot make a private mount namespace: {line} {rest}")
    return holder


# -- the virtual environment the user runs -------------------------------------------------


def install_venv(source: Path, where: Path) -> Path:
    """borgd (not editable, from a copy of the sources) and borg 1.4, as users install them.

    The copy keeps pip's in-tree build (build/, *.egg-info) out of the
    working tree, where a stale build/lib would be installed next time.
    """
    src = where / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(source / name, src / name)
    shutil.copytree(source / "borgd", src / "borgd", ignore=shutil.ignore_patterns("__pycache__"))
    venv = where / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONHOME"))}
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True, env=env, timeout=120)
    done = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            str(src),
            "borgbackup>=1.4,<1.5",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip install into {venv} failed:\n{done.stdout}\n{done.stderr}")
    shutil.rmtree(src)
    return venv
