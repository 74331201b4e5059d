"""Declarative configuration for `borgctl apply` / `borgctl export` (borgd.toml(5)).

Pure: parse a TOML text into the desired state, diff it against what borgd
reports, and render the current state as TOML.  Applying is idempotent: a
second `apply` of the same file finds nothing to change.  Secrets are never
exported; a file may name an environment variable holding a passphrase.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from borgd.core.validation import (
    PROFILE_OPTIONS,
    PROFILE_UPDATE_OPTIONS,
    REPOSITORY_OPTIONS,
    SCHEDULE_OPTIONS,
    SCHEDULE_UPDATE_OPTIONS,
    InvalidArgument,
    check_absolute_path,
    check_name,
    check_options,
    check_schedule_action,
    check_url,
)

US = 1_000_000
_DURATION = re.compile(r"(\d+)\s*(min|w|d|h|m|s)")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "min": 60, "s": 1}

# key -> D-Bus signature per section, from the daemon's own validation tables;
# durations are written as "2h" in files.
REPOSITORY_KEYS = {
    k: kind.label
    for k, kind in REPOSITORY_OPTIONS.items()
    if k not in ("passphrase", "init")  # secrets never in a file; init is an action
}
PROFILE_KEYS = {k: kind.label for k, kind in PROFILE_OPTIONS.items()}
SCHEDULE_KEYS = {k: kind.label for k, kind in SCHEDULE_OPTIONS.items()}
DURATION_KEYS = frozenset(
    {"max_age", "catch_up_window", "randomized_delay", "retry_delay", "min_interval"}
)
# What a new profile or schedule has when a key is absent, so that absent == default.
PROFILE_DEFAULTS: dict[str, Any] = {
    "excludes": [],
    "compression": "",
    "archive_template": "{profile}-{now:%Y-%m-%dT%H:%M:%S}",
    "keep_within": "",
    "keep_hourly": 0,
    "keep_daily": 0,
    "keep_weekly": 0,
    "keep_monthly": 0,
    "keep_yearly": 0,
    "prune_after": False,
    "compact_after": False,
    "check_every": 0,
    "pre_command": "",
    "post_command": "",
    "enabled": True,
    "max_age": 0,
    "inhibit_sleep": True,
    "one_file_system": False,
    "nice": 0,
    "ionice": "",
    "blackout": [],
}
SCHEDULE_DEFAULTS: dict[str, Any] = {
    "timezone": "",
    "catch_up": True,
    "catch_up_window": 0,
    "randomized_delay": 0,
    "skip_on_battery": False,
    "skip_on_metered": False,
    "enabled": True,
    "retries": 0,
    "retry_delay": 300 * US,
    "min_interval": 86400 * US,
}


class ConfigError(ValueError):
    """The file is not valid borgd.toml; the message says where."""


def parse_duration(value: object, where: str) -> int:
    """A duration in microseconds from '2h', '1h30m', '90s' or an integer of microseconds."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        compact = value.replace(" ", "")
        parts = _DURATION.findall(compact)
        if parts and "".join(n + u for n, u in parts) == compact:
            return sum(int(n) * _UNITS[u] for n, u in parts) * US
    raise ConfigError(f"{where}: not a duration: {value!r} (use e.g. 90s, 30m, 2h, 1d)")


def format_duration(us: int) -> str | int:
    if us % US:
        return us
    seconds = us // US
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Action:
    """One D-Bus call to make: member, signature, arguments, and a line for the user."""

    member: str
    signature: str
    args: tuple[Any, ...]
    summary: str
    passphrase_env: str | None = None  # AddRepository: read this variable when applying
    url_env: str | None = None  # AddNotifier: its URL is in this variable when applying


@dataclass
class Desired:
    repositories: dict[str, dict[str, Any]] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    schedules: list[dict[str, Any]] = field(default_factory=list)
    notifiers: dict[str, dict[str, Any]] = field(default_factory=dict)


# A notifier's URL carries tokens: a file names where it is, never the URL itself.
NOTIFIER_KEYS = {"kind": "s", "events": "as", "profiles": "as", "enabled": "b"}
SECRET_REF = "secret:notifier/{name}"  # the URL borgd keeps for this notifier


def _check_keys(where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: "
            f"{', '.join(sorted(allowed))}"
        )


def _typed(where: str, key: str, sig: str, value: Any) -> Any:
    if key in DURATION_KEYS:
        return parse_duration(value, f"{where}.{key}")
    ok = {
        "s": isinstance(value, str),
        "b": isinstance(value, bool),
        "u": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        "i": isinstance(value, int) and not isinstance(value, bool),
        "t": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        "as": isinstance(value, list) and all(isinstance(v, str) for v in value),
    }[sig]
    if not ok:
        kind = {
            "s": "a string",
            "b": "true or false",
            "u": "a whole number",
            "i": "a whole number",
            "t": "a whole number",
            "as": "a list of strings",
        }[sig]
        raise ConfigError(f"{where}.{key} must be {kind}")
    return value


