"""Wake-ups for long-polling readers (`espera`): loaders NOTIFY channel `avisos` with the employer's RFC
when they commit; every process LISTENs on one connection and wakes the requests waiting for that employer.

The connection is supervised: when it is lost (PostgreSQL restarted, a failover, a network cut) the listener
reconnects with backoff, and then wakes every waiter, since notifications sent while it was away are gone and
only a re-check can tell whether their avisos arrived.

Waiting costs nothing while nothing happens (issue 14 item 3): the process keeps one watch per employer with
waiters, not one per request. A NOTIFY (or a reconnection) wakes the watch, which runs one check per distinct
key (the page query a waiter asks about) and releases the waiters whose check found rows. With no NOTIFY, a
jittered safety re-check every `recheck_seconds` (±20 %) heals a notification lost on the way. A wake-up that
found nothing is re-checked shortly after (QUICK_RECHECKS): reads may go to a replica that has not replayed the
commit the primary notified yet."""

import asyncio
import contextlib
import logging
import os
import random
from collections import defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg

log = logging.getLogger(__name__)
CHANNEL = "avisos"
# What pg_stat_activity shows for it, followed by the process id: one per process (worker) of every replica.
APPLICATION_NAME = "sia-notify"

State = Literal["escuchando", "reconectando"]
# How a watch ended: rows at once (no wait), rows after a wake-up, or nothing within the time given.
Outcome = Literal["now", "woken", "timeout"]
Check = Callable[[], Coroutine[Any, Any, bool]]
# Seconds after a wake-up that found nothing: a replica may still be replaying the notified commit.
QUICK_RECHECKS = (0.3, 0.7)
CONCURRENT_CHECKS = 4  # per employer: the distinct cursors of a wake-up, without taking the whole pool
# Woken requests doing their work after the wait (re-authorization) at once, per process. All 100 of a wake-up
# at once interleave their round trips and all finish near the end (first page 0.48 s after the commit, median
# 1.8 s); in turns the first are served in milliseconds and the rest in order.
WOKEN_AT_ONCE = 4


@dataclass(eq=False)
class _Waiter:
    key: str
    check: Check
    found: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class _Watch:
    """One employer's waiters and the event its NOTIFYs set: one wake-up for all of them."""

    waiters: set[_Waiter] = field(default_factory=set)
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None


