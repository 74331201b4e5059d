"""SecretStore: the file backend for real, the Secret Service against a small fake.

The fake implements just what the Secret Service spec requires for borgd's
calls (plain sessions, SearchItems, GetSecrets, ReadAlias, CreateItem,
Item.Delete, a Locked collection that answers CreateItem with a prompt), on
a private session bus.
"""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import anyio
import pytest
import structlog.testing
from dbus_fast import BusType, DBusError, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import (
    DBusBool,
    DBusDict,
    DBusObjectPath,
    DBusSignature,
    DBusStr,
    DBusVariant,
)
from dbus_fast.constants import NameFlag, PropertyAccess, RequestNameReply
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property
from dbusmock.testcase import BusType as MockBusType
from dbusmock.testcase import PrivateDBus

from borgd.system.secrets import SecretStore, SecretUnavailable
from tests.mock_buses import module_bus

PASSPHRASE = b"correct horse battery staple \xc3\xa9"
BASE = "/org/freedesktop/secrets"
COLLECTION = f"{BASE}/collection/login"

SecretStruct = Annotated[list[Any], DBusSignature("(oayays)")]


# -- a fake org.freedesktop.secrets --------------------------------------------


class FakeItem(ServiceInterface):
    def __init__(self, service: FakeService, path: str, attrs: dict[str, str], label: str):
        super().__init__("org.freedesktop.Secret.Item")
        self.service, self.path, self.attrs, self.label = service, path, attrs, label
        self.secret = b""
        self.content_type = ""

    @dbus_method(name="Delete")
    def delete(self) -> DBusObjectPath:
        if self.service.locked:
            raise DBusError("org.freedesktop.Secret.Error.IsLocked", "locked")
        self.service.remove(self)
        return "/"


class FakeSession(ServiceInterface):
    def __init__(self, service: FakeService, path: str):
        super().__init__("org.freedesktop.Secret.Session")
        self.service, self.path = service, path

    # Methods without a result carry no return annotation: with postponed
    # annotations dbus-fast would read "None" as a signature.
    @dbus_method(name="Close")
    def close(self):  # type: ignore[no-untyped-def]
        self.service.sessions.discard(self.path)
        self.service.bus.unexport(self.path, self)


class FakePrompt(ServiceInterface):
    def __init__(self) -> None:
        super().__init__("org.freedesktop.Secret.Prompt")
        self.dismissed = False

    @dbus_method(name="Prompt")
    def prompt(self, window_id: DBusStr):  # type: ignore[no-untyped-def]
        raise AssertionError("borgd must never run a prompt")

    @dbus_method(name="Dismiss")
    def dismiss(self):  # type: ignore[no-untyped-def]
        self.dismissed = True


class FakeCollection(ServiceInterface):
    def __init__(self, service: FakeService):
        super().__init__("org.freedesktop.Secret.Collection")
        self.service = service

    @dbus_property(access=PropertyAccess.READ, name="Locked")
    def locked(self) -> DBusBool:
        return self.service.locked

    @dbus_method(name="CreateItem")
    def create_item(
        self, properties: DBusDict, secret: SecretStruct, replace: DBusBool
    ) -> Annotated[list[str], DBusSignature("oo")]:
        if self.service.locked or self.service.prompt_on_create:  # answered with a prompt
            self.service.bus.export(f"{BASE}/prompt/1", self.service.prompt)
            return ["/", f"{BASE}/prompt/1"]
        session, _params, value, content_type = secret
        if session not in self.service.sessions:
            raise DBusError("org.freedesktop.Secret.Error.NoSession", "no such session")
        attrs = dict(properties["org.freedesktop.Secret.Item.Attributes"].value)
        label = properties["org.freedesktop.Secret.Item.Label"].value
        item = self.service.find(attrs)[0] if replace and self.service.find(attrs) else None
        if item is None:
            self.service.counter += 1
            item = FakeItem(self.service, f"{COLLECTION}/{self.service.counter}", attrs, label)
            self.service.items[item.path] = item
            self.service.bus.export(item.path, item)
        item.secret, item.content_type, item.label = bytes(value), content_type, label
        return [item.path, "/"]


