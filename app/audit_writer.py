"""Audit rows that may trail the request by a moment (the avisos reads'), written in batches by one background
task per process instead of a transaction per request.

The app's lifespan sets one as Database.audit. A row is queued (no I/O) and written within FLUSH_SECONDS in
one INSERT of the whole batch, with synchronous_commit off, and at shutdown (Database.dispose). What a crash
can lose is said in docs/design.md §5: the rows still queued, at most FLUSH_SECONDS' worth plus any backlog,
and those committed in the last moments before it (synchronous_commit off).

A full queue (the database is slower than the reads) never drops a row and never makes the request wait for
room: that request writes its own row at once, as every read did before this writer existed. Audit rows are
the employer's evidence of who read its avisos; dropping them when the service is busiest (a scraper, say)
would hide exactly the reads that most need to be seen, so overload costs a transaction instead."""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, cast

import anyio
from sqlalchemy import Table, insert, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import EventoAuditoria

log = logging.getLogger(__name__)
AUDIT_TABLE = cast(Table, EventoAuditoria.__table__)

FLUSH_SECONDS = 0.1
QUEUE_ROWS = 10_000
BATCH_ROWS = 1_000


class AuditWriter:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        retryable: Callable[[BaseException], bool] = lambda _error: False,
        flush_seconds: float = FLUSH_SECONDS,
        queue_rows: int = QUEUE_ROWS,
        batch_rows: int = BATCH_ROWS,
    ) -> None:
        """retryable: whether an error means the database is unavailable (the batch is tried again on the next
        flush) rather than that a row is wrong (the batch is then written row by row, skipping bad rows)."""
        self._sessionmaker, self._retryable = sessionmaker, retryable
        self._flush_seconds, self._batch_rows = flush_seconds, batch_rows
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=queue_rows)
        self._held: list[dict[str, Any]] = []  # a batch the database could not take: first in the next flush
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # Counted for logs and tests: rows written by their own request because the queue was full, and rows
        # lost (refused by the database, or still unwritable at shutdown).
        self.written_inline = 0
        self.lost = 0

    async def record(self, values: dict[str, Any]) -> None:
        """Queues one row (auditoria.event_values); when the queue is full (or the writer closed), writes it now,
        in its own transaction."""
        if not self._closing:
            self._start()
            try:
                self._queue.put_nowait(values)
                return
            except asyncio.QueueFull:
                self.written_inline += 1
                log.warning("audit queue full (%d rows): this row is written by its request", self._queue.qsize())
        # Shielded: a client that disconnects cancels its request, and its audit row must still be written.
        with anyio.CancelScope(shield=True):
            await self._write([values])

    def _start(self) -> None:
        # Started by the first row, in the loop that serves the requests; a tool that never audits a read never
        # starts it.
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_seconds)
            await self.flush()

    async def flush(self) -> None:
        """Writes what is queued, in batches. Never raises: a database error must not stop the writer."""
        while self._held or not self._queue.empty():
            batch = self._held or [self._queue.get_nowait() for _ in range(min(self._batch_rows, self._queue.qsize()))]
            self._held = []
            try:
                await self._write(batch)
            except Exception as error:
                if self._retryable(error):
                    log.warning("audit batch of %d rows not written (database unavailable); retrying", len(batch))
                    self._held = batch
                    return
                await self._write_one_by_one(batch)

    async def _write(self, rows: list[dict[str, Any]]) -> None:
        async with self._sessionmaker() as session:
            # A read's audit row may trail a crash by a moment (docs/design.md §5); it must not cost a WAL flush.
            await session.execute(text("SET LOCAL synchronous_commit = off"))
            # The table's Core insert as an executemany (one cached statement), not the ORM's bulk path (the rows
            # are plain values, nothing to track), nor one VALUES list of the batch: compiling that anew for each
            # batch size cost more CPU per request than the row itself (1.51 vs 1.10 ms per page under load).
            await session.execute(insert(AUDIT_TABLE), rows)
            await session.commit()

    async def _write_one_by_one(self, rows: list[dict[str, Any]]) -> None:
        """A batch the database refused: one bad row must not take the others with it."""
        log.exception("audit batch of %d rows refused; writing them one by one", len(rows))
        for row in rows:
            try:
                await self._write([row])
            except Exception:
                self.lost += 1
                log.exception("audit row lost: %s by %s", row.get("accion"), row.get("actor"))

    async def close(self) -> None:
        """At shutdown: the loop writes what is queued and ends; a row recorded after this is written by its
        request."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self.flush()
        if self._held:
            self.lost += len(self._held)
            log.error("%d audit rows lost at shutdown: the database could not take them", len(self._held))
