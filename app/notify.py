"""Wake-ups for long-polling readers (`espera`): loaders NOTIFY channel `avisos` with the employer's RFC
when they commit; every process LISTENs on one connection and wakes the requests waiting for that employer.

The connection is supervised: when it is lost (PostgreSQL restarted, a failover, a network cut) the listener
reconnects with backoff, and then wakes every waiter, since notifications sent while it was away are gone and
only a re-check can tell whether their avisos arrived."""

import asyncio
import contextlib
import logging
import os
import random
from collections import defaultdict
from typing import Literal

import asyncpg

log = logging.getLogger(__name__)
CHANNEL = "avisos"
# What pg_stat_activity shows for it, followed by the process id: one per process (worker) of every replica.
APPLICATION_NAME = "sia-notify"

State = Literal["escuchando", "reconectando"]


class Notifier:
    def __init__(
        self,
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        heartbeat_seconds: float = 15.0,
        connect_timeout: float = 5.0,
    ) -> None:
        """heartbeat_seconds: how often an idle connection is probed, since a connection cut without a FIN (a
        failover behind a proxy, a dropped route) is never reported by the socket; one tiny query per process
        every period, nothing against the idle budget of DESIGN §7."""
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
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
        for events in self._waiters.values():
            for event in events:
                event.set()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, rfc_patron: str) -> None:
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