def parse(text: str) -> Desired:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from None
    _check_keys("the file", data, {"repositories", "profiles", "schedules", "notifiers"})
    desired = Desired()
    for name, table in data.get("repositories", {}).items():
        where = f"repositories.{name}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table")
        _check_keys(where, table, {"url", "init", "passphrase_env", *REPOSITORY_KEYS})
        if not isinstance(table.get("url"), str):
            raise ConfigError(f"{where}.url is required")
        repo: dict[str, Any] = {"url": table["url"]}
        for key, sig in REPOSITORY_KEYS.items():
            if key in table:
                repo[key] = _typed(where, key, sig, table[key])
        for key, kind in (("init", bool), ("passphrase_env", str)):
            if key in table:
                if not isinstance(table[key], kind):
                    raise ConfigError(f"{where}.{key} has the wrong type")
                repo[key] = table[key]
        desired.repositories[name] = repo
    for name, table in data.get("profiles", {}).items():
        where = f"profiles.{name}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table")
        _check_keys(where, table, {"repository", "sources", *PROFILE_KEYS})
        if not isinstance(table.get("repository"), str):
            raise ConfigError(f"{where}.repository is required")
        profile: dict[str, Any] = {
            "repository": table["repository"],
            "sources": _typed(where, "sources", "as", table.get("sources")),
        }
        for key, sig in PROFILE_KEYS.items():
            if key in table:
                profile[key] = _typed(where, key, sig, table[key])
        desired.profiles[name] = profile
    for i, table in enumerate(data.get("schedules", [])):
        where = f"schedules[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table ([[schedules]])")
        _check_keys(where, table, {"profile", "action", "spec", *SCHEDULE_KEYS})
        for key in ("profile", "spec"):
            if not isinstance(table.get(key), str):
                raise ConfigError(f"{where}.{key} is required")
        sched: dict[str, Any] = {
            "profile": table["profile"],
            "action": table.get("action", "backup"),
            "spec": table["spec"],
        }
        for key, sig in SCHEDULE_KEYS.items():
            if key in table:
                sched[key] = _typed(where, key, sig, table[key])
        desired.schedules.append(sched)
    for name, table in data.get("notifiers", {}).items():
        where = f"notifiers.{name}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table")
        _check_keys(where, table, {"url", "url_env", *NOTIFIER_KEYS})
        notifier: dict[str, Any] = {}
        for key, sig in NOTIFIER_KEYS.items():
            if key in table:
                notifier[key] = _typed(where, key, sig, table[key])
        if "url" in table and table["url"] != SECRET_REF.format(name=name):
            raise ConfigError(
                f"{where}.url: a notifier's URL carries tokens and is never written in a "
                f'file; name a variable that holds it (url_env = "VAR"), or keep '
                f'url = "{SECRET_REF.format(name=name)}" for the one borgd has'
            )
        if "url_env" in table:
            if not isinstance(table["url_env"], str) or not table["url_env"]:
                raise ConfigError(f"{where}.url_env must name an environment variable")
            notifier["url_env"] = table["url_env"]
        desired.notifiers[name] = notifier
    return desired


def _changed(
    current: Mapping[str, Any],
    wanted: Mapping[str, Any],
    keys: Mapping[str, str],
    defaults: Mapping[str, Any],
) -> dict[str, tuple[str, Any]]:
    out = {}
    for key, sig in keys.items():
        want = wanted.get(key, defaults.get(key))
        if want is None:
            continue
        have = current.get(key, defaults.get(key))
        if have != want:
            out[key] = (sig, want)
    return out


