"""`borgd`: wiring and lifecycle — paths, single instance, bus name, signals, shutdown.

Start order: file lock on the state directory, store (migrated), bus,
crash recovery, objects exported, bus name (DO_NOT_QUEUE), READY=1.
Stop order (SIGTERM/SIGINT): STOPPING=1, stop taking work, interrupt
running borg (a create writes a checkpoint), release the name, exit 0.
"""

from __future__ import annotations

import argparse
import fcntl
import gc
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import IO, Any

import anyio
import structlog
from dbus_fast import BusType, NameFlag, RequestNameReply
from dbus_fast.errors import DBusError

from borgd import __version__, logs
from borgd.app.archive_cache import ArchiveCacheKeeper
from borgd.app.chains import Chains
from borgd.app.disks import Disks
from borgd.app.recovery import recover
from borgd.app.retries import RetryPolicy
from borgd.app.schedules import Schedules
from borgd.app.service import Service
from borgd.clock import wall_us
from borgd.dbus.bus import BorgdBus, in_signatures, signature_guard
from borgd.dbus.jobs import JobObjects
from borgd.dbus.manager import MANAGER_PATH, ManagerInterface
from borgd.dbus.publisher import DbusPublisher
from borgd.events import Events
from borgd.execution.archive_reader import ArchiveReader
from borgd.execution.borg_tool import BorgLocator, BorgNotFound
from borgd.execution.executor import Executor
from borgd.execution.retention import Retention, RetentionRunner
from borgd.notify.metrics_file import MetricsFile
from borgd.notify.outbox import Outbox
from borgd.paths import Paths
from borgd.scheduling.runtime import Scheduling, SchedulingSettings, parse_notify_kinds
from borgd.store import Store
from borgd.store.engine import StoreUnavailable, StoreUnusable
from borgd.store.health import keep_running
from borgd.system.sdnotify import SystemdNotifier
from borgd.system.secrets import SecretStore

log = structlog.get_logger("borgd")
BUS_NAME = "org.borgd1"


class AlreadyRunning(Exception):
    pass


START_LOCK_WAIT_S = 10.0  # a store locked by another process at start: wait this long
# Watchers subscribe before READY=1, within this (each system call has its own limit).
READY_WAIT_S = 5.0


def open_store(path: Path, notifier: SystemdNotifier, *, checked: bool = False) -> Store:
    """Open (and migrate) the store; a lock held elsewhere is waited out for a while.

    Anything else that makes it unusable (corrupt, from a newer borgd) is final:
    the caller exits with the one-line reason, and the file is left as it is.
    """
    deadline = time.monotonic() + START_LOCK_WAIT_S
    while True:
        try:
            return Store.open(path, checked=checked)
        except StoreUnusable as exc:
            text = str(exc)
            if not re.search(r"locked|busy", text) or time.monotonic() >= deadline:
                raise
            notifier.status(f"waiting for the store: {text}")
            time.sleep(0.25)


