"""Running the Alembic migrations from code (the CLI, the app's readiness check, the tests)."""

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


def _script_location() -> Path:
    # Beside the app package in a checkout; the working directory's in the container image.
    beside = Path(__file__).resolve().parents[1] / "migrations"
    return beside if beside.is_dir() else Path.cwd() / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_script_location()))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Blocking (the async env runs its own event loop): call it from a thread inside async code."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def current_revision(conn: AsyncConnection) -> str | None:
    exists = await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
    return await conn.scalar(text("SELECT version_num FROM alembic_version")) if exists else None


async def probe_revision(engine: AsyncEngine, seconds: float) -> str | None:
    """The database's revision within `seconds`, on the probe's own engine: a readiness check that waits
    behind the service's exhausted pool or a table lock tells the load balancer nothing for 30 s."""
    async with asyncio.timeout(seconds), engine.connect() as conn:
        return await current_revision(conn)