class FakeService(ServiceInterface):
    def __init__(self, bus: MessageBus):
        super().__init__("org.freedesktop.Secret.Service")
        self.bus = bus
        self.locked = False
        self.prompt_on_create = False  # e.g. a password manager asking for confirmation
        self.items: dict[str, FakeItem] = {}
        self.sessions: set[str] = set()
        self.algorithms: list[str] = []
        self.counter = 0
        self.collection = FakeCollection(self)
        self.prompt = FakePrompt()

    def find(self, attrs: dict[str, str]) -> list[FakeItem]:
        return [i for i in self.items.values() if attrs.items() <= i.attrs.items()]

    def remove(self, item: FakeItem) -> None:
        del self.items[item.path]
        self.bus.unexport(item.path, item)

    @dbus_method(name="OpenSession")
    def open_session(
        self, algorithm: DBusStr, input: DBusVariant
    ) -> Annotated[list[Any], DBusSignature("vo")]:
        self.algorithms.append(algorithm)
        if algorithm != "plain":
            raise DBusError("org.freedesktop.DBus.Error.NotSupported", algorithm)
        self.counter += 1
        path = f"{BASE}/session/s{self.counter}"
        self.sessions.add(path)
        self.bus.export(path, FakeSession(self, path))
        return [Variant("s", ""), path]

    @dbus_method(name="SearchItems")
    def search_items(
        self, attributes: Annotated[dict[str, str], DBusSignature("a{ss}")]
    ) -> Annotated[list[list[str]], DBusSignature("aoao")]:
        found = [i.path for i in self.find(attributes)]
        return [[], found] if self.locked else [found, []]

    @dbus_method(name="GetSecrets")
    def get_secrets(
        self, items: Annotated[list[str], DBusSignature("ao")], session: DBusObjectPath
    ) -> Annotated[dict[str, list[Any]], DBusSignature("a{o(oayays)}")]:
        if session not in self.sessions:
            raise DBusError("org.freedesktop.Secret.Error.NoSession", "no such session")
        if self.locked:
            raise DBusError("org.freedesktop.Secret.Error.IsLocked", "locked")
        return {
            p: [session, b"", self.items[p].secret, self.items[p].content_type]
            for p in items
            if p in self.items
        }

    @dbus_method(name="ReadAlias")
    def read_alias(self, name: DBusStr) -> DBusObjectPath:
        return COLLECTION if name == "default" else "/"


session_bus = module_bus(MockBusType.SESSION)


@pytest.fixture
async def fake_service(session_bus: PrivateDBus) -> AsyncIterator[FakeService]:
    bus = await MessageBus(bus_address=session_bus.address, bus_type=BusType.SESSION).connect()
    service = FakeService(bus)
    bus.export(BASE, service)
    bus.export(COLLECTION, service.collection)
    reply = await bus.request_name("org.freedesktop.secrets", NameFlag.DO_NOT_QUEUE)
    assert reply == RequestNameReply.PRIMARY_OWNER
    try:
        yield service
    finally:
        bus.disconnect()
        await bus.wait_for_disconnect()


@pytest.fixture
async def client(session_bus: PrivateDBus) -> AsyncIterator[MessageBus]:
    bus = await MessageBus(bus_address=session_bus.address, bus_type=BusType.SESSION).connect()
    try:
        yield bus
    finally:
        bus.disconnect()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- file backend ----------------------------------------------------------------


@pytest.mark.anyio
async def test_file_backend_round_trip_with_private_modes(tmp_path: Path) -> None:
    config = tmp_path / "config" / "borgd"
    store = SecretStore(config)
    old_umask = os.umask(0o022)  # a typical, permissive umask
    try:
        with anyio.fail_after(10), structlog.testing.capture_logs() as logs:
            assert await store.backend() == "file"
            assert await store.get("home") is None
            await store.set("home", PASSPHRASE)
            path = config / "secrets" / "home.passphrase"
            assert path.read_bytes() == PASSPHRASE
            assert mode(path) == 0o600
            assert mode(config / "secrets") == 0o700
            assert await store.get("home") == PASSPHRASE
            # No temporary files are left behind.
            assert sorted(p.name for p in (config / "secrets").iterdir()) == ["home.passphrase"]

            await store.set("home", b"second")
            assert await store.get("home") == b"second"
            assert mode(path) == 0o600

            await store.delete("home")
            assert not path.exists()
            assert await store.get("home") is None
            await store.delete("home")  # deleting nothing is fine
    finally:
        os.umask(old_umask)
    assert logs, "stores and deletes are logged"
    text = repr(logs)
    assert "correct horse" not in text and "second" not in text
    assert all(set(e) <= {"event", "log_level", "repository", "backend"} for e in logs)


@pytest.mark.anyio
async def test_file_backend_modes_under_odd_umasks_and_wide_directory(tmp_path: Path) -> None:
    store = SecretStore(tmp_path)
    (tmp_path / "secrets").mkdir(mode=0o755)
    os.chmod(tmp_path / "secrets", 0o755)
    old_umask = os.umask(0o377)  # would leave the owner unable to write
    try:
        with anyio.fail_after(10):
            await store.set("r1", b"x")
    finally:
        os.umask(old_umask)
    assert mode(tmp_path / "secrets") == 0o700
    assert mode(tmp_path / "secrets" / "r1.passphrase") == 0o600


