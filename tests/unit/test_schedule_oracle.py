"""Calendar specs against the real ``systemd-analyze calendar`` (the oracle).

A seeded generator makes several hundred calendar events (weekday lists and
ranges, year lists, repetitions, ``~`` month ends, Feb 29, seconds, zones …).
For every zone and base time, one batched ``systemd-analyze`` call prints the
next elapses of all specs; ours must be equal — except where a DST gap or fold
is involved, where ours must follow borgd's documented rule instead (a
nonexistent local time fires at the transition; an ambiguous one fires once).
"""

from __future__ import annotations

import itertools
import os
import random
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from borgd.core.schedule import Spec, SpecError, parse_spec

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.fixture(autouse=True)
def _oracle_installed() -> None:
    """The oracle is a test dependency (scripts/bootstrap.sh installs systemd): without it
    these tests fail instead of silently checking nothing."""
    assert SYSTEMD_ANALYZE, "systemd-analyze is not installed: run scripts/bootstrap.sh --test"


ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Pacific/Chatham",
)
ITERATIONS = 6
BASES = (
    1_700_000_000,  # 2023-11-14 22:13:20 UTC
    int(datetime(2024, 2, 27, 12, 30, tzinfo=UTC).timestamp()),  # before a leap day
    int(datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()),  # year end
    int(datetime(2025, 3, 29, 20, 0, tzinfo=UTC).timestamp()),  # before EU spring gap
    int(datetime(2025, 10, 25, 21, 0, tzinfo=UTC).timestamp()),  # before EU autumn fold
    int(datetime(2025, 4, 5, 12, 0, tzinfo=UTC).timestamp()),  # before Sydney/Chatham fold
    int(datetime(2028, 2, 28, 23, 0, tzinfo=UTC).timestamp()),  # leap year, month end
    int(datetime(2025, 3, 8, 12, 0, tzinfo=UTC).timestamp()),  # before US spring gap
    int(datetime(2025, 9, 27, 10, 0, tzinfo=UTC).timestamp()),  # before Chatham spring gap
    int(datetime(2025, 10, 4, 12, 0, tzinfo=UTC).timestamp()),  # before Sydney spring gap
)

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_LONG = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_SHORTHANDS = (
    "minutely",
    "hourly",
    "daily",
    "weekly",
    "monthly",
    "quarterly",
    "semiannually",
    "yearly",
    "annually",
)


def _weekday_part(rng: random.Random) -> str:
    def name(i: int) -> str:
        word = rng.choice((_WEEKDAYS, _LONG))[i]
        return rng.choice((word, word.lower(), word.upper()))

    parts = []
    for _ in range(rng.randint(1, 2)):
        a = rng.randrange(7)
        if rng.random() < 0.5 and a < 6:
            b = rng.randrange(a + 1, 7)
            parts.append(f"{name(a)}{rng.choice(('..', '..', '-'))}{name(b)}")
        else:
            parts.append(name(a))
    return ",".join(parts)


def _num(rng: random.Random, v: int, width: int) -> str:
    return f"{v:0{width}d}" if rng.random() < 0.5 else str(v)


def _chain(rng: random.Random, lo: int, hi: int, width: int, star: float = 0.4) -> str:
    if rng.random() < star:
        return "*"
    items = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        kind = rng.random()
        a = rng.randint(lo, hi)
        if kind < 0.5:
            items.append(_num(rng, a, width))
        elif kind < 0.75 and a < hi:
            b = rng.randint(a + 1, hi)
            rep = f"/{rng.randint(1, max(1, b - a))}" if rng.random() < 0.3 else ""
            items.append(f"{_num(rng, a, width)}..{_num(rng, b, width)}{rep}")
        else:
            a = rng.randint(lo, max(lo, hi - 1))
            rep = rng.randint(1, max(1, hi - a))
            items.append(f"{_num(rng, a, width)}/{rep}")
    return ",".join(items)


