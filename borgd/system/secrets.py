"""Repository passphrases: the Secret Service when the session has one, else 0600 files.

Secret Service (``org.freedesktop.secrets`` on the session bus): items in
the default collection with the attributes ``{"application": "borgd",
"repository": <name>}``, transferred over a ``plain`` session (the
session bus is private to the user). borgd never unlocks a collection or
answers a prompt itself: a locked keyring raises :class:`SecretUnavailable`
with a message saying what to do, and the scheduler reports
``secret-unavailable``.

File fallback: ``<config_dir>/secrets/<repository>.passphrase``, mode 0600
in a 0700 directory. A file is written to a fresh name created with
``O_CREAT | O_EXCL`` and mode 0600, then renamed into place, so no version
of it is ever readable by others. A file that is readable by others, or
not owned by the user, is refused.

Lookups try the Secret Service first and then the file, so that a
passphrase stored while no Secret Service ran is still found; storing into
the Secret Service removes the file copy. Passphrases never appear in a log
(not even their length) nor in an exception message.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import structlog
from dbus_fast import DBusError, Variant
from dbus_fast.aio import MessageBus, ProxyInterface
from dbus_fast.introspection import Node

from borgd.system.freedesktop import ABSENT_ERRORS, DBUS_NAME, DBUS_NODE, DBUS_PATH

SECRETS_NAME = "org.freedesktop.secrets"
SECRETS_PATH = "/org/freedesktop/secrets"
SERVICE_IFACE = "org.freedesktop.Secret.Service"
COLLECTION_IFACE = "org.freedesktop.Secret.Collection"
ITEM_IFACE = "org.freedesktop.Secret.Item"
SESSION_IFACE = "org.freedesktop.Secret.Session"
PROMPT_IFACE = "org.freedesktop.Secret.Prompt"

APPLICATION = "borgd"
CONTENT_TYPE = "text/plain"
NO_PATH = "/"

BACKEND_SECRET_SERVICE = "secret-service"
BACKEND_FILE = "file"

LOCKED_ERROR = "org.freedesktop.Secret.Error.IsLocked"


SERVICE_XML = """
<node>
  <interface name="org.freedesktop.Secret.Service">
    <method name="OpenSession">
      <arg name="algorithm" direction="in" type="s"/>
      <arg name="input" direction="in" type="v"/>
      <arg name="output" direction="out" type="v"/>
      <arg name="result" direction="out" type="o"/>
    </method>
    <method name="SearchItems">
      <arg name="attributes" direction="in" type="a{ss}"/>
      <arg name="unlocked" direction="out" type="ao"/>
      <arg name="locked" direction="out" type="ao"/>
    </method>
    <method name="GetSecrets">
      <arg name="items" direction="in" type="ao"/>
      <arg name="session" direction="in" type="o"/>
      <arg name="secrets" direction="out" type="a{o(oayays)}"/>
    </method>
    <method name="ReadAlias">
      <arg name="name" direction="in" type="s"/>
      <arg name="collection" direction="out" type="o"/>
    </method>
  </interface>
</node>
"""
SERVICE_NODE = Node.parse(SERVICE_XML)

COLLECTION_XML = """
<node>
  <interface name="org.freedesktop.Secret.Collection">
    <method name="CreateItem">
      <arg name="properties" direction="in" type="a{sv}"/>
      <arg name="secret" direction="in" type="(oayays)"/>
      <arg name="replace" direction="in" type="b"/>
      <arg name="item" direction="out" type="o"/>
      <arg name="prompt" direction="out" type="o"/>
    </method>
    <property name="Locked" type="b" access="read"/>
  </interface>
</node>
"""
COLLECTION_NODE = Node.parse(COLLECTION_XML)

ITEM_XML = """
<node>
  <interface name="org.freedesktop.Secret.Item">
    <method name="Delete">
      <arg name="prompt" direction="out" type="o"/>
    </method>
  </interface>
</node>
"""
ITEM_NODE = Node.parse(ITEM_XML)

SESSION_XML = """
<node>
  <interface name="org.freedesktop.Secret.Session">
    <method name="Close"/>
  </interface>
