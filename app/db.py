"""The database: engine and session factory (created by the app's lifespan, never at import time). The session
dependency that opens and commits a request's session, and the 503 handlers, are the web layer's (app/deps.py).

A database that is gone, restarting, locked or saturated must give a fast 503 with Retry-After, never a hang
or a 500: every connection carries PostgreSQL timeouts (statement, lock, idle in transaction) and a client-side
command timeout, the pool waits a bounded time, a pooled connection idle long enough to have outlived a server
restart is pinged before use, and those failures are answered as `base_de_datos_no_disponible`."""

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

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

    pool: float = 2.0
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

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int | None = None,
        timeouts: Timeouts | None = None,
        probe_timeout: float = 1.0,
        retry_after: int = 2,
    ) -> "Database":
        timeouts = timeouts or Timeouts()
        # hide_parameters: a database error's text (and so every traceback of it) would otherwise carry the
        # statement's values: RFCs, NSS, TOTP codes.
        engine = create_async_engine(
            async_url(url),
            pool_size=pool_size,
            max_overflow=pool_size if max_overflow is None else max_overflow,
            pool_timeout=timeouts.pool,
            pool_pre_ping=not timeouts.idle_ping,  # 0: ping on every checkout
            connect_args=timeouts.connect_args(),
            hide_parameters=True,
        )
        if timeouts.idle_ping:
            _ping_idle_connections(engine, timeouts.idle_ping)
        probe = Timeouts(
            pool=probe_timeout / 2,
            connect=probe_timeout / 2,
            statement=probe_timeout / 2,
            lock=probe_timeout / 4,
            idle_in_transaction=probe_timeout * 5,
            command=probe_timeout,
            idle_ping=0.5,
        )
        probe_engine = create_async_engine(
            async_url(url),
            pool_size=1,
            max_overflow=2,
            pool_timeout=probe.pool,
            connect_args=probe.connect_args(),
            hide_parameters=True,
        )
        _ping_idle_connections(probe_engine, probe.idle_ping)
        return cls(engine, async_sessionmaker(engine, expire_on_commit=False), probe_engine, probe_timeout, retry_after)

    @classmethod
    def from_settings(cls, settings: "Settings") -> "Database":
        assert settings.database_url is not None
        return cls.connect(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            timeouts=Timeouts.from_settings(settings),
            probe_timeout=settings.readyz_timeout_seconds,
            retry_after=settings.db_retry_after_seconds,
        )

    async def dispose(self) -> None:
        if self.audit is not None:
            await self.audit.close()
        await self.engine.dispose()
        if self.probe_engine is not None:
            await self.probe_engine.dispose()


# SQLSTATE classes and codes that mean "the database cannot serve now", not "this request is wrong":
# 08 connection exception, 53 insufficient resources (too many connections), 57 operator intervention
# (query_canceled by statement_timeout, admin_shutdown, cannot_connect_now while starting), 55P03
# lock_not_available (lock_timeout), 25P03 idle_in_transaction_session_timeout.
_UNAVAILABLE_CLASSES = ("08", "53", "57")
_UNAVAILABLE_CODES = ("55P03", "25P03")


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
