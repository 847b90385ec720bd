import asyncio
import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from app import migrations
from app.db import async_url
from app.models import Base
from app.models.aviso import REFERENCIAS


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


# ---------------------------------------------------------------- aviso's references (no foreign keys)

_TRIGGERS = "SELECT tgname FROM pg_trigger WHERE tgrelid = CAST(:t AS regclass) AND NOT tgisinternal"


async def test_aviso_references_are_one_statement_trigger_and_guards_not_row_level_foreign_keys(connection):
    """compare_metadata sees no triggers: the references the model names (REFERENCIAS) must each be checked
    on aviso and guarded on the referenced table, and the row-level foreign keys must not come back."""
    foreign_keys = await connection.scalar(
        text("SELECT count(*) FROM pg_constraint WHERE conrelid = 'aviso'::regclass AND contype = 'f'")
    )
    assert foreign_keys == 0
    assert set(await connection.scalars(text(_TRIGGERS), {"t": "aviso"})) == {
        "aviso_references_insert",
        "aviso_references_update",
    }
    checked = await connection.scalar(text("SELECT prosrc FROM pg_proc WHERE proname = 'aviso_check_references'"))
    for column, table, key in REFERENCIAS:
        assert f"('{column}', '{table}', '{key}')" in checked
        assert f"aviso_guard_{column}" in set(await connection.scalars(text(_TRIGGERS), {"t": table}))


async def _aviso_row(connection, **overrides) -> dict:
    codes = {
        column: await connection.scalar(text(f"SELECT min({key}) FROM {table}"))
        for column, table, key in REFERENCIAS
        if column not in ("rfc_patron", "nrp")
    }
    row = {
        "folio": "20260100000001",
        "clase": "retencion",
        "rfc_patron": "AAA010101AAA",
        "nrp": "Y5412345109",
        "nss": "92919084431",
        "rfc_trabajador": "GODE561231GR8",
        "curp": "BEML920313HMCLNS09",
        "nombre_trabajador": "JUAN PEREZ",
        "numero_credito": "1234567890",
        "valor_descuento": 20,
        "fecha_emision": dt.date(2026, 1, 1),
        "fecha_inicio_descuento": dt.date(2026, 1, 2),
        "seq": 1,
        **codes,
    }
    return {**row, **overrides}


async def _insert(connection, *rows: dict) -> None:
    columns = list(rows[0])
    async with connection.begin_nested():
        await connection.execute(
            text(f"INSERT INTO aviso ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"), rows
        )


async def _refused(connection, statement: str) -> None:
    with pytest.raises(IntegrityError, match=r"ForeignKeyViolation|violates reference"):
        async with connection.begin_nested():
            await connection.execute(text(statement))


async def test_an_aviso_written_in_sql_with_an_unknown_reference_is_refused(connection):
    await connection.execute(text("INSERT INTO patron (rfc, razon_social) VALUES ('AAA010101AAA', 'A')"))
    await connection.execute(text("INSERT INTO nrp (nrp, rfc_patron) VALUES ('Y5412345109', 'AAA010101AAA')"))
    good = await _aviso_row(connection)
    await _insert(connection, good)
    for number, (column, _table, _key) in enumerate(REFERENCIAS, start=2):
        unknown = {"rfc_patron": "ZZZ010101ZZZ", "nrp": "Z9999999999"}.get(column, "9Z")
        # One bad row among good ones: the statement as a whole is refused.
        other_good = {**good, "folio": f"2026010000{number:02d}00", "seq": 100 + number}
        bad = {**good, "folio": f"2026010000{number:02d}01", "seq": 200 + number, column: unknown}
        with pytest.raises(IntegrityError, match=f'violates reference "{column}"'):
            await _insert(connection, other_good, bad)
        with pytest.raises(IntegrityError, match=f'violates reference "{column}"'):
            async with connection.begin_nested():
                await connection.execute(text(f"UPDATE aviso SET {column} = :v"), {"v": unknown})


async def test_a_referenced_row_cannot_be_deleted_rekeyed_or_truncated(connection):
    await connection.execute(text("INSERT INTO patron (rfc, razon_social) VALUES ('AAA010101AAA', 'A')"))
    await connection.execute(text("INSERT INTO nrp (nrp, rfc_patron) VALUES ('Y5412345109', 'AAA010101AAA')"))
    row = await _aviso_row(connection)
    await _insert(connection, row)
    for column, table, key in REFERENCIAS:
        await _refused(connection, f"DELETE FROM {table} WHERE {key} = '{row[column]}'")
        rekeyed = f"left('X' || {key}, length({key}))"
        await _refused(connection, f"UPDATE {table} SET {key} = {rekeyed} WHERE {key} = '{row[column]}'")
        await _refused(connection, f"TRUNCATE {table} CASCADE")
    # A row no aviso references may still go.
    await connection.execute(text("INSERT INTO nrp (nrp, rfc_patron) VALUES ('Y5412345110', 'AAA010101AAA')"))
    await connection.execute(text("DELETE FROM nrp WHERE nrp = 'Y5412345110'"))


async def test_aviso_json_runs_as_plpgsql_not_as_an_uninlinable_sql_function(connection):
    """Every aviso written calls aviso_json (a STORED generated column). As SQL it is never inlined (its body is
    STABLE inside an IMMUTABLE function) and the SQL-function executor per row was ~3/4 of a load's INSERT;
    PL/pgSQL runs the same expression ~3× cheaper. The bytes it renders are held by the avisos tests."""
    language = await connection.scalar(
        text("SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.proname = 'aviso_json'")
    )
    assert language == "plpgsql"
