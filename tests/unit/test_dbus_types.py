"""Every published dictionary marshals, whatever the row held."""

from __future__ import annotations

from dbus_fast import Message, MessageType

from borgd.dbus.types import ARCHIVE_KEYS, JOB_KEYS, RowsOnce, to_variants


def marshalled(rows: list) -> Message:
    """The reply as the bus would carry it, read back."""
    import io

    from dbus_fast._private.unmarshaller import Unmarshaller

    msg = Message(
        message_type=MessageType.METHOD_RETURN,
        reply_serial=1,
        destination=":1.1",
        signature="aa{sv}",
        body=[rows],
    )
    return Unmarshaller(io.BytesIO(bytes(msg._marshall(False)))).unmarshall()


def test_values_out_of_range_or_missing_are_held_to_the_signature() -> None:
    row = {
        "id": 2**70,  # t: held at 2**64 - 1
        "exit_code": -(2**40),  # i: held at -2**31
        "nfiles": None,  # missing: the type's zero
        "message": b"x",  # not a str: its text
        "progress": "0.5",  # d from text
        "profile": None,
        "unknown_key": 1,  # not published
    }
    out = to_variants(row, {**JOB_KEYS, "nfiles": "t", "progress": "d"})
    assert out.keys() == {"id", "exit_code", "nfiles", "message", "progress", "profile"}
    back = marshalled([out]).body[0][0]
    assert {k: v.value for k, v in back.items()} == {
        "id": 2**64 - 1,
        "exit_code": -(2**31),
        "nfiles": 0,
        "message": "b'x'",
        "progress": 0.5,
        "profile": "",
    }


def test_only_names_a_subset() -> None:
    row = {"name": "a", "id": "ff", "start": 5, "checkpoint": 1}
    out = to_variants(row, ARCHIVE_KEYS, only=["start", "checkpoint", "nope"])
    assert {k: (v.signature, v.value) for k, v in out.items()} == {
        "start": ("t", 5),
        "checkpoint": ("b", True),
    }


def test_rows_are_built_again_for_a_new_result_and_not_for_the_same() -> None:
    memo = RowsOnce(size=2)
    built: list[int] = []

    def build(n: int) -> list:
        built.append(n)
        return [to_variants({"start": n}, ARCHIVE_KEYS)]

    first, second = (1,), (2,)
    a = memo.get(first, "r", lambda: build(1))
    assert memo.get(first, "r", lambda: build(9)) is a  # the same result: the same rows
    memo.get(first, "other", lambda: build(3))  # another repository's name in the rows
    memo.get(second, "r", lambda: build(2))  # the oldest is dropped (size 2)
    memo.get(first, "r", lambda: build(4))
    assert built == [1, 3, 2, 4]