def plan(
    desired: Desired,
    repos: list[dict[str, Any]],
    profiles: list[dict[str, Any]],
    schedules: list[dict[str, Any]],
    *,
    prune: bool = False,
    notifiers: list[dict[str, Any]] | None = None,
) -> list[Action]:
    """The calls that make borgd's configuration equal to `desired`, in a safe order."""
    actions: list[Action] = []
    have_repos = {r["name"]: r for r in repos}
    for name, want in desired.repositories.items():
        opts = {k: (REPOSITORY_KEYS[k], v) for k, v in want.items() if k in REPOSITORY_KEYS}
        if name not in have_repos:
            if want.get("init"):
                opts["init"] = ("b", True)
            actions.append(
                Action(
                    "AddRepository",
                    "ssa{sv}",
                    (name, want["url"], opts),
                    f"add repository {name}",
                    want.get("passphrase_env"),
                )
            )
            continue
        have = have_repos[name]
        if have["url"] != want["url"]:
            raise ConfigError(
                f"repositories.{name}: borgd has it at {have['url']}, the file says "
                f"{want['url']}; a repository's URL cannot change (remove and add it)"
            )
        diff = {k: v for k, v in opts.items() if k != "passcommand" and have.get(k) != v[1]}
        if "passcommand" in opts and not have.get("has_passcommand"):
            diff["passcommand"] = opts["passcommand"]
        if diff:
            actions.append(
                Action(
                    "UpdateRepository",
                    "sa{sv}",
                    (name, diff),
                    f"update repository {name}: {', '.join(sorted(diff))}",
                )
            )
    have_profiles = {p["name"]: p for p in profiles}
    for name, want in desired.profiles.items():
        if name not in have_profiles:
            opts = {k: (PROFILE_KEYS[k], v) for k, v in want.items() if k in PROFILE_KEYS}
            actions.append(
                Action(
                    "AddProfile",
                    "ssasa{sv}",
                    (name, want["repository"], want["sources"], opts),
                    f"add profile {name}",
                )
            )
            continue
        have = have_profiles[name]
        diff = _changed(have, want, PROFILE_KEYS, PROFILE_DEFAULTS)
        if have["repository"] != want["repository"]:
            diff["repository"] = ("s", want["repository"])
        if list(have["sources"]) != list(want["sources"]):
            diff["sources"] = ("as", want["sources"])
        if diff:
            actions.append(
                Action(
                    "UpdateProfile",
                    "sa{sv}",
                    (name, diff),
                    f"update profile {name}: {', '.join(sorted(diff))}",
                )
            )
    have_sched = {(s["profile"], s["action"], s["spec"]): s for s in schedules}
    wanted_keys = set()
    for want in desired.schedules:
        key = (want["profile"], want["action"], want["spec"])
        wanted_keys.add(key)
        label = f"schedule {want['action']} of {want['profile']} at '{want['spec']}'"
        if key not in have_sched:
            opts = {k: (SCHEDULE_KEYS[k], v) for k, v in want.items() if k in SCHEDULE_KEYS}
            actions.append(Action("AddSchedule", "sssa{sv}", (*key, opts), f"add {label}"))
            continue
        diff = _changed(have_sched[key], want, SCHEDULE_KEYS, SCHEDULE_DEFAULTS)
        if diff:
            actions.append(
                Action(
                    "UpdateSchedule",
                    "ta{sv}",
                    (have_sched[key]["id"], diff),
                    f"update {label}: {', '.join(sorted(diff))}",
                )
            )
    have_notifiers = {x["name"]: x for x in notifiers or []}
    for name, want in desired.notifiers.items():
        opts = {k: (NOTIFIER_KEYS[k], v) for k, v in want.items() if k in NOTIFIER_KEYS}
        if name not in have_notifiers:
            if not want.get("url_env"):
                raise ConfigError(
                    f"notifiers.{name}: borgd has no notifier {name} to keep the URL of; "
                    'name the variable that holds its URL (url_env = "VAR")'
                )
            actions.append(
                Action(
                    "AddNotifier",
                    "ssa{sv}",
                    (name, "", opts),
                    f"add notifier {name}",
                    url_env=want["url_env"],
                )
            )
            continue
        have = have_notifiers[name]
        diff = {k: v for k, v in opts.items() if have.get(k) != v[1]}
        if diff:
            actions.append(
                Action(
                    "UpdateNotifier",
                    "sa{sv}",
                    (name, diff),
                    f"update notifier {name}: {', '.join(sorted(diff))}",
                )
            )
    if prune:
        for name in have_notifiers.keys() - desired.notifiers.keys():
            actions.append(Action("RemoveNotifier", "s", (name,), f"remove notifier {name}"))
        for key, sched in have_sched.items():
            if key not in wanted_keys:
                actions.append(
                    Action(
                        "RemoveSchedule",
                        "t",
                        (sched["id"],),
                        f"remove schedule {sched['id']} ({key[1]} of {key[0]})",
                    )
                )
        for name in have_profiles.keys() - desired.profiles.keys():
            actions.append(Action("RemoveProfile", "s", (name,), f"remove profile {name}"))
        for name in have_repos.keys() - desired.repositories.keys():
            actions.append(Action("RemoveRepository", "s", (name,), f"remove repository {name}"))
    return actions


