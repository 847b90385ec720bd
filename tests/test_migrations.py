import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app import migrations
from app.db import async_url
from app.models import Base


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(async_url(url))
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        tables = {r[0] for r in rows}
    await engine.dispose()
    return tables


def test_upgrade_downgrade_upgrade(new_database):
    url = new_database(migrated=False)
    migrations.upgrade(url)
    assert {"patron", "nrp", "aviso", "tipo_aviso", "evento_auditoria"} <= asyncio.run(_tables(url))
    migrations.downgrade(url, "base")
    assert asyncio.run(_tables(url)) == {"alembic_version"}
    migrations.upgrade(url)
    assert "aviso" in asyncio.run(_tables(url))


async def test_models_match_migrations(connection):
    def diff(sync_conn):
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    assert await connection.run_sync(diff) == []


async def test_migrations_at_head(connection):
    assert await migrations.current_revision(connection) == migrations.head_revision()
