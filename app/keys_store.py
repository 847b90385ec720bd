"""Sharing signing keys between replicas through the database: each replica publishes the public halves of
its keys and verifies with everyone's. A background task repeats that every `keys_refresh_seconds`, so a
rotation anywhere reaches every replica within that time, without a restart; a rotation starts signing only
after twice that time (`sia keys rotate`), so no replica sees a token of a key it has not learned yet."""

import asyncio
import contextlib
import datetime as dt
import logging

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.models.llave import LlavePublica
from app.security.keys import KeyRing, Keys, PublicKey

log = logging.getLogger(__name__)


def rotation_delay(refresh_seconds: float) -> dt.timedelta:
    """How long a new key waits before it signs: two refreshes, so every replica has fetched it."""
    return dt.timedelta(seconds=2 * refresh_seconds)


async def publish(conn: AsyncConnection, anillo: str, ring: KeyRing) -> None:
    """This replica's public keys into the shared table (idempotent: a key's kid is its thumbprint)."""
    for key, replaced in ring.local():
        jwk = key.public_jwk()
        await conn.execute(
            insert(LlavePublica)
            .values(kid=key.kid, anillo=anillo, x=jwk["x"], y=jwk["y"], creada_en=key.created, reemplazada_en=replaced)
            .on_conflict_do_nothing(index_elements=["kid"])
        )
        if replaced is not None:
            await conn.execute(
                update(LlavePublica)
                .where(LlavePublica.kid == key.kid, LlavePublica.reemplazada_en.is_(None))
                .values(reemplazada_en=replaced)
            )


async def fetch(conn: AsyncConnection, anillo: str) -> list[PublicKey]:
    rows = await conn.execute(select(LlavePublica.__table__).where(LlavePublica.anillo == anillo))
    return [PublicKey.from_members(r.x, r.y, r.creada_en, r.reemplazada_en) for r in rows]


async def synchronize(engine: AsyncEngine, keys: Keys) -> None:
    """Publish this replica's keys and learn everyone's, in one short transaction."""
    rings = {"tokens": keys.tokens, "sellos": keys.sellos}
    async with engine.begin() as conn:
        for anillo, ring in rings.items():
            ring.refresh()  # a rotation in this replica's folder is published on this round
            await publish(conn, anillo, ring)
        shared = {anillo: await fetch(conn, anillo) for anillo in rings}
    for anillo, ring in rings.items():
        ring.set_shared(shared[anillo])


class KeySync:
    """The background refresh, started and stopped by the app's lifespan."""

    def __init__(self, engine: AsyncEngine, keys: Keys, every_seconds: float) -> None:
        self.engine, self.keys, self.every = engine, keys, every_seconds
        self._task: asyncio.Task[None] | None = None

    async def once(self) -> bool:
        try:
            async with asyncio.timeout(max(self.every, 1.0)):
                await synchronize(self.engine, self.keys)
            return True
        except Exception as e:  # the database may be down: keep verifying with what is known, try again later
            log.warning("signing keys not synchronized: %s", type(e).__name__)
            return False

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            await self.once()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