_OPTION_TABLES = {
    "AddRepository": REPOSITORY_OPTIONS,
    "UpdateRepository": REPOSITORY_OPTIONS,
    "AddProfile": PROFILE_OPTIONS,
    "UpdateProfile": PROFILE_UPDATE_OPTIONS,
    "AddSchedule": SCHEDULE_OPTIONS,
    "UpdateSchedule": SCHEDULE_UPDATE_OPTIONS,
}


def check_actions(actions: list[Action], env: Mapping[str, str]) -> None:
    """Every call checked as borgd will check it, before the first is made: a file
    error changes nothing (borgd.toml(5)).  Raises :class:`ConfigError` naming the
    section's subject and what is wrong."""
    from borgd.core import notifications
    from borgd.core.schedule import SpecError, parse_spec

    for action in actions:
        args = action.args
        try:
            table = _OPTION_TABLES.get(action.member)
            if table is not None:
                options = check_options(action.member, table, args[-1])
            if action.member == "AddRepository":
                check_name("repository", args[0])
                check_url(args[1])
            elif action.member == "AddProfile":
                check_name("profile", args[0])
                check_name("repository", args[1])
                for source in args[2]:
                    check_absolute_path("source", source)
            elif action.member in ("AddSchedule", "UpdateSchedule"):
                spec = args[2] if action.member == "AddSchedule" else options.get("spec")
                if action.member == "AddSchedule":
                    check_schedule_action(args[1])
                if spec is not None:
                    parse_spec(spec, default_tz=options.get("timezone") or None)
            elif action.member in ("AddNotifier", "UpdateNotifier"):
                notifications.check_notifier_options(
                    args[-1], update=action.member == "UpdateNotifier"
                )
        except (InvalidArgument, SpecError) as exc:
            raise ConfigError(f"{action.summary}: {exc}") from None
        for var in (action.passphrase_env, action.url_env):
            if var and var not in env:
                raise ConfigError(f"{action.summary}: ${var} is not set")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c >= " " or c == "\t" else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def render(
    repos: list[dict[str, Any]],
    profiles: list[dict[str, Any]],
    schedules: list[dict[str, Any]],
    notifiers: list[dict[str, Any]] | None = None,
) -> str:
    """The configuration as borgd.toml; only values that differ from the defaults."""
    out = [
        "# borgd configuration, written by `borgctl export`. Apply with `borgctl apply FILE`.",
        '# Secrets are not exported: add passphrase_env = "VAR" or passcommand = "..."',
        "# to a repository before applying this file on a new machine.",
        "",
    ]
    for r in repos:
        out.append(f"[repositories.{_toml_key(r['name'])}]")
        out.append(f"url = {_toml_value(r['url'])}")
        for key in (
            "encryption",
            "ssh_command",
            "lock_wait",
            "upload_ratelimit",
            "device",
            "automount",
            "eject_after",
        ):
            if r.get(key):
                out.append(f"{key} = {_toml_value(r[key])}")
        if r.get("has_passphrase") or r.get("has_passcommand"):
            out.append("# this repository has a passphrase or passcommand (not exported)")
        out.append("")
    for p in profiles:
        out.append(f"[profiles.{_toml_key(p['name'])}]")
        out.append(f"repository = {_toml_value(p['repository'])}")
        out.append(f"sources = {_toml_value(list(p['sources']))}")
        for key in PROFILE_KEYS:
            value = p.get(key)
            if value is None or value == PROFILE_DEFAULTS.get(key):
                continue
            shown = format_duration(value) if key in DURATION_KEYS else value
            out.append(f"{key} = {_toml_value(shown)}")
        out.append("")
    for s in schedules:
        out.append("[[schedules]]")
        for key in ("profile", "action", "spec"):
            out.append(f"{key} = {_toml_value(s[key])}")
        for key in SCHEDULE_KEYS:
            value = s.get(key)
            if value is None or value == SCHEDULE_DEFAULTS.get(key):
                continue
            shown = format_duration(value) if key in DURATION_KEYS else value
            out.append(f"{key} = {_toml_value(shown)}")
        out.append("")
    for x in notifiers or []:
        out.append(f"[notifiers.{_toml_key(x['name'])}]")
        out.append(f"kind = {_toml_value(x['kind'])}")
        out.append(f"events = {_toml_value(list(x['events']))}")
        if x["profiles"]:
            out.append(f"profiles = {_toml_value(list(x['profiles']))}")
        if not x["enabled"]:
            out.append("enabled = false")
        out.append(f"url = {_toml_value(SECRET_REF.format(name=x['name']))}")
        out.append(f'# on another machine: url_env = "VAR" (its URL is not exported; {x["host"]})')
        out.append("")
    return "\n".join(out).rstrip() + "\n"
