"""The database: engine and session factory (created by the app's lifespan, never at import time). The session
dependency that opens and commits a request's session, and the 503 handlers, are the web layer's (app/deps.py).

A database that is gone, restarting, locked or saturated must give a fast 503 with Retry-After, never a hang
or a 500: every connection carries PostgreSQL timeouts (statement, lock, idle in transaction) and a client-side
command timeout, a wait for a pooled connection gives up when the pool stops moving (and is bounded anyway), a
pooled connection idle long enough to have outlived a server restart is pinged before use, and those failures
are answered as `base_de_datos_no_disponible`."""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import asyncpg
from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from app.problems import Problem

if TYPE_CHECKING:
    from app.settings import Settings


def async_url(url: str) -> str:
    """Any PostgreSQL URL (postgres://, postgresql://, postgresql+asyncpg://) as an asyncpg URL for SQLAlchemy."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def asyncpg_dsn(url: str) -> str:
    """The same URL as a plain libpq-style DSN, for asyncpg.connect (COPY, LISTEN)."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(frozen=True)
class Timeouts:
    """What bounds each wait on the database, in seconds (0: PostgreSQL's own default, none)."""

    pool: float = 2.0  # no connection returned to the pool for this long: 503 (QueueingPool)
    pool_queue: float = 30.0  # in line for a connection, however much the pool moves
    connect: float = 5.0
    statement: float = 30.0
    lock: float = 3.0
    idle_in_transaction: float = 60.0
    command: float | None = None
    idle_ping: float = 2.0

    @classmethod
    def from_settings(cls, settings: "Settings") -> "Timeouts":
        return cls(
            pool=settings.db_pool_timeout_seconds,
            pool_queue=settings.db_pool_queue_seconds,
            connect=settings.db_connect_timeout_seconds,
            statement=settings.db_statement_timeout_seconds,
            lock=settings.db_lock_timeout_seconds,
            idle_in_transaction=settings.db_idle_in_transaction_timeout_seconds,
            command=settings.db_command_timeout_seconds,
            idle_ping=settings.db_idle_ping_seconds,
        )

    def server_settings(self) -> dict[str, str]:
        # Sent in the startup packet: no extra round trip, and a pooled connection keeps them for its life.
        return {
            "statement_timeout": str(int(self.statement * 1000)),
            "lock_timeout": str(int(self.lock * 1000)),
            "idle_in_transaction_session_timeout": str(int(self.idle_in_transaction * 1000)),
        }

    def command_timeout(self) -> float | None:
        # The server's statement_timeout answers first; this catches a server that stopped answering at all.
        if self.command is not None:
            return self.command
        return self.statement + 10 if self.statement else None

    def connect_args(self) -> dict[str, Any]:
        return {
            "timeout": self.connect,
            "command_timeout": self.command_timeout(),
            "server_settings": self.server_settings(),
        }


def _ping_idle_connections(engine: AsyncEngine, idle_seconds: float) -> None:
    """Pre-ping, but only for a connection that sat idle: under load connections are reused within
    milliseconds and pay nothing, while one that waited through a PostgreSQL restart is found dead here and
    replaced, instead of failing the request that drew it."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _drawn(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get("returned_at")
        if returned_at is None or time.monotonic() - returned_at < idle_seconds:
            return
        try:
            dbapi_connection.ping()
        except Exception as e:
            # The pool discards this connection and draws (or opens) another, up to three times.
            raise sa_exc.DisconnectionError("conexión inactiva muerta") from e


class AuditRows(Protocol):
    """Where audit rows that may trail their request go (app.audit_writer.AuditWriter)."""

    async def record(self, values: dict[str, Any]) -> None: ...

    async def close(self) -> None: ...


class QueueingPool(AsyncAdaptedQueuePool):
    """The pool's timeout as a stall detector, not a queue bound: a request waiting for a connection gives up
    (503) when for `timeout` seconds the database answered no statement of this pool and no connection came
    back to it, which is what a database that is stuck, locked or too slow looks like; while the pool moves it
    stays in line, up to `queue_seconds`.

    A burst of requests larger than the pool (1,000 long polls opened at once after a restart, on 2 cores) is
    the process' own load: the database answers in milliseconds, but the last request in line waits as long as
    the burst takes the CPU to admit (~15 s measured), and a plain `timeout` of 2 s answered 96 % of it with
    503 `base_de_datos_no_disponible` while the database was idle. Statements count, not only returns: in a
    saturated event loop a connection's holder may take seconds between its statements."""

    queue_seconds = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.moved()

    def moved(self) -> None:
        """A connection came back, was made, or had a statement answered."""
        self._moved_at = time.monotonic()

    def _do_return_conn(self, record: Any) -> None:
        self.moved()
        super()._do_return_conn(record)

    def _create_connection(self) -> Any:
        record = super()._create_connection()
        self.moved()  # the first connections of a burst
        return record

    def _do_get(self) -> Any:
        started = time.monotonic()
        while True:
            try:
                return super()._do_get()
            except sa_exc.TimeoutError:
                now = time.monotonic()
                # Back in line (at its end: asyncio's queue has no front) only while the pool moves.
                if now - self._moved_at >= self._timeout or now - started >= self.queue_seconds:
                    raise

    def recreate(self) -> "QueueingPool":
        pool = cast(QueueingPool, super().recreate())
        pool.queue_seconds = self.queue_seconds
        return pool


