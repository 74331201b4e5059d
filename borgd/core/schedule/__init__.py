"""Pure schedule maths: parse schedule specs and compute their next occurrences.

No I/O (apart from looking up time zones), no clock reads, no processes: "now"
is always an argument.  Specs:

* intervals ``every 90s``, ``every 1h30m`` (units s m h d w), measured from an anchor;
* systemd calendar events, the full systemd.time(7) grammar including the
  shorthands (``daily``, ``weekly`` = Mon 00:00, ``quarterly``, ``semiannually``
  …), ``~`` (days from the end of the month), repetitions and a trailing
  ``UTC`` or IANA zone — normalised and computed like systemd 252;
* five-field cron expressions and ``@daily``-style macros, with cron's rule
  that a day matches when EITHER restricted day field matches.

DST rule (calendar and cron; the one deliberate difference from systemd):

* a local time that does not exist (spring gap, e.g. 02:30 on the last Sunday
  of March in Europe/Berlin) fires at the first instant after the gap — the
  transition itself, 03:00 local.  systemd skips that day instead.  Several
  matching times inside one gap coalesce into that single instant;
* an ambiguous local time (autumn fold) fires once, at its first occurrence
  (``fold=0``); the repeated stretch of wall-clock time never fires again.

Every returned instant is an aware UTC datetime.
"""

from __future__ import annotations

from borgd.core.schedule.errors import SpecError
from borgd.core.schedule.plan import MISSED_COUNT_CAP, Plan, plan_next
from borgd.core.schedule.spec import ON_CONNECT, Kind, Spec, parse_spec
from borgd.core.schedule.upcoming import upcoming
from borgd.core.schedule.zones import local_zone, resolve_zone

__all__ = [
    "MISSED_COUNT_CAP",
    "ON_CONNECT",
    "Kind",
    "Plan",
    "Spec",
    "SpecError",
    "local_zone",
    "parse_spec",
    "plan_next",
    "resolve_zone",
    "upcoming",
]