</node>
"""
SESSION_NODE = Node.parse(SESSION_XML)

PROMPT_XML = """
<node>
  <interface name="org.freedesktop.Secret.Prompt">
    <method name="Dismiss"/>
  </interface>
</node>
"""
PROMPT_NODE = Node.parse(PROMPT_XML)


def _log() -> Any:
    return structlog.get_logger(__name__)


class SecretUnavailable(Exception):
    """The passphrase exists (or must be stored) but cannot be used now.

    The message says why and what the user can do; it never contains the
    passphrase.
    """


class _ServiceGone(Exception):
    """The Secret Service left the bus between the check and the call."""


def check_repository_name(repo: str) -> None:
    """Refuse names that would escape the secrets directory or clash with temp files."""
    if (
        not repo
        or repo.startswith(".")
        or "/" in repo
        or "\0" in repo
        or len(repo.encode("utf-8", "surrogateescape")) > 200
    ):
        raise ValueError(f"invalid repository name for a secret: {repo!r}")


_SUFFIXES = {"repository": ".passphrase", "notifier": ".url"}
_NOUNS = {"repository": "the passphrase of repository", "notifier": "the URL of notifier"}


def _check_passphrase(passphrase: bytes) -> bytes:
    if not isinstance(passphrase, bytes | bytearray):
        raise TypeError("a passphrase must be bytes")
    data = bytes(passphrase)
    if b"\n" in data or b"\r" in data or b"\0" in data:
        raise ValueError("a passphrase must not contain line breaks or NUL bytes")
    return data


def _locked_message(noun: str, repo: str) -> str:
    return (
        f"the keyring holding {noun} {repo!r} is locked; "
        "unlock it (log in to the desktop session or open the password manager) "
        "and the job will run"
    )


def _prompt_message(noun: str, repo: str) -> str:
    return (
        f"the Secret Service wants to ask the user before changing {noun} "
        f"{repo!r} (a locked keyring or an access confirmation); borgd does "
        "not show prompts: unlock the keyring or allow access, then retry"
    )


class SecretStore:
    """Get, store and delete repository passphrases.

    ``config_dir`` is ``$XDG_CONFIG_HOME/borgd``; ``bus`` a connected
    session bus, or None to use files only.
    """

    call_timeout = 10.0

    def __init__(
        self, config_dir: Path, bus: MessageBus | None = None, kind: str = "repository"
    ) -> None:
        """`kind`: whose secrets — a repository's passphrase, or a notifier's URL (it
        carries tokens): items with the attribute `notifier`, files `<name>.url`."""
        self._config_dir = Path(config_dir)
        self._bus = bus
        self._kind = kind
        self._noun = _NOUNS[kind]

    @property
    def directory(self) -> Path:
        """Where the file backend keeps passphrases."""
        return self._config_dir / "secrets"

    def path_for(self, repo: str) -> Path:
        check_repository_name(repo)
        return self.directory / f"{repo}{_SUFFIXES[self._kind]}"

    # -- public API ----------------------------------------------------------

    async def backend(self) -> str:
        """``"secret-service"`` if the session bus has org.freedesktop.secrets, else ``"file"``."""
        bus = self._bus
        if bus is None or not bus.connected:
            return BACKEND_FILE
        dbus = bus.get_proxy_object(DBUS_NAME, DBUS_PATH, DBUS_NODE).get_interface(
            "org.freedesktop.DBus"
        )
        try:
            with anyio.fail_after(self.call_timeout):
                owned = await dbus.call_name_has_owner(SECRETS_NAME)  # type: ignore[attr-defined]
        except (DBusError, TimeoutError) as exc:
            _log().debug("secret_service_check_failed", error=str(exc))
            return BACKEND_FILE
        return BACKEND_SECRET_SERVICE if owned else BACKEND_FILE

    async def get(self, repo: str) -> bytes | None:
        """The passphrase of ``repo``, None when none is stored.

        Raises SecretUnavailable when it is in a locked keyring or its file
        is unsafe.
        """
        check_repository_name(repo)
        if await self.backend() == BACKEND_SECRET_SERVICE:
            try:
                found = await self._ss_get(repo)
            except _ServiceGone:
                found = None
            if found is not None:
                return found
        return await anyio.to_thread.run_sync(self._file_get, repo)

    async def is_locked(self, repo: str) -> bool:
        """True when the passphrase of ``repo`` is in the Secret Service, in a locked
        collection only.  Never unlocks, never prompts, never raises: a missing
        service, a missing item or a failing call is False (the run will say why)."""
        check_repository_name(repo)
        if await self.backend() != BACKEND_SECRET_SERVICE:
            return False
        service = self._iface(SECRETS_PATH, SERVICE_NODE, SERVICE_IFACE)
        try:
            with anyio.fail_after(self.call_timeout):
                unlocked, locked = await service.call_search_items(  # type: ignore[attr-defined]
                    self._attributes(repo)
                )
        except (DBusError, TimeoutError) as exc:
            _log().debug("secret_lock_check_failed", repository=repo, error=str(exc))
            return False
        return bool(locked) and not unlocked

    async def set(self, repo: str, passphrase: bytes) -> None:
        """Store (or replace) the passphrase of ``repo``."""
        check_repository_name(repo)
        data = _check_passphrase(passphrase)
        if await self.backend() == BACKEND_SECRET_SERVICE:
            try:
                await self._ss_set(repo, data)
            except _ServiceGone:
                pass
            else:
                # One source of truth: drop a copy left from file-only times.
                await anyio.to_thread.run_sync(self._file_delete, repo)
                _log().info("passphrase_stored", repository=repo, backend=BACKEND_SECRET_SERVICE)
                return
        await anyio.to_thread.run_sync(self._file_set, repo, data)
        _log().info("passphrase_stored", repository=repo, backend=BACKEND_FILE)

    async def delete(self, repo: str) -> None:
        """Forget the passphrase of ``repo`` everywhere; no error when there is none."""
        check_repository_name(repo)
        if await self.backend() == BACKEND_SECRET_SERVICE:
            with contextlib.suppress(_ServiceGone):
                await self._ss_delete(repo)
        await anyio.to_thread.run_sync(self._file_delete, repo)
        _log().info("passphrase_deleted", repository=repo)

    # -- Secret Service ------------------------------------------------------

    def _iface(self, path: str, node: Node, iface: str) -> ProxyInterface:
        assert self._bus is not None
        return self._bus.get_proxy_object(SECRETS_NAME, path, node).get_interface(iface)

    @contextlib.asynccontextmanager
    async def _session(self, repo: str) -> AsyncIterator[tuple[ProxyInterface, str]]:
        """A plain session; D-Bus failures become SecretUnavailable or _ServiceGone."""
        service = self._iface(SECRETS_PATH, SERVICE_NODE, SERVICE_IFACE)
        session: str | None = None
        try:
            with anyio.fail_after(self.call_timeout):
                _output, session = await service.call_open_session(  # type: ignore[attr-defined]
                    "plain", Variant("s", "")
                )
                assert session is not None
                yield service, session
        except DBusError as exc:
            if exc.type in ABSENT_ERRORS:
                raise _ServiceGone from exc
            if exc.type == LOCKED_ERROR:
                raise SecretUnavailable(_locked_message(self._noun, repo)) from exc
            raise SecretUnavailable(
                f"the Secret Service failed for {self._kind} {repo!r}: {exc.type}"
                + (f" ({exc.text})" if exc.text else "")
            ) from exc
        except TimeoutError as exc:
            raise SecretUnavailable(
                f"the Secret Service did not answer within {self.call_timeout:g} s"
            ) from exc
        finally:
            if session is not None:
                with contextlib.suppress(Exception), anyio.move_on_after(self.call_timeout):
                    close = self._iface(session, SESSION_NODE, SESSION_IFACE)
                    await close.call_close()  # type: ignore[attr-defined]

    async def _dismiss(self, prompt: str) -> None:
        with contextlib.suppress(Exception), anyio.move_on_after(self.call_timeout):
            await self._iface(prompt, PROMPT_NODE, PROMPT_IFACE).call_dismiss()  # type: ignore[attr-defined]

    def _attributes(self, repo: str) -> dict[str, str]:
        return {"application": APPLICATION, self._kind: repo}

    async def _ss_get(self, repo: str) -> bytes | None:
        async with self._session(repo) as (service, session):
            unlocked, locked = await service.call_search_items(  # type: ignore[attr-defined]
                self._attributes(repo)
            )
            if unlocked:
                item = sorted(unlocked)[0]
                secrets = await service.call_get_secrets([item], session)  # type: ignore[attr-defined]
                if item in secrets:
                    _session, _params, value, _content_type = secrets[item]
                    return bytes(value)
            if locked:
                raise SecretUnavailable(_locked_message(self._noun, repo))
            return None

    async def _ss_set(self, repo: str, passphrase: bytes) -> None:
        async with self._session(repo) as (service, session):
            path = await service.call_read_alias("default")  # type: ignore[attr-defined]
            if path == NO_PATH:
                raise SecretUnavailable(
                    "the Secret Service has no default keyring; create one (for example "
                    "with Seahorse or the password manager) or stop it to use a file"
                )
            collection = self._iface(path, COLLECTION_NODE, COLLECTION_IFACE)
            if await collection.get_locked():  # type: ignore[attr-defined]
                raise SecretUnavailable(_locked_message(self._noun, repo))
            properties = {
                "org.freedesktop.Secret.Item.Label": Variant(
                    "s", f"borgd {self._noun.removeprefix('the ')} {repo}"
                ),
                "org.freedesktop.Secret.Item.Attributes": Variant("a{ss}", self._attributes(repo)),
            }
            secret = [session, b"", passphrase, CONTENT_TYPE]
            _item, prompt = await collection.call_create_item(  # type: ignore[attr-defined]
                properties, secret, True
            )
            if prompt != NO_PATH:
                await self._dismiss(prompt)
                raise SecretUnavailable(_prompt_message(self._noun, repo))

    async def _ss_delete(self, repo: str) -> None:
        async with self._session(repo) as (service, _session):
            unlocked, locked = await service.call_search_items(  # type: ignore[attr-defined]
                self._attributes(repo)
            )
            if locked:
                raise SecretUnavailable(_locked_message(self._noun, repo))
            for item in unlocked:
                prompt = await self._iface(item, ITEM_NODE, ITEM_IFACE).call_delete()  # type: ignore[attr-defined]
                if prompt != NO_PATH:
                    await self._dismiss(prompt)
                    raise SecretUnavailable(_prompt_message(self._noun, repo))

    # -- files ---------------------------------------------------------------

    def _secure_directory(self) -> Path:
        self._config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory = self.directory
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)
        st = os.lstat(directory)
        if not stat.S_ISDIR(st.st_mode):
            raise SecretUnavailable(f"{directory} is not a directory")
        if st.st_uid != os.getuid():
            raise SecretUnavailable(f"{directory} belongs to another user")
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(directory, 0o700)  # the umask may have removed bits; never wider
        return directory

    @staticmethod
    def _fsync_directory(directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _file_set(self, repo: str, passphrase: bytes) -> None:
        directory = self._secure_directory()
        final = self.path_for(repo)
        temp = directory / f".{repo}.{os.urandom(8).hex()}.tmp"
        fd = os.open(
            temp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
            0o600,
        )
        try:
            try:
                os.fchmod(fd, 0o600)  # a umask can only have removed bits
                view = memoryview(passphrase)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        self._fsync_directory(directory)

    def _file_get(self, repo: str) -> bytes | None:
        path = self.path_for(repo)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SecretUnavailable(f"{path} is a symbolic link; refusing it") from None
            raise SecretUnavailable(f"cannot open {path}: {exc.strerror}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise SecretUnavailable(f"{path} is not a regular file")
            if st.st_uid != os.getuid():
                raise SecretUnavailable(f"{path} belongs to another user")
            mode = stat.S_IMODE(st.st_mode)
            if mode & 0o077:
                raise SecretUnavailable(
                    f"{path} has mode {mode:04o} and may have been read by others; "
                    f"run 'chmod 600 {path}' (and consider changing the passphrase)"
                )
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(fd)
        data = b"".join(chunks)
        # A hand-written file usually ends with a newline that is not part of it.
        if data.endswith(b"\r\n"):
            data = data[:-2]
        elif data.endswith(b"\n"):
            data = data[:-1]
        return data

    def _file_delete(self, repo: str) -> None:
        path = self.path_for(repo)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        self._fsync_directory(path.parent)