def _engine(url: str, *, pool_size: int, max_overflow: int, timeouts: Timeouts) -> AsyncEngine:
    # hide_parameters: a database error's text (and so every traceback of it) would otherwise carry the
    # statement's values: RFCs, NSS, TOTP codes.
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        poolclass=QueueingPool,
        pool_timeout=timeouts.pool,
        pool_pre_ping=not timeouts.idle_ping,  # 0: ping on every checkout
        connect_args=timeouts.connect_args(),
        hide_parameters=True,
    )
    cast(QueueingPool, engine.pool).queue_seconds = timeouts.pool_queue

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _answered(conn: Any, *_args: Any) -> None:
        cast(QueueingPool, conn.engine.pool).moved()  # the engine's pool now: dispose() replaces it

    if timeouts.idle_ping:
        _ping_idle_connections(engine, timeouts.idle_ping)
    return engine


def _probe_engine(url: str, seconds: float) -> AsyncEngine:
    probe = Timeouts(
        pool=seconds / 2,
        pool_queue=seconds / 2,
        connect=seconds / 2,
        statement=seconds / 2,
        lock=seconds / 4,
        idle_in_transaction=seconds * 5,
        command=seconds,
        idle_ping=0.5,
    )
    return _engine(url, pool_size=1, max_overflow=2, timeouts=probe)


T = TypeVar("T")


# How the lean pool's connections plan their statements (app.avisos.sql.lean_page, then block_query for a streamed
# page): once each, generically (see open_lean_pool), and along the (rfc_patron, seq) index in its order. A generic
# plan expects an employer to hold the table's rows ÷ its employers, and the relationship's NRP condition shrinks
# that below a page; the cheapest plan for so few rows is then a bitmap scan and a sort, which reads every aviso of
# the employer on every page (so too for a large employer among many small ones). Without bitmap scans or sorts,
# only the index gives the page its order, walked up to the LIMIT (tests/test_lean_path.py reads the plan).
# Sequential scans stay allowed: disabling them too cut the bulk download from 364k to 211k avisos/s (bench
# --descarga).
LEAN_POOL_PLANNING = {"plan_cache_mode": "force_generic_plan", "enable_bitmapscan": "off", "enable_sort": "off"}


async def _unchanged(_connection: asyncpg.Connection) -> None:
    """asyncpg's reset on release (a round trip each time), skipped for a pool whose connections keep no state."""


def _lsn(text_lsn: str) -> int:
    high, low = text_lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass
