"""Publishing avisos: the one way rows enter `aviso` and `sandbox_aviso`, in each employer's publication order.

Every aviso carries `seq`, its place in its employer's publication order (unique per table and employer).
A publisher takes its employers' advisory locks, held until its transaction ends, and only then reads each
employer's highest `seq` (a new statement, so a new snapshot: the previous holder's rows are committed and
seen). So within one employer, seq order is commit order: whoever reads a row also sees every row of that
employer with a lower seq, and every row that becomes visible later has a higher seq. Readers compare the
cursor on seq alone and need no horizon; no other employer's transaction, idle session or long load can
hold an employer back. The unique index (rfc_patron, seq) turns a writer that skips the lock into an error,
never into a silently skipped aviso.

An employer's lock is one of LOCK_BUCKETS per table, shared by the employers whose RFC hashes to it: a chunk of
a national file can hold thousands of employers, and PostgreSQL's lock table is shared and small (about 64
locks per connection by default; 20,000 advisory locks in one transaction failed with "out of shared memory").
Two employers in one bucket only publish one after the other, for the moment of a chunk.

The lock is held only while publishing: loads publish in chunks of at most CHUNK_ROWS rows, each its own short
transaction, and check each chunk (and validate the next) outside the lock (see app/loaders.py)."""

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.notify import CHANNEL

LOCK_BUCKETS = 1024  # advisory locks per publication table: at most this many in one transaction
CHUNK_ROWS = 10_000  # rows per publishing transaction: long enough to be efficient, short enough to not block

_TABLES = ("aviso", "sandbox_aviso")


def lock_bucket(rfc: str) -> str:
    """SQL for the publication lock bucket (0 to LOCK_BUCKETS - 1) of the employer RFC that `rfc` evaluates to."""
    return f"(hashtext({rfc}) & {LOCK_BUCKETS - 1})"


def publish_statements(table: str, columns: tuple[str, ...], source: str) -> tuple[str, str]:
    """The two statements that publish the rows of `source` (a SELECT with `columns` and an `orden` column
    giving their order within the chunk) into `table`: lock the chunk's employers' buckets, then insert with seq.

    Two statements, not one: the INSERT's snapshot must be taken after the locks are granted. The locks are
    taken in key order, so two publishers of overlapping employers cannot deadlock. Returns SQL for the
    caller to run in one transaction (SQLAlchemy through `publish`, or asyncpg directly in the bench)."""
    if table not in _TABLES:
        raise ValueError(f"not a publication table: {table}")
    lock = (
        "SELECT pg_advisory_xact_lock(k) FROM ("
        f"SELECT DISTINCT hashtextextended('{table}:' || {lock_bucket('rfc_patron')}, 0) AS k FROM ({source}) AS s "
        "ORDER BY k) AS l"
    )
    cols = ", ".join(columns)
    # No ORDER BY: rows go in as the window numbers them (employer, then orden); a second sort of the whole chunk
    # into file order would only order ids, which nobody reads.
    insert = f"""WITH s AS ({source}),
        base AS MATERIALIZED (  -- once per employer, not once per row
            SELECT e.rfc_patron, COALESCE((SELECT max(t.seq) FROM {table} t WHERE t.rfc_patron = e.rfc_patron), 0) AS b
            FROM (SELECT DISTINCT rfc_patron FROM s) AS e)
        INSERT INTO {table} ({cols}, seq)
        SELECT {", ".join(f"s.{c}" for c in columns)},
               base.b + row_number() OVER (PARTITION BY s.rfc_patron ORDER BY s.orden)
        FROM s JOIN base USING (rfc_patron)"""
    return lock, insert


async def publish(
    conn: AsyncConnection,
    table: str,
    columns: tuple[str, ...],
    source: str,
    params: dict | None = None,
    skip_existing: str | None = None,
) -> int:
    """Publishes the rows of `source` (see publish_statements) in the caller's transaction; the employer
    locks are held until it ends, so the caller should commit soon. Returns the rows inserted.

    skip_existing: a unique column (folio) whose values another publisher may insert meanwhile; those rows
    are skipped, never an error. The INSERT is tried first without ON CONFLICT, in a savepoint, and only
    after a unique violation on that column is it run again with ON CONFLICT DO NOTHING: a speculative
    insertion per row cost ~6 µs of a load's ~25 µs per row, paid for a race that is rare."""
    lock, insert = publish_statements(table, columns, source)
    params = params or {}
    await conn.execute(text(lock), params)
    if skip_existing is None:
        result = await conn.execute(text(insert), params)
    else:
        try:
            async with conn.begin_nested():
                result = await conn.execute(text(insert), params)
        except IntegrityError as e:
            # The unique index's name (models/base.py's naming convention), as the driver reports it.
            violated = getattr(getattr(e.orig, "driver_exception", None), "constraint_name", None)
            if violated != f"uq_{table}_{skip_existing}":
                raise
            result = await conn.execute(text(f"{insert} ON CONFLICT ({skip_existing}) DO NOTHING"), params)
    if result.rowcount:
        # Delivered at commit: wakes the long polls (`espera`) of every replica for these employers, production's
        # and the sandboxes' alike.
        await conn.execute(
            text(f"SELECT pg_notify('{CHANNEL}', e.rfc_patron) FROM (SELECT DISTINCT rfc_patron FROM ({source}) s) e"),
            params,
        )
    return result.rowcount


async def publish_records(conn: AsyncConnection, table: str, columns: tuple[str, ...], records: list[tuple]) -> int:
    """Publishes rows given as Python tuples, in list order: COPY into a staging table, then `publish`."""
    await conn.execute(text("DROP TABLE IF EXISTS pg_temp.carga_publicacion"))
    await conn.execute(
        text(
            f"CREATE TEMP TABLE carga_publicacion ON COMMIT DROP AS SELECT {', '.join(columns)}, 0::bigint AS orden "
            f"FROM {table} WITH NO DATA"
        )
    )
    raw = await conn.get_raw_connection()
    assert raw.driver_connection is not None  # None only for a closed connection
    await raw.driver_connection.copy_records_to_table(
        "carga_publicacion", records=[(*r, i) for i, r in enumerate(records)], columns=(*columns, "orden")
    )
    return await publish(conn, table, columns, "SELECT * FROM carga_publicacion")