@pytest.mark.anyio
async def test_file_backend_refuses_unsafe_files_and_names(tmp_path: Path) -> None:
    store = SecretStore(tmp_path)
    with anyio.fail_after(10):
        await store.set("r", b"pw")
        path = tmp_path / "secrets" / "r.passphrase"
        os.chmod(path, 0o644)
        with pytest.raises(SecretUnavailable, match="chmod 600"):
            await store.get("r")
        os.chmod(path, 0o600)
        path.write_bytes(b"hand written\n")  # an editor's final newline is not part of it
        assert await store.get("r") == b"hand written"

        os.symlink(path, tmp_path / "secrets" / "link.passphrase")
        with pytest.raises(SecretUnavailable, match="symbolic link"):
            await store.get("link")

        for bad in ("", "../evil", "a/b", ".hidden"):
            with pytest.raises(ValueError):
                await store.set(bad, b"pw")
        with pytest.raises(ValueError):
            await store.set("r", b"two\nlines")


# -- Secret Service ----------------------------------------------------------------


@pytest.mark.anyio
async def test_secret_service_round_trip(
    tmp_path: Path, fake_service: FakeService, client: MessageBus
) -> None:
    store = SecretStore(tmp_path, client)
    with anyio.fail_after(10), structlog.testing.capture_logs() as logs:
        assert await store.backend() == "secret-service"
        assert await store.get("home") is None

        await store.set("home", PASSPHRASE)
        [item] = fake_service.items.values()
        assert item.attrs == {"application": "borgd", "repository": "home"}
        assert item.secret == PASSPHRASE
        assert "home" in item.label
        assert set(fake_service.algorithms) == {"plain"}
        assert not (tmp_path / "secrets" / "home.passphrase").exists()
        assert fake_service.sessions == set(), "sessions are closed after use"

        assert await store.get("home") == PASSPHRASE
        await store.set("home", b"replaced")
        assert len(fake_service.items) == 1
        assert await store.get("home") == b"replaced"

        await store.set("other", b"x")
        assert await store.get("other") == b"x"
        assert await store.get("home") == b"replaced"

        await store.delete("home")
        assert [i.attrs["repository"] for i in fake_service.items.values()] == ["other"]
        assert await store.get("home") is None
    text = repr(logs)
    assert "correct horse" not in text and "replaced" not in text


@pytest.mark.anyio
async def test_secret_service_falls_back_to_and_replaces_file_copy(
    tmp_path: Path, fake_service: FakeService, client: MessageBus
) -> None:
    await SecretStore(tmp_path).set("old", b"from file times")
    store = SecretStore(tmp_path, client)
    with anyio.fail_after(10):
        assert await store.get("old") == b"from file times"
        await store.set("old", b"now in keyring")
        assert not (tmp_path / "secrets" / "old.passphrase").exists()
        assert await store.get("old") == b"now in keyring"


@pytest.mark.anyio
async def test_locked_collection_raises_secret_unavailable(
    tmp_path: Path, fake_service: FakeService, client: MessageBus
) -> None:
    store = SecretStore(tmp_path, client)
    with anyio.fail_after(10):
        await store.set("home", PASSPHRASE)
        fake_service.locked = True
        with pytest.raises(SecretUnavailable, match="locked") as info:
            await store.get("home")
        assert "unlock" in str(info.value)
        with pytest.raises(SecretUnavailable, match="locked"):
            await store.set("new", b"pw")
        # Nothing was written, and no prompt was even asked for.
        assert not fake_service.prompt.dismissed
        assert [i.attrs["repository"] for i in fake_service.items.values()] == ["home"]
        assert not (tmp_path / "secrets" / "new.passphrase").exists()
        with pytest.raises(SecretUnavailable, match="locked"):
            await store.delete("home")
        fake_service.locked = False
        assert await store.get("home") == PASSPHRASE


@pytest.mark.anyio
async def test_session_bus_without_secret_service_uses_files(
    tmp_path: Path, client: MessageBus
) -> None:
    store = SecretStore(tmp_path, client)
    with anyio.fail_after(10):
        assert await store.backend() == "file"
        await store.set("home", b"pw")
        assert (tmp_path / "secrets" / "home.passphrase").read_bytes() == b"pw"
        assert await store.get("home") == b"pw"


@pytest.mark.anyio
async def test_prompt_is_dismissed_never_shown(
    tmp_path: Path, fake_service: FakeService, client: MessageBus
) -> None:
    store = SecretStore(tmp_path, client)
    fake_service.prompt_on_create = True
    with anyio.fail_after(10):
        with pytest.raises(SecretUnavailable, match="does not show prompts"):
            await store.set("home", PASSPHRASE)
    assert fake_service.prompt.dismissed
    assert fake_service.items == {}
    assert not (tmp_path / "secrets" / "home.passphrase").exists()
