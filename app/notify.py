"""Wake-ups for long-polling readers (`espera`): loaders NOTIFY channel `avisos` with the employer's RFC
when they commit; every replica LISTENs on one connection and wakes the requests waiting for that employer."""

import asyncio
import logging
from collections import defaultdict

import asyncpg

log = logging.getLogger(__name__)
CHANNEL = "avisos"


class Notifier:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._connection: asyncpg.Connection | None = None

    async def start(self, dsn: str) -> None:
        try:
            self._connection = await asyncpg.connect(dsn)
            await self._connection.add_listener(CHANNEL, self._on_notify)
        except (OSError, asyncpg.PostgresError) as e:
            # Long polls still work, by their periodic re-check; they just wake up later.
            log.warning("LISTEN %s unavailable: %s", CHANNEL, e)
            self._connection = None

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, rfc_patron: str) -> None:
        for event in self._waiters.get(rfc_patron, ()):
            event.set()

    async def wait(self, rfc_patron: str, seconds: float) -> None:
        """Returns when avisos of the employer were published, or after `seconds`."""
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
