"""Reliability harness (issue 7): crash, sleep, clock, load and fault runs against borgd.

Fast versions run in the default suite; the long ones are marked ``slow``
(``pytest -m slow tests/reliability`` or ``bench/reliability_long.py``).
"""
