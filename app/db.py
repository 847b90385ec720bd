"""The database: engine and session factory (created by the app's lifespan, never at import time),
and the one dependency that opens and commits a session."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def async_url(url: str) -> str:
    """Any PostgreSQL URL (postgres://, postgresql://, postgresql+asyncpg://) as an asyncpg URL for SQLAlchemy."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def asyncpg_dsn(url: str) -> str:
    """The same URL as a plain libpq-style DSN, for asyncpg.connect (COPY, LISTEN)."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class Database:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]

    @classmethod
    def connect(cls, url: str, *, pool_size: int = 10) -> "Database":
        # No pre-ping: it costs a round trip on every checkout of the hot path; a connection found dead is
        # invalidated on use and the pool reconnects.
        # hide_parameters: a database error's text (and so every traceback of it) would otherwise carry the
        # statement's values: RFCs, NSS, TOTP codes.
        engine = create_async_engine(async_url(url), pool_size=pool_size, max_overflow=pool_size, hide_parameters=True)
        return cls(engine, async_sessionmaker(engine, expire_on_commit=False))

    async def dispose(self) -> None:
        await self.engine.dispose()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The single place that commits: after the route returned, before the response is sent."""
    database: Database = request.state.database
    async with database.sessionmaker() as session:
        yield session
        await session.commit()


# scope="function": commit before the response goes out, so a 201 is never sent for a write that then fails.
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