def _year_chain(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.55:
        return "*"
    if r < 0.7:
        return ",".join(str(y) for y in sorted(rng.sample(range(2023, 2033), rng.randint(1, 3))))
    if r < 0.8:
        a = rng.randint(2023, 2030)
        return f"{a}..{rng.randint(a + 1, 2034)}"
    if r < 0.9:
        return f"{rng.randint(2020, 2030)}/{rng.randint(1, 4)}"
    return rng.choice(("24", "25,27", "26..29", "28/4"))  # two-digit years are 20xx


def _date_part(rng: random.Random) -> str:
    month = _chain(rng, 1, 12, 2)
    r = rng.random()
    if r < 0.15:
        day = rng.choice(("01", "1", "02", "07/1", "1..3", "28", "5/2", "1,15"))
        sep = "~"
    else:
        sep = "-"
        if r < 0.3:
            day = rng.choice(("29", "30", "31", "28..31", "29,31", "1,15", "1/2", "31"))
        else:
            day = _chain(rng, 1, 28, 2)
    if rng.random() < 0.15:
        month = rng.choice(("02", "2", "02,03", "1..3"))
    if rng.random() < 0.25:
        return f"{month}{sep}{day}"
    return f"{_year_chain(rng)}-{month}{sep}{day}"


def _time_part(rng: random.Random) -> str:
    hour = _chain(rng, 0, 23, 2, star=0.25)
    minute = _chain(rng, 0, 59, 2, star=0.2)
    r = rng.random()
    if r < 0.45:
        return f"{hour}:{minute}"
    if r < 0.8:
        second = rng.choice(("00", "0", "30", "*", "0/20", "15,45", "10..20/5", "59"))
        return f"{hour}:{minute}:{second}"
    return f"{hour}:{minute}:{_chain(rng, 0, 59, 2)}"


def generate_specs(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    specs: list[str] = []
    while len(specs) < count:
        r = rng.random()
        if r < 0.06:
            spec = rng.choice(_SHORTHANDS)
        else:
            parts = []
            if rng.random() < 0.35:
                parts.append(_weekday_part(rng))
            if rng.random() < 0.75:
                parts.append(_date_part(rng))
            if rng.random() < 0.85 or not parts:
                parts.append(_time_part(rng))
            spec = " ".join(parts)
        if rng.random() < 0.12:
            spec += " " + rng.choice(("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"))
        specs.append(spec)
    return specs


# Hand-picked edge cases: month ends, leap days, '~', year lists, two-digit years.
EDGE_SPECS = [
    "*-02-29",
    "*-02-29 12:00",
    "Mon *-02-29",
    "*-02~01",
    "*-02~03",
    "*-*~07/1",
    "Mon *-05~07/1",
    "*-*~1..3",
    "*-*-31",
    "*-*-30,31 23:59:59",
    "2024,2026,2028-02-29",
    "2023..2025-*-01 00:00",
    "2024..2030/2-*-*",
    "24-01-01",
    "*-1..12/5-1",
    "Mon..Fri *-*-* 09:00",
    "Sat,Sun *-*-* 10:30",
    "*:0/15",
    "*:*:0/20",
    "*-*-* 0:0:0..10/3",
    "*-*-* 02:30",
    "*-*-* 02:00..03:00/15:00",
    "*-*-* 02:45",
    "*-*-* 1,2,3:30",
    "hourly",
    "quarterly",
    "semiannually",
    "weekly",
    "2023-12-31 23:59:59",
    "2025-*-* 02:30 Europe/Berlin",
    "*-*-1/2 02:30 America/New_York",
    "Sun *-*-* 02:15",
    "Thu..Sat 2031-*-* 12:00 UTC",
]
INVALID_SPECS = [
    "bogus",
    "*:*/15",
    "Mon *-*-* 25:00",
    "*-*-* 10..30:00",
    "*-*-* 22..2:00",
    "*:50/15",
    "*-*~01/1",
    "*-*~29",
    "Sat..Mon",
    "*-*-* 5",
    "*-*-5..1",
    "2200-01-01",
    "1969-01-01",
    "*-*-31..35",
    "*-02-29 12:00:60",
    "*-*-*-*",
    "Mon..",
    "*-*-1,,2",
    "*-*-1.5",
    "10:00:00:00",
    "*-*-1/31",
    "*-1/12-1",
    "*-*-* 0:0:1.",
    "Mo",
]


@dataclass
class Block:
    normalized: str
    instants: list[datetime]


_TS = re.compile(r"^\w{3} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (\S+)$")


def _parse_ts(text: str) -> datetime:
    m = _TS.match(text.strip())
    assert m, text
    assert m.group(2) == "UTC", text
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def run_systemd(
    specs: list[str], zone: str, base: int, iterations: int = ITERATIONS
) -> tuple[list[Block | None], set[str]]:
    """One batched call; a block per spec (None where systemd refused or failed it),
    and the set of those specs."""
    assert SYSTEMD_ANALYZE is not None
    env = dict(os.environ, TZ=zone, SYSTEMD_COLORS="0", LC_ALL="C")
    proc = subprocess.run(
        [
            SYSTEMD_ANALYZE,
            "calendar",
            f"--base-time=@{base}",
            f"--iterations={iterations}",
            "--",
            *specs,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    failed = set(re.findall(r"Failed to parse calendar specification '(.*)':", proc.stderr))
    # systemd's own search gives up on some specs in zones with DST ("Infinite loop in
    # calendar calculation", EDEADLK): it prints no block for them.
    broken = set(re.findall(r"Failed to determine next elapse for '(.*)':", proc.stderr))
    blocks: list[Block] = []
    utc_lines = zone == "UTC"
    for line in proc.stdout.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "Normalized form":
            blocks.append(Block(value, []))
        elif value == "never":
            continue
        elif key == "(in UTC)" or (
            utc_lines and (key == "Next elapse" or key.startswith("Iter."))
        ):
            blocks[-1].instants.append(_parse_ts(value))
    out: list[Block | None] = []
    it = iter(blocks)
    for spec in specs:
        out.append(None if spec in failed or spec in broken else next(it))
    assert next(it, None) is None
    return out, failed | broken


def ours(spec: Spec, base: datetime, count: int) -> list[datetime]:
    return list(itertools.islice(spec.iter_after(base), count))


def _near_transition(tz: ZoneInfo | timezone, instant: datetime) -> bool:
    """Is ``instant`` on or next to a day on which the zone's UTC offset changes?"""
    window = timedelta(hours=26)
    return (instant - window).astimezone(tz).utcoffset() != (instant + window).astimezone(
        tz
    ).utcoffset()


def _rule_instant(tz: ZoneInfo | timezone, wall: datetime) -> datetime:
    """borgd's documented DST rule, implemented independently of the package:
    an existing wall time maps to its first occurrence (fold=0), a nonexistent one
    to the instant the clock jumps over it (scanned minute by minute)."""
    first = wall.replace(tzinfo=tz).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    # ``first`` lies after the jump, and no jump is longer than 3 h: scan from before it.
    probe = (first - timedelta(hours=3)).replace(second=0, microsecond=0)
    offset = probe.astimezone(tz).utcoffset()
    while probe.astimezone(tz).utcoffset() == offset:
        probe += timedelta(minutes=1)
    return probe


def _zone_free(spec: Spec) -> str:
    key = getattr(spec.tz, "key", None)
    if key and spec.normalized.endswith(" " + key):
        return spec.normalized[: -len(key) - 1]
    return spec.normalized


@dataclass
class Suspect:
    text: str
    spec: Spec
    base: int
    got: list[datetime]


def compare(spec: Spec, base: int, block: Block, suspects: list[Suspect]) -> bool:
    """True if equal to systemd; a mismatch near a DST transition becomes a suspect
    (checked against the documented rule later), any other mismatch fails."""
    assert spec.normalized == block.normalized, spec.text
    start = datetime.fromtimestamp(base, UTC)
    expected = block.instants
    got = ours(spec, start, ITERATIONS)
    got_s = [g.replace(microsecond=0) for g in got]  # systemd prints whole seconds
    if got_s == expected:
        return True
    # Compare over the common span: one extra or missing instant shifts the tails.
    horizon = min(expected[-1], got_s[-1]) if expected and got_s else None
    differing = {
        t for t in set(got_s).symmetric_difference(expected) if horizon is None or t <= horizon
    }
    if not differing and len(expected) < len(got_s) and len(expected) < ITERATIONS:
        differing = set(got_s[len(expected) :])  # systemd: "never"
    bad = sorted(t for t in differing if not _near_transition(spec.tz, t))
    assert not bad, (
        f"{spec.text!r} in {spec.tz} from @{base}: mismatch away from DST at {bad}; "
        f"systemd={expected} ours={got_s}"
    )
    suspects.append(Suspect(spec.text, spec, base, got))
    return False


def check_against_rule(suspects: list[Suspect]) -> None:
    """Wall-clock matches from systemd in UTC (no DST there), mapped through the rule."""
    groups: dict[tuple[str, int], list[Suspect]] = {}
    for s in suspects:
        key = getattr(s.spec.tz, "key", "UTC")
        local = datetime.fromtimestamp(s.base, UTC).astimezone(s.spec.tz)
        wall_base = int(local.replace(tzinfo=None).replace(tzinfo=UTC).timestamp())
        groups.setdefault((key, wall_base), []).append(s)
    for (_, wall_base), members in groups.items():
        texts = [_zone_free(m.spec) for m in members]
        blocks, failed = run_systemd(texts, "UTC", wall_base - 4 * 3600, iterations=400)
        assert not failed
        for member, block in zip(members, blocks, strict=True):
            assert block is not None
            start = datetime.fromtimestamp(member.base, UTC)
            mapped = sorted(
                {_rule_instant(member.spec.tz, w.replace(tzinfo=None)) for w in block.instants}
            )
            reference = [t for t in mapped if t > start][: len(member.got)]
            assert len(reference) == len(member.got), "reference run too short"
            got_s = [g.replace(microsecond=0) for g in member.got]
            assert got_s == reference, (
                f"{member.text!r} in {member.spec.tz} from @{member.base}: "
                f"rule={reference} ours={got_s}"
            )


SPECS = EDGE_SPECS + generate_specs(20240229, 320)


def test_generator_is_deterministic() -> None:
    assert generate_specs(7, 50) == generate_specs(7, 50)
    assert len(set(SPECS)) > 300


def test_validity_agrees_with_systemd() -> None:
    candidates = SPECS + INVALID_SPECS
    blocks, failed = run_systemd(candidates, "UTC", BASES[0])
    disagreements = []
    for text, block in zip(candidates, blocks, strict=True):
        try:
            parse_spec(text, "UTC")
            we_accept = True
        except SpecError:
            we_accept = False
        if we_accept != (block is not None):
            disagreements.append((text, we_accept))
    assert not disagreements
    assert set(INVALID_SPECS) <= failed
    assert len(failed & set(SPECS)) < len(SPECS) // 4  # the generator mostly makes valid specs


@pytest.mark.parametrize("zone", ZONES)
def test_next_elapses_match_systemd(zone: str) -> None:
    valid: list[str] = []
    for text in SPECS:
        try:
            parse_spec(text, zone)
        except SpecError:
            continue
        valid.append(text)
    assert len(valid) >= 250
    equal = 0
    systemd_failed = 0
    suspects: list[Suspect] = []
    for base in BASES:
        blocks, _ = run_systemd(valid, zone, base)
        for text, block in zip(valid, blocks, strict=True):
            spec = parse_spec(text, zone)
            if block is None:
                systemd_failed += 1
                # systemd gave up (a DST-related loop); we must still answer.
                assert spec.next_after(datetime.fromtimestamp(base, UTC)) is not None
                continue
            equal += compare(spec, base, block, suspects)
    check_against_rule(suspects)
    total = len(valid) * len(BASES)
    assert systemd_failed <= 0.03 * total
    assert equal >= 0.9 * total
    if zone in ("Europe/Berlin", "America/New_York", "Australia/Sydney", "Pacific/Chatham"):
        assert suspects, "the base times should make some specs cross a DST transition"
    else:  # only specs with their own DST zone suffix can be affected
        assert all(str(s.spec.tz) != zone for s in suspects)


def test_documented_gap_difference_for_berlin() -> None:
    """The documented difference shows up exactly where systemd skips a gap day."""
    spec = parse_spec("*-*-* 02:30", "Europe/Berlin")
    base = int(datetime(2025, 3, 29, 12, 0, tzinfo=UTC).timestamp())  # Sat 13:00 CET
    (block,), _ = run_systemd(["*-*-* 02:30"], "Europe/Berlin", base)
    assert block is not None
    # systemd: Sunday's 02:30 does not exist, so Monday 02:30 CEST comes next …
    assert block.instants[0] == datetime(2025, 3, 31, 0, 30, tzinfo=UTC)
    got = ours(spec, datetime.fromtimestamp(base, UTC), 2)
    # … we fire on Sunday at 03:00 CEST (01:00 UTC), the end of the gap, then agree.
    assert got == [datetime(2025, 3, 30, 1, 0, tzinfo=UTC), block.instants[0]]


def fuzzed_specs(seed: int, count: int) -> list[str]:
    """Random token soup and mutated generated specs: mostly invalid, some odd but valid."""
    rng = random.Random(seed)
    alphabet = "0123456789*-~:,./"
    out: set[str] = set()
    while len(out) < count:
        if rng.random() < 0.5:
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14)))
            if rng.random() < 0.2:
                text = f"{rng.choice(_WEEKDAYS + _LONG)}{rng.choice(('', ' ', ',', '..'))}{text}"
        else:
            text = generate_specs(rng.randrange(10**9), 1)[0]
            i = rng.randrange(len(text))
            text = text[:i] + rng.choice(alphabet) + text[i + 1 :]
        if text.strip() != text or text.startswith("-") or "'" in text:
            continue  # not passable as one argv word / leading blanks are our leniency
        if len(text.split()) >= 4 and ":" not in text:
            continue  # that shape is read as cron by parse_spec
        out.add(text)
    return sorted(out)


def test_fuzzed_specs_agree_with_systemd() -> None:
    """Validity, normal form and next elapses of 1500 odd specs, in UTC."""
    specs = fuzzed_specs(4242, 1500)
    blocks, _ = run_systemd(specs, "UTC", BASES[0])
    start = datetime.fromtimestamp(BASES[0], UTC)
    accepted = 0
    for text, block in zip(specs, blocks, strict=True):
        try:
            spec = parse_spec(text, "UTC")
        except SpecError:
            assert block is None, f"systemd accepts {text!r}, we do not"
            continue
        assert block is not None, f"we accept {text!r}, systemd does not"
        accepted += 1
        assert spec.normalized == block.normalized, text
        got = [g.replace(microsecond=0) for g in ours(spec, start, len(block.instants))]
        assert got == block.instants, text
    assert accepted > 150
