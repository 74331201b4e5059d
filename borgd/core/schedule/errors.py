"""The one exception type of the schedule package."""

from __future__ import annotations


class SpecError(ValueError):
    """A schedule spec that cannot be parsed or can never be computed.

    The message says what is wrong and where, e.g.
    ``hour 25 out of range 0-23 at position 11 in 'Mon *-*-* 25:00'``.
    ``position`` is 1-based (``None`` when the whole spec is at fault),
    ``text`` is the spec as given and ``reason`` the message without the
    location suffix.
    """

    def __init__(self, reason: str, text: str | None = None, position: int | None = None) -> None:
        self.reason = reason
        self.text = text
        self.position = position
        message = reason
        if text is not None:
            if position is not None:
                message = f"{reason} at position {position} in {text!r}"
            else:
                message = f"{reason} in {text!r}"
        super().__init__(message)