class Notifier:
    def __init__(
        self,
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        heartbeat_seconds: float = 15.0,
        connect_timeout: float = 5.0,
        recheck_seconds: float = 12.5,
    ) -> None:
        """heartbeat_seconds: how often an idle connection is probed, since a connection cut without a FIN (a
        failover behind a proxy, a dropped route) is never reported by the socket; one tiny query per process
        every period, nothing against the idle budget of DESIGN §7.
        recheck_seconds: the safety re-check of an employer with waiters when no NOTIFY came (±20 % jitter)."""
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._watches: dict[str, _Watch] = {}
        # Checks in flight, by key and by the generation they started in: every NOTIFY (or reconnection) starts
        # a new generation, so a check begun before a commit is never taken as the answer for after it.
        self._flights: dict[tuple[str, int], asyncio.Task[bool]] = {}
        self._generation = 0
        self._recheck = recheck_seconds
        self._turns = asyncio.Semaphore(WOKEN_AT_ONCE)
        self._connection: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._supervisor: asyncio.Task | None = None
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._heartbeat = heartbeat_seconds
        self._connect_timeout = connect_timeout
        self.reconnections = 0

    @property
    def state(self) -> State:
        connection = self._connection
        return "escuchando" if connection is not None and not connection.is_closed() else "reconectando"

    async def start(self, dsn: str) -> None:
        """Listens before returning when it can, so that the first requests are woken at once; when it cannot,
        keeps trying in the background (long polls still work meanwhile, by their periodic re-check)."""
        try:
            await self._connect(dsn)
        except Exception as e:  # whatever it was, the supervisor below keeps trying
            log.warning("LISTEN %s unavailable: %s; retrying in the background", CHANNEL, e)
        self._supervisor = asyncio.create_task(self._supervise(dsn), name="sia-notify")

    async def stop(self) -> None:
        for watch in list(self._watches.values()):
            if watch.task is not None:
                watch.task.cancel()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._close()

    async def _connect(self, dsn: str) -> None:
        name = f"{APPLICATION_NAME} {os.getpid()}"
        connection = await asyncpg.connect(
            dsn, timeout=self._connect_timeout, server_settings={"application_name": name}
        )
        try:
            connection.add_termination_listener(self._on_termination)
            await connection.add_listener(CHANNEL, self._on_notify)
        except BaseException:
            connection.terminate()
            raise
        self._lost.clear()
        self._connection = connection

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await asyncio.wait_for(connection.close(), timeout=self._connect_timeout)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                connection.terminate()

    def _on_termination(self, _conn: object) -> None:
        self._lost.set()

    async def _supervise(self, dsn: str) -> None:
        while True:
            if self.state == "escuchando":
                await self._watch()
                log.warning("LISTEN %s connection lost; reconnecting", CHANNEL)
            await self._close()
            delay = self._backoff_initial
            while True:
                try:
                    await self._connect(dsn)
                    break
                except Exception as e:  # the supervisor must outlive any failure, or wake-ups stop for good
                    # Jitter: the workers of every replica lost PostgreSQL at the same instant.
                    pause = delay * random.uniform(0.5, 1.0)  # noqa: S311 - spreading retries, not a secret
                    log.warning("LISTEN %s: reconnect failed (%s); next attempt in %.1f s", CHANNEL, e, pause)
                    await asyncio.sleep(pause)
                    delay = min(delay * 2, self._backoff_max)
            self.reconnections += 1
            waiting = sum(len(events) for events in self._waiters.values())
            log.warning("LISTEN %s re-established; waking %d waiting requests to re-check", CHANNEL, waiting)
            self._wake_all()

    async def _watch(self) -> None:
        """Returns when the connection is lost: reported by asyncpg, or found by a heartbeat that fails."""
        while True:
            try:
                async with asyncio.timeout(self._heartbeat):
                    await self._lost.wait()
                return
            except TimeoutError:
                pass
            connection = self._connection
            if connection is None or connection.is_closed():
                return
            try:
                await connection.fetchval("SELECT 1", timeout=self._connect_timeout)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                return

    def _wake_all(self) -> None:
        self._generation += 1
        for events in self._waiters.values():
            for event in events:
                event.set()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, rfc_patron: str) -> None:
        self._generation += 1
        for event in self._waiters.get(rfc_patron, ()):
            event.set()

    async def wait(self, rfc_patron: str, seconds: float) -> None:
        """Returns when avisos of the employer were published (or may have been: after a reconnection), or
        after `seconds`."""
        event = asyncio.Event()
        self._waiters[rfc_patron].add(event)
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            pass
        finally:
            self._waiters[rfc_patron].discard(event)
            if not self._waiters[rfc_patron]:
                del self._waiters[rfc_patron]

    def turn(self) -> asyncio.Semaphore:
        """`async with notifier.turn():` around what a woken request does after its wait (WOKEN_AT_ONCE)."""
        return self._turns

    async def check(self, key: str, check: Check) -> bool:
        """`check()`, shared: callers with the same key share the run in flight, unless a NOTIFY came after it
        started. A caller that leaves (a client gone) does not cancel it for the others."""
        flight_key = (key, self._generation)
        flight = self._flights.get(flight_key)
        if flight is None:
            flight = self._flights[flight_key] = asyncio.create_task(check())

            def landed(done: asyncio.Task[bool]) -> None:
                if self._flights.get(flight_key) is done:
                    del self._flights[flight_key]
                if not done.cancelled():
                    done.exception()  # retrieved: every caller may have left

            flight.add_done_callback(landed)
        return await asyncio.shield(flight)

    async def watch(self, rfc_patron: str, key: str, check: Check, seconds: float) -> Outcome:
        """Until `check()` (whether there are rows for `key`, an employer's page query) is true, within
        `seconds`. Checked now, then whenever the employer's watch wakes: a NOTIFY, a reconnection, a quick
        re-check after a wake-up that found nothing, or the safety re-check."""
        watch = self._watches.get(rfc_patron)
        if watch is None:
            watch = self._watches[rfc_patron] = _Watch()
            self._waiters[rfc_patron].add(watch.woken)
            watch.task = asyncio.create_task(self._run(rfc_patron, watch), name=f"sia-watch {rfc_patron}")
        # Registered before the first check: a NOTIFY during it wakes the watch, which checks this key again.
        waiter = _Waiter(key, check)
        watch.waiters.add(waiter)
        try:
            if await self.check(key, check):
                return "now"
            async with asyncio.timeout(seconds):
                await waiter.found.wait()
            return "woken"
        except TimeoutError:
            return "timeout"
        finally:
            watch.waiters.discard(waiter)
            if not watch.waiters:
                watch.woken.set()  # lets its task end now rather than at its next re-check

    async def _run(self, rfc_patron: str, watch: _Watch) -> None:
        quick: list[float] = []
        try:
            while True:
                pause = quick.pop(0) if quick else self._recheck * random.uniform(0.8, 1.2)  # noqa: S311 - jitter
                woken = False
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await watch.woken.wait()
                    woken = True
                watch.woken.clear()
                if not watch.waiters:
                    return
                if woken:
                    quick = list(QUICK_RECHECKS)
                await self._check_waiters(rfc_patron, watch)
        finally:
            if self._watches.get(rfc_patron) is watch:
                del self._watches[rfc_patron]
                self._waiters[rfc_patron].discard(watch.woken)
                if not self._waiters[rfc_patron]:
                    del self._waiters[rfc_patron]

    async def _check_waiters(self, rfc_patron: str, watch: _Watch) -> None:
        """One check per distinct key; its waiters released when it found rows."""
        by_key: dict[str, list[_Waiter]] = defaultdict(list)
        for waiter in watch.waiters:
            by_key[waiter.key].append(waiter)
        limit = asyncio.Semaphore(CONCURRENT_CHECKS)

        async def one(waiters: list[_Waiter]) -> None:
            async with limit:
                try:
                    found = await self.check(waiters[0].key, waiters[0].check)
                except Exception as e:  # the database away: the waiters' own deadlines answer them
                    log.warning("long-poll check for %s failed: %s", rfc_patron, e)
                    return
            if found:
                for waiter in waiters:
                    waiter.found.set()

        await asyncio.gather(*(one(waiters) for waiters in by_key.values()))
