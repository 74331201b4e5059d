"""`borgctl ui` as a user runs it: in a real terminal (tmux) of 80x24, with NO_COLOR."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

from tests.conftest import make_tree, wait_until
from tests.e2e.jobs_helpers import add_profile, add_repo, init_repo, start, wait_status


def test_borgctl_ui_in_80x24_without_colour(start_borgd, busctl, session_env, tmp_path):
    assert shutil.which("tmux"), "tmux is not installed: run scripts/bootstrap.sh --test"
    start_borgd()
    init = init_repo(busctl, "good", tmp_path / "repo")
    add_repo(busctl, "gone", tmp_path / "no-such-repo", encryption="none")
    add_profile(busctl, "broken", "gone", [make_tree(tmp_path / "src", 3)])
    failed = start(busctl, "broken")
    assert wait_status(busctl, failed)["status"] == "failed"

    sock = tmp_path / "tmux.sock"
    rc_file = tmp_path / "rc"
    env = {k: v for k, v in session_env.vars.items() if k not in ("TMUX", "TMUX_PANE")}
    env.update(NO_COLOR="1", TERM="xterm-256color")

    def tmux(*args: str) -> str:
        done = subprocess.run(
            ["tmux", "-S", str(sock), "-f", "/dev/null", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout

    command = f"{sys.executable} -m borgd.cli.main ui; echo $? > {rc_file}"
    tmux("new-session", "-d", "-x", "80", "-y", "24", command)
    try:

        def screen() -> list[str]:
            return tmux("capture-pane", "-p").splitlines()

        def jobs_shown() -> list[str]:
            lines = screen()
            rows = {line.split()[0]: line for line in lines if line.split()[:1]}
            ok = str(init) in rows and str(failed) in rows
            return lines if ok else []

        lines = wait_until(jobs_shown, 30, "the jobs on screen", interval=0.2)
        rows = {line.split()[0]: line.split() for line in lines if line.split()[:1]}
        assert rows[str(failed)][1:4] == ["failed", "backup", "broken"], lines
        assert rows[str(init)][1:3] == ["succeeded", "init"], lines
        assert lines[0].startswith(" borgd ") and "not running" not in lines[0], lines
        assert "Jobs" in lines[1] and "Upcoming" in lines[1], lines
        assert any("q Quit" in line for line in lines[-2:]), lines
        assert all(len(line) <= 80 for line in lines), lines
        # NO_COLOR: bold, dim, reverse and underline only, never a colour (39/49 reset).
        codes = {
            int(code)
            for params in re.findall(r"\x1b\[([0-9;]*)m", tmux("capture-pane", "-p", "-e"))
            for code in params.split(";")
            if code
        }
        colours = {c for c in codes if (30 <= c <= 48 and c not in (39, 49)) or 90 <= c <= 107}
        assert codes and not colours, sorted(codes)

        tmux("send-keys", "q")
        wait_until(rc_file.exists, 20, "borgctl ui to exit", interval=0.1)
        assert rc_file.read_text().strip() == "0"
    finally:
        subprocess.run(
            ["tmux", "-S", str(sock), "kill-server"], env=env, capture_output=True, timeout=30
        )
