"""The shipped documentation and unit files: manual pages render cleanly, the user unit verifies.

Both tests run the real tools (groff or man, systemd-analyze) the way a
packager or a user would, and treat any warning as a failure: groff and
systemd-analyze both exit 0 for many problems and only say so on stderr.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAN_DIR = ROOT / "man"
UNIT = ROOT / "systemd" / "borgd.service"
DBUS_ACTIVATION = ROOT / "dbus" / "org.borgd1.service"
REQUIRED_PAGES = ("borgd.8", "borgctl.1", "borgd.dbus.5")
FORBIDDEN_IN_USER_UNIT = ("ProtectSystem", "ProtectHome", "PrivateTmp")
# `.SH NAME` then a line "name[, name] \- what it is".
NAME_SECTION = re.compile(r'^\.SH\s+"?NAME"?\s*\n(?:\.\\".*\n)*[^.\n][^\n]*\\-\s*\S', re.MULTILINE)


def man_pages() -> list[Path]:
    return sorted(MAN_DIR.glob("*.[0-9]"))


def render_warnings(page: Path) -> tuple[int, str]:
    """(exit code, stderr) of rendering `page` with every warning enabled."""
    env = {**os.environ, "MANWIDTH": "80", "LC_ALL": "C.UTF-8"}
    if shutil.which("groff"):
        argv = ["groff", "-man", "-Tutf8", "-ww", "-z", str(page)]
    elif shutil.which("man"):
        argv = ["man", "--warnings", "-l", "-E", "UTF-8", str(page)]
    else:  # both come with scripts/bootstrap.sh (groff-base, man-db)
        pytest.fail("neither groff nor man is installed: run scripts/bootstrap.sh --test")
    done = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stderr


def test_man_pages_render_without_warnings() -> None:
    pages = man_pages()
    names = {p.name for p in pages}
    missing = [name for name in REQUIRED_PAGES if name not in names]
    assert not missing, f"missing manual pages in {MAN_DIR}: {missing}"

    problems = []
    for page in pages:
        rc, stderr = render_warnings(page)
        if rc != 0 or stderr.strip():
            problems.append(f"{page.name}: exit {rc}\n{stderr.strip()}")
        source = page.read_text(encoding="utf-8")
        if not NAME_SECTION.search(source):
            problems.append(f"{page.name}: no NAME section of the form 'name \\- description'")
        section = page.suffix.lstrip(".")
        if not re.search(rf"^\.TH\s+\S+\s+{section}\b", source, re.MULTILINE):
            problems.append(f"{page.name}: .TH does not name section {section}")
    assert not problems, "\n\n".join(problems)


# -- the systemd user unit and the D-Bus activation file -------------------------------


def parse_ini(path: Path) -> dict[str, dict[str, list[str]]]:
    """systemd/D-Bus style key files: repeated keys kept in order, comments dropped."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: {line!r} comes before any [section]"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: {line!r} is not KEY=VALUE"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(section: dict[str, list[str]], key: str) -> str:
    values = section.get(key, [])
    assert len(values) == 1, f"expected exactly one {key}=, got {values}"
    return values[0]


def words(section: dict[str, list[str]], key: str) -> list[str]:
    return [w for value in section.get(key, []) for w in value.split()]


def test_user_unit_verifies_silently(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is not installed: run scripts/bootstrap.sh --test"

    # ExecStart=%h/.local/bin/borgd and Documentation=man:... must both resolve.
    entry_point = Path(sys.executable).parent / "borgd"
    assert entry_point.exists(), f"{entry_point} is missing: install the package into the venv"
    home = tmp_path / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    (home / ".local" / "bin" / "borgd").symlink_to(entry_point)
    manpath = tmp_path / "man"
    for page in REQUIRED_PAGES:
        section = page.rsplit(".", 1)[1]
        (manpath / f"man{section}").mkdir(parents=True, exist_ok=True)
        (manpath / f"man{section}" / page).symlink_to(MAN_DIR / page)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    runtime.chmod(0o700)

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME")
    }
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(runtime), MANPATH=str(manpath))
    done = subprocess.run(
        [analyze, "--user", "verify", str(UNIT)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # systemd-analyze exits 0 even for a line it ignores ("Failed to parse ..."):
    # only an empty stderr means the unit is clean.
    assert done.returncode == 0 and not done.stderr.strip(), (
        f"systemd-analyze --user verify exited {done.returncode}:\n{done.stderr}{done.stdout}"
    )

    unit = parse_ini(UNIT)
    service, install = unit.get("Service", {}), unit.get("Install", {})
    assert one(service, "Type") == "notify"
    assert one(service, "BusName") == "org.borgd1"
    watchdog = one(service, "WatchdogSec")
    assert watchdog and not re.fullmatch(r"0+\s*[a-z]*|infinity", watchdog), watchdog
    assert one(service, "Restart") == "on-failure"
    assert "default.target" in words(install, "WantedBy")
    hardening = sorted(
        key for keys in unit.values() for key in keys if key in FORBIDDEN_IN_USER_UNIT
    )
    assert not hardening, (
        f"{hardening} make a user namespace in a user unit: borg would record wrong owners"
    )
    aliases = words(install, "Alias")
    assert "dbus-org.borgd1.service" in aliases

    activation = parse_ini(DBUS_ACTIVATION).get("D-BUS Service", {})
    assert one(activation, "Name") == "org.borgd1"
    systemd_service = one(activation, "SystemdService")
    assert systemd_service in aliases, (
        f"SystemdService={systemd_service} is not an Alias= of {UNIT.name} ({aliases})"
    )


def readme_install_lines() -> list[str]:
    """The README's "Install for your desktop session" commands that place the manual
    pages and the completion script (the rest needs a session: tests/systemd)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Install for your desktop session", 1)[1].split("```sh", 1)[1]
    block = block.split("```", 1)[0]
    return [line for line in block.splitlines() if "man/" in line or "bash-completion" in line]


def test_the_readme_install_puts_man_pages_and_completion_where_they_are_found(tmp_path):
    lines = readme_install_lines()
    assert len(lines) >= 3, lines
    home = tmp_path / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    env = {
        "HOME": str(home),
        "PATH": f"{home / '.local' / 'bin'}:/usr/bin:/bin",
        "LC_ALL": "C.UTF-8",
    }
    script = "set -e\n" + "\n".join(lines).replace(
        ".venv/bin/borgctl", f"{sys.executable} -m borgd.cli.main"
    )
    done = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    # man finds every page through ~/.local/bin on PATH, as on a desktop.
    found = subprocess.run(
        ["man", "-w", "borgd", "borgctl", "borgd.toml", "borgd.dbus"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0, found.stderr
    assert all(str(home) in line for line in found.stdout.split()), found.stdout
    # bash-completion loads borgctl's completion on demand from the user's folder.
    loader = "/usr/share/bash-completion/bash_completion"
    probe = f"source {loader}; __load_completion borgctl && complete -p borgctl"
    loaded = subprocess.run(["bash", "-c", probe], env=env, capture_output=True, text=True)
    assert loaded.stdout.strip() == "complete -F _borgctl borgctl", loaded.stderr