def lock_state_dir(paths: Paths) -> IO[str]:
    """Hold an exclusive lock on the state directory for the daemon's lifetime."""
    paths.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle = open(paths.lock, "a+")  # noqa: SIM115 - held until exit
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise AlreadyRunning(
            f"borgd: another borgd (pid {owner}) is using {paths.state}"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _notify_kinds(text: str) -> frozenset[str]:
    try:
        return parse_notify_kinds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < 10**9:
        raise argparse.ArgumentTypeError(f"out of range: {text!r}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="borgd", description="Schedule and run BorgBackup jobs; publish them over D-Bus."
    )
    parser.add_argument("--borg", help="the borg binary (default: $BORGD_BORG or borg on PATH)")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--log-level", choices=("debug", "info", "warning"), default="info")
    parser.add_argument("--max-parallel", type=int, default=2, help="lanes running at once")
    parser.add_argument(
        "--notify",
        type=_notify_kinds,
        default="all",
        metavar="KINDS",
        help="desktop notifications to send: a comma-separated list of failure, overdue, "
        "blocked; or all (the default) or none",
    )
    parser.add_argument(
        "--notify-blocked-after",
        type=_seconds,
        default=3600.0,
        metavar="SECONDS",
        help="notify when a due backup has been held back this long (default 3600)",
    )
    parser.add_argument(
        "--notify-retry",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="a notification that did not arrive is tried again after this long, then "
        "twice as long each time, at most an hour apart, for a day (default 30)",
    )
    parser.add_argument(
        "--network-settle",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="after a resume, remote repositories wait until the network has been up "
        "this long (default 10)",
    )
    parser.add_argument(
        "--keep-jobs-days",
        type=int,
        default=180,
        metavar="DAYS",
        help="remove finished jobs and their logs after DAYS days (default 180)",
    )
    parser.add_argument(
        "--keep-jobs",
        type=int,
        default=100,
        metavar="N",
        help="keep at most N finished jobs per profile (default 100)",
    )
    parser.add_argument(
        "--metrics-file",
        metavar="PATH",
        help="write Prometheus metrics to PATH after every job status change, e.g. into "
        "node_exporter's textfile collector folder (default: $BORGD_METRICS_FILE, else off)",
    )
    parser.add_argument("--version", action="version", version=f"borgd {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, store_checked: Callable[[], bool] = lambda: False) -> int:
    """`store_checked()`: the store's integrity was already checked (`launch.py`)."""
    args = parse_args(argv)
    logs.configure(args.log_format, args.log_level)
    paths = Paths.from_env()
    try:
        lock = lock_state_dir(paths)
    except AlreadyRunning as exc:
        print(exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"borgd: cannot use the state directory {paths.state}: {exc}", file=sys.stderr)
        return 1
    notifier = SystemdNotifier()
    try:
        store = open_store(paths.store, notifier, checked=store_checked())
    except StoreUnavailable as exc:
        print(f"borgd: {exc}", file=sys.stderr)
        return 1
    try:
        return anyio.run(Daemon(args, paths, store, notifier).run, backend="asyncio")
    finally:
        store.close()
        lock.close()


class Daemon:
    def __init__(
        self, args: argparse.Namespace, paths: Paths, store: Store, notifier: SystemdNotifier
    ) -> None:
        self.args = args
        self.paths = paths
        self.store = store
        self.notifier = notifier

    async def run(self) -> int:
        notifier = self.notifier
        notifier.status("starting")
        try:
            # No fds on the session bus (logind's inhibitor fds come over the system bus).
            bus = BorgdBus(bus_type=BusType.SESSION)
            await bus.connect()
        except Exception as exc:
            print(f"borgd: cannot connect to the session bus: {exc}", file=sys.stderr)
            return 1
        async with AsyncExitStack() as stack:
            stack.callback(bus.disconnect)
            return await self._serve(bus, stack)

    async def _serve(self, bus: BorgdBus, stack: AsyncExitStack) -> int:
        store, paths, notifier, args = self.store, self.paths, self.notifier, self.args
        clock = wall_us
        events = Events()
        secrets = SecretStore(paths.config, bus)
        # Looked up (and its version asked) per job, in a worker thread.
        borg = BorgLocator(args.borg or os.environ.get("BORGD_BORG") or "borg")

        # -- execution --
        async def passphrase(repo: Any) -> bytes | None:
            return await secrets.get(repo.name)

        retention = RetentionRunner(
            store,
            paths.logs,
            clock,
            Retention(max(1, args.keep_jobs_days), max(1, args.keep_jobs)),
        )
        last_active = [0]

        def active_changed(n: int) -> None:
            if n != last_active[0]:
                last_active[0] = n
                events.manager_changed({"ActiveJobs": n})

        executor = Executor(
            store=store,
            chains=Chains(store=store, events=events, clock=clock),
            events=events,
            clock=clock,
            borg=borg,
            logs_dir=paths.logs,
            passphrase=passphrase,
            max_parallel=max(1, args.max_parallel),
            block_sleep=lambda why: scheduling.block_sleep(why),
            after_job=retention.poke,
            active_changed=active_changed,
            archive_cache=ArchiveCacheKeeper(store=store, events=events, clock=clock),
        )

        # -- scheduling (scheduler, condition watchers, sleep, overdue, notifications) --
        scheduling = Scheduling(
            store=store,
            events=events,
            clock=clock,
            bus=bus,
            secrets=secrets,
            wake_executor=executor.wake,
            settings=SchedulingSettings(
                notify=args.notify,
                blocked_after_us=int(args.notify_blocked_after * 1_000_000),
                network_settle_s=args.network_settle,
            ),
        )

        # A scheduled run that failed for a passing cause is tried again (a row, not a timer).
        events.subscribe(
            RetryPolicy(
                store=store, events=events, clock=clock, on_planned=scheduling.scheduler.poke
            )
        )

        # -- notifications that leave the machine: the outbox and its senders --
        notifier_urls = SecretStore(paths.config, bus, kind="notifier")
        outbox = Outbox(
            store=store,
            clock=clock,
            url_of=notifier_urls.get,
            online=lambda: scheduling.conditions.online,
            retry_first_us=int(args.notify_retry * 1_000_000),
        )
        events.subscribe(outbox)
        scheduling.on_wake.append(outbox.wake)
        scheduling.on_blocked.append(outbox.blocked)

        # -- removable disks: arrival, on-connect runs, eject, the reminder (UDisks2) --
        disks = Disks(
            store=store,
            events=events,
            clock=clock,
            disks=scheduling.disk_monitor,
            poke_scheduler=scheduling.scheduler.poke,
            remind=scheduling.alerts.remind_absent_disks,
        )
        events.subscribe(disks)
        scheduling.on_disks.append(disks.poke)
        scheduling.alerts.connect_label = disks.connect_label

        # -- the use cases behind the D-Bus API --
        service = Service(
            outbox=outbox,
            set_notifier_url=notifier_urls.set,
            delete_notifier_url=notifier_urls.delete,
            store=store,
            events=events,
            clock=clock,
            executor=executor,
            logs_dir=paths.logs,
            set_secret=secrets.set,
            delete_secret=secrets.delete,
            profiles_changed=scheduling.profiles_changed,
            repositories_changed=scheduling.secret_watcher.kick,
            removable_device=disks.device_for_path,
            archive_reader=ArchiveReader(
                borg=borg, passphrase=passphrase, base_env=os.environ, cache_dir=paths.cache
            ),
        )

        notifier.status("recovering")
        while True:
            try:
                recovered = await recover(store, events, clock)
                break
            except StoreUnavailable:
                notifier.status(f"recovering; the store is {store.health.state}")
                await anyio.sleep(1.0)  # the store's own prober starts with the loops
        if recovered:
            log.info("recovery.requeued", jobs=[j.id for j in recovered])

        # -- the metrics file (off unless asked for); written once ready, then on changes --
        metrics_path = args.metrics_file or os.environ.get("BORGD_METRICS_FILE") or ""
        metrics_file = None
        if metrics_path:
            metrics_path = os.path.abspath(os.path.expanduser(metrics_path))
            metrics_file = MetricsFile(
                path=Path(metrics_path), store=store, clock=clock, disk_usage=service.disk_usage
            )
            events.subscribe(metrics_file)

        # -- D-Bus --
        schedules = Schedules(store=store, clock=clock, scheduler=scheduling.scheduler)
        manager = ManagerInterface(
            service,
            schedules,
            scheduling.conditions,
            lambda: len(executor.active),
            metrics_file=metrics_path,
        )
        bus.export(MANAGER_PATH, manager)
        job_objects = JobObjects(bus, service.cancel_job)
        job_objects.export_live(store.jobs.live())
        bus.add_message_handler(signature_guard({manager.name: in_signatures(manager)}))
        events.subscribe(DbusPublisher(manager, job_objects))

        def store_health_changed(state: str) -> None:
            events.manager_changed({"StoreHealth": state})
            notifier.status(f"serving {BUS_NAME}" if state == "ok" else f"store {state}")

        store.health.subscribe(store_health_changed)

        try:
            reply = await bus.request_name(BUS_NAME, NameFlag.DO_NOT_QUEUE)
        except DBusError as exc:
            print(f"borgd: cannot own {BUS_NAME}: {exc}", file=sys.stderr)
            return 1
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            print(f"borgd: another borgd owns {BUS_NAME} on this bus", file=sys.stderr)
            return 1

        async def execution() -> None:
            try:  # ~0.3 s, in a thread, after READY: the first job starts quicker
                await borg.find()
            except BorgNotFound as exc:  # each job looks again, and says so if still missing
                log.warning("borg.not_found", reason=str(exc))
            await executor.run()

        # The handler is in place before READY=1: a SIGTERM right after it still stops cleanly.
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with anyio.create_task_group() as tg:
                tg.start_soon(execution)
                await tg.start(scheduling.run)
                notifier.status("starting: subscribing to logind, UPower, NetworkManager")
                await scheduling.wait_settled(READY_WAIT_S)
                tg.start_soon(notifier.feed_watchdog)
                tg.start_soon(store.watch_health)
                tg.start_soon(retention.run)
                tg.start_soon(keep_running, "outbox", outbox.run, store.health)
                tg.start_soon(keep_running, "disks", disks.run, store.health)
                stop = anyio.Event()
                bus_lost: list[str] = []

                async def on_signal() -> None:
                    async for signum in signals:
                        name = signal.Signals(signum).name
                        if not stop.is_set():
                            log.info("borgd.stopping", signal=name)
                            stop.set()
                        else:  # asked again while stopping: do not wait for borg
                            log.warning("borgd.stopping_now", signal=name)
                            executor.kill_now()

                async def on_bus_lost() -> None:
                    # Without the bus nobody can see or steer us: stop, and let
                    # systemd (Restart=on-failure) or D-Bus activation start us again.
                    try:
                        await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
                        why = "the connection was closed"
                    except Exception as exc:
                        why = str(exc) or type(exc).__name__
                    bus_lost.append(why)
                    log.error("bus.lost", reason=why)
                    stop.set()

                tg.start_soon(on_signal)
                tg.start_soon(on_bus_lost)
                log.info("borgd.ready", version=__version__, bus_name=BUS_NAME, pid=os.getpid())
                notifier.ready(f"serving {BUS_NAME}")
                if metrics_file is not None:
                    tg.start_soon(metrics_file.run)
                # Start-up's objects (modules, tables, handlers) live as long as borgd.
                # Frozen, the full collections that a long reply's thousands of new
                # objects set off no longer walk them: a page of 1,000 entries went
                # from 2.1x to 1.4x a bare dbus-fast service's p95 (bench_archives).
                gc.freeze()
                await stop.wait()
                notifier.stopping()
                await executor.shutdown()
                tg.cancel_scope.cancel()
        if bus_lost:
            print(f"borgd: lost the session bus ({bus_lost[0]}); exiting", file=sys.stderr)
            return 1
        with anyio.move_on_after(2):
            try:
                await bus.release_name(BUS_NAME)
            except Exception:
                log.warning("bus.release_failed")
        log.info("borgd.stopped")
        return 0


if __name__ == "__main__":
    sys.exit(main())
