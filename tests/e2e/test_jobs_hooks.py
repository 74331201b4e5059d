"""Profile hooks: pre_command decides, post_command reports; facts only in the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import BusctlError, borg_json, make_tree
from tests.e2e.jobs_helpers import (
    add_profile,
    borg_env,
    init_repo,
    start,
    wait_status,
)

# The hooks as a user would write them; they put what they see in files under $HOME.
SAVE_ENV = 'env | grep ^BORGD_ | sort > "$HOME/{name}.env"'


def facts(home: Path, name: str) -> dict[str, str]:
    text = (home / f"{name}.env").read_text()
    return dict(line.split("=", 1) for line in text.splitlines())


def test_hooks(start_borgd, busctl, gdbus, session_env, tmp_path):
    start_borgd()
    home = session_env.home
    repo = tmp_path / "repo"
    init_repo(busctl, "main", repo)
    source = make_tree(tmp_path / "src", 5)

    def archives() -> list[str]:
        listing = borg_json("list", str(repo), env=borg_env(session_env))
        return [a["name"] for a in listing["archives"]]

    # exit 75: "not now" — skipped, borg never ran; the post_command still reports.
    add_profile(
        busctl, "later", "main", [source],
        pre_command="exit 75", post_command=SAVE_ENV.format(name="later-post"),
    )  # fmt: skip
    done = wait_status(busctl, start(busctl, "later"))
    assert (done["status"], done["skip_reason"]) == ("skipped", "precondition"), done
    assert facts(home, "later-post")["BORGD_STATUS"] == "skipped"

    # exit 1: failed, borg never ran.
    add_profile(
        busctl, "broken", "main", [source],
        pre_command="echo no disk >&2; exit 1", post_command=SAVE_ENV.format(name="broken-post"),
    )  # fmt: skip
    done = wait_status(busctl, start(busctl, "broken"))
    assert done["status"] == "failed", done
    assert "pre_command failed with exit code 1" in done["message"]
    assert facts(home, "broken-post")["BORGD_STATUS"] == "failed"
    assert "pre_command: no disk" in busctl("GetJobLog", "tu", done["id"], 0)
    assert archives() == []

    # The facts, in the environment only; a hostile archive name stays data.
    hostile = "{profile}-$(touch pwned-a);`touch pwned-b`;touch pwned-c-{now}"
    add_profile(
        busctl, "good", "main", [source],
        archive_template=hostile,
        pre_command=SAVE_ENV.format(name="good-pre"),
        post_command=SAVE_ENV.format(name="good-post") + '; echo "$BORGD_ARCHIVE"; exit 3',
    )  # fmt: skip
    done = wait_status(busctl, start(busctl, "good"))
    assert done["status"] == "succeeded", done
    assert done["archive"].startswith("good-$(touch pwned-a);`touch pwned-b`;touch pwned-c-")
    assert archives() == [done["archive"]]
    pre, post = facts(home, "good-pre"), facts(home, "good-post")
    common = {
        "BORGD_JOB_ID": str(done["id"]),
        "BORGD_JOB_TYPE": "backup",
        "BORGD_PROFILE": "good",
        "BORGD_REPOSITORY": "main",
    }
    assert pre == {
        **common,
        "BORGD_STATUS": "running",
        "BORGD_ARCHIVE": "",
        "BORGD_EXIT_CODE": "-1",
    }
    assert post == {
        **common,
        "BORGD_STATUS": "succeeded",
        "BORGD_ARCHIVE": done["archive"],
        "BORGD_EXIT_CODE": "0",
    }
    log = busctl("GetJobLog", "tu", done["id"], 0)
    assert f"post_command: {done['archive']}" in log
    # The post_command's failure is reported, not hidden; the backup still succeeded.
    assert done["message"].endswith("; post_command failed with exit code 3"), done["message"]
    for where in (home, Path.cwd(), source, tmp_path):
        assert not list(where.glob("pwned*")), where

    # Names that could reach a shell are refused at the door.
    with pytest.raises(BusctlError) as err:
        gdbus("AddProfile", "x;touch pwned", "main", f"['{source}']", "{}")
    assert err.value.name == "org.borgd1.Error.InvalidArgument"