class Database:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # /readyz's own small pool: a probe must answer when the main pool is exhausted or waiting on locks.
    probe_engine: AsyncEngine | None = None
    probe_timeout: float = 1.0
    retry_after: int = 2
    # Audit rows that may trail their request (the avisos reads'): app/audit_writer.py's, set by the app's
    # lifespan (this layer does not import the flows); flushed by dispose.
    audit: "AuditRows | None" = None
    # DATABASE_READ_URL: a streaming replica for the avisos reads; without one, the primary's engine itself.
    read_engine: AsyncEngine | None = None
    read_probe_engine: AsyncEngine | None = None
    # The lean path's statement (app/avisos/reading.py lean_list) on the primary: a plain asyncpg pool, opened by
    # the app's lifespan (open_lean_pool).
    lean_pool: asyncpg.Pool | None = None

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        read_url: str | None = None,
        pool_size: int = 10,
        max_overflow: int | None = None,
        timeouts: Timeouts | None = None,
        probe_timeout: float = 1.0,
        retry_after: int = 2,
    ) -> "Database":
        timeouts = timeouts or Timeouts()
        pool = {"pool_size": pool_size, "max_overflow": pool_size if max_overflow is None else max_overflow}
        engine = _engine(url, **pool, timeouts=timeouts)
        return cls(
            engine,
            async_sessionmaker(engine, expire_on_commit=False),
            _probe_engine(url, probe_timeout),
            probe_timeout,
            retry_after,
            read_engine=_engine(read_url, **pool, timeouts=timeouts) if read_url else None,
            read_probe_engine=_probe_engine(read_url, probe_timeout) if read_url else None,
        )

    @classmethod
    def from_settings(cls, settings: "Settings") -> "Database":
        assert settings.database_url is not None
        return cls.connect(
            settings.database_url,
            read_url=settings.database_read_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            timeouts=Timeouts.from_settings(settings),
            probe_timeout=settings.readyz_timeout_seconds,
            retry_after=settings.db_retry_after_seconds,
        )

    @property
    def reads(self) -> AsyncEngine:
        """Where the avisos reads go: the replica when one is configured, else the primary."""
        return self.read_engine or self.engine

    async def lookup(
        self, primary: AsyncSession, find: Callable[[AsyncConnection], Awaitable[T | None]], engine: AsyncEngine
    ) -> T | None:
        """A row the client names (its cursor's folio, one aviso) on `engine`, or else on the primary.

        A client behind a load balancer may have read that folio from a replica further ahead than this one:
        "unknown" from a lagging replica is not an answer, while the primary has every committed row. Found
        there, the position is exact; what the replica then serves after it is still a prefix of what
        follows (WAL replay exposes commits in the primary's order), so nothing is skipped or repeated."""
        if engine is not self.engine:
            async with engine.connect() as conn:
                found = await find(conn)
            if found is not None:
                return found
        return await find(await primary.connection())

    async def replica_lag(self) -> int | None:
        """WAL bytes the read replica has yet to replay (None: no replica, or a server that is not in
        recovery), on the probes' own pools (the caller bounds the wait)."""
        if self.read_probe_engine is None:
            return None
        assert self.probe_engine is not None  # connect() makes both probes
        async with self.read_probe_engine.connect() as conn:
            replayed = await conn.scalar(text("SELECT pg_last_wal_replay_lsn()::text"))
        async with self.probe_engine.connect() as conn:
            written = await conn.scalar(text("SELECT pg_current_wal_lsn()::text"))
        return max(_lsn(written) - _lsn(replayed), 0) if replayed is not None else None

    async def open_lean_pool(self, url: str, size: int, timeouts: Timeouts) -> None:
        """A pool of its own for one read-only statement in autocommit: no SQLAlchemy checkout, and nothing to
        reset on release (it never changes a connection's state). Its connections plan that statement once:
        its plan does not depend on the values (one employer's rows by its (rfc_patron, seq) index, the rest
        lookups by key), and planning it anew on every call cost PostgreSQL ~1 ms of CPU per page (1.47 ms of
        CPU per page with custom plans, 0.28 ms with the generic one). No connection is opened before the
        first request: a database still starting does not stop the service from starting."""
        self.lean_pool = await asyncpg.create_pool(
            asyncpg_dsn(url),
            min_size=0,
            max_size=size,
            reset=_unchanged,
            timeout=timeouts.connect,
            command_timeout=timeouts.command_timeout(),
            server_settings={**timeouts.server_settings(), **LEAN_POOL_PLANNING},
        )

    async def dispose(self) -> None:
        if self.audit is not None:
            await self.audit.close()
        if self.lean_pool is not None:
            await self.lean_pool.close()
        for engine in (self.engine, self.probe_engine, self.read_engine, self.read_probe_engine):
            if engine is not None:
                await engine.dispose()


# SQLSTATE classes and codes that mean "the database cannot serve now", not "this request is wrong":
# 08 connection exception, 53 insufficient resources (too many connections), 57 operator intervention
# (query_canceled by statement_timeout, admin_shutdown, cannot_connect_now while starting), 55P03
# lock_not_available (lock_timeout), 25P03 idle_in_transaction_session_timeout, and 40001, with which a hot
# standby cancels a read that conflicts with WAL replay ("conflict with recovery": the same read retried works).
_UNAVAILABLE_CLASSES = ("08", "53", "57")
_UNAVAILABLE_CODES = ("55P03", "25P03", "40001")


def _sqlstate(error: BaseException) -> str | None:
    for candidate in (error, getattr(error, "orig", None), getattr(error, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def is_unavailable(error: BaseException) -> bool:
    """Whether an exception says the database is unreachable, restarting, saturated, locked or too slow."""
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection became free within pool_timeout
        return True
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    code = _sqlstate(error)
    if code is not None:
        return code[:2] in _UNAVAILABLE_CLASSES or code in _UNAVAILABLE_CODES
    chain = [e for e in (error, getattr(error, "orig", None), error.__cause__, error.__context__) if e is not None]
    if any(isinstance(e, asyncpg.InterfaceError) for e in chain):  # connection closed, does not exist
        return True
    # asyncpg lets socket errors through raw (refused, no socket file, timeout): they count only when raised
    # inside the driver or the pool, so a failed write of some file is not reported as the database.
    return any(isinstance(e, OSError) and _raised_in_driver(e) for e in chain)


def _raised_in_driver(error: BaseException) -> bool:
    frame = error.__traceback__
    while frame is not None:
        module = frame.tb_frame.f_globals.get("__name__", "")
        if module.startswith(("asyncpg", "sqlalchemy")):
            return True
        frame = frame.tb_next
    return False


def unavailable_problem(retry_after: int) -> Problem:
    return Problem(
        "base_de_datos_no_disponible",
        f"La base de datos no está disponible en este momento; reintente en {retry_after} s.",
        headers={"Retry-After": str(retry_after)},
    )
