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

import re
from itertools import count
from operator import itemgetter

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.notify import CHANNEL

LOCK_BUCKETS = 1024  # advisory locks per publication table: at most this many in one transaction
CHUNK_ROWS = 10_000  # rows per publishing transaction: long enough to be efficient, short enough to not block
TRANSITION_WORK_MEM = "64MB"  # a chunk's rows as the reference trigger holds them, with room (see publish_records)

_TABLES = ("aviso", "sandbox_aviso")


def lock_bucket(rfc: str) -> str:
    """SQL for the publication lock bucket (0 to LOCK_BUCKETS - 1) of the employer RFC that `rfc` evaluates to."""
    return f"(hashtext({rfc}) & {LOCK_BUCKETS - 1})"


def _lock_statement(table: str, employers: str) -> str:
    """Takes the publication locks of the employers that `employers` (a SELECT of rfc_patron) yields, in key
    order, so that two publishers of overlapping employers cannot deadlock. Every publisher takes the same keys."""
    return (
        "SELECT pg_advisory_xact_lock(k) FROM ("
        f"SELECT DISTINCT hashtextextended('{table}:' || {lock_bucket('rfc_patron')}, 0) AS k FROM ({employers}) AS s "
        "ORDER BY k) AS l"
    )


def publish_statements(table: str, columns: tuple[str, ...], source: str) -> tuple[str, str]:
    """The two statements that publish the rows of `source` (a SELECT with `columns` and an `orden` column
    giving their order within the chunk) into `table`: lock the chunk's employers' buckets, then insert with seq.

    Two statements, not one: the INSERT's snapshot must be taken after the locks are granted. Returns SQL for the
    caller to run in one transaction (SQLAlchemy through `publish`, or asyncpg directly in the bench)."""
    if table not in _TABLES:
        raise ValueError(f"not a publication table: {table}")
    lock = _lock_statement(table, f"SELECT rfc_patron FROM ({source}) AS r")
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
            driver_error = getattr(e.orig, "driver_exception", None)
            if not (
                isinstance(driver_error, asyncpg.UniqueViolationError) and violates(driver_error, table, skip_existing)
            ):
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


async def publish_records(
    conn: AsyncConnection,
    table: str,
    columns: tuple[str, ...],
    records: list[tuple],
    skip_existing: str | None = None,
    textos: list[str] | None = None,
) -> int:
    """Publishes rows given as Python tuples, in list order, in the caller's transaction, with one COPY straight
    into `table`: the rows' employers locked as `publish` locks them, each employer's highest seq read after the
    locks, the rows numbered here. Each value is text, None (NULL) or a value whose str() is its column's input
    (an int, a Decimal, a date, a UUID). Returns the rows inserted.

    The fastest way into the table: a load's INSERT … SELECT from a staging table cost the database ~5 µs of its
    ~17 per row more (the staging COPY, reading it back, numbering in a window). skip_existing: as in `publish`;
    only when the COPY meets a row another publisher inserted meanwhile do the rows go through a staging table and
    `publish`, which skips those. textos: the records' values already joined by tabs (a loader does it while its
    database works), else joined here."""
    if table not in _TABLES:
        raise ValueError(f"not a publication table: {table}")
    if not records:
        return 0
    rfc_of = itemgetter(columns.index("rfc_patron"))
    employers = {"employers": sorted(set(map(rfc_of, records)))}
    chosen = "SELECT unnest(CAST(:employers AS text[])) AS rfc_patron"
    await conn.execute(text(_lock_statement(table, chosen)), employers)
    # Then, in one round trip (a load makes thousands): each employer's highest seq, by a new statement whose
    # snapshot sees every row of the lock's previous holders; the wake-up of its long polls (`espera`), delivered at
    # commit and dropped with the rows if the COPY fails; and, for the rest of the transaction, memory for the
    # reference trigger's transition table, which holds every row of the statement, JSON included: past work_mem
    # (4 MB by default, some 4,000 avisos) it spills to a temporary file that is written and read back.
    highest = await conn.execute(
        text(
            f"""SELECT e.rfc_patron, COALESCE((SELECT max(t.seq) FROM {table} t WHERE t.rfc_patron = e.rfc_patron), 0),
                       pg_notify('{CHANNEL}', e.rfc_patron), set_config('work_mem', '{TRANSITION_WORK_MEM}', true)
                FROM ({chosen}) AS e"""
        ),
        employers,
    )
    following = {rfc: count(seq + 1) for rfc, seq, _, _ in highest}  # each employer's next seq
    seqs = [next(following[rfc]) for rfc in map(rfc_of, records)]
    # A memoryview: asyncpg would take bytes for a file's path.
    payload = memoryview(_copy_text(records, seqs, len(columns), textos))
    raw = await conn.get_raw_connection()
    assert raw.driver_connection is not None  # None only for a closed connection
    copy = raw.driver_connection.copy_to_table
    if skip_existing is None:
        status = await copy(table, source=payload, columns=(*columns, "seq"), format="text")
    else:
        try:
            async with conn.begin_nested():
                status = await copy(table, source=payload, columns=(*columns, "seq"), format="text")
        except asyncpg.UniqueViolationError as e:
            if not violates(e, table, skip_existing):
                raise
            await conn.execute(text("DROP TABLE IF EXISTS pg_temp.carga_publicacion"))
            await conn.execute(
                text(
                    f"CREATE TEMP TABLE carga_publicacion ON COMMIT DROP AS SELECT {', '.join(columns)}, "
                    f"0::bigint AS orden FROM {table} WITH NO DATA"
                )
            )
            await copy("carga_publicacion", source=payload, columns=(*columns, "orden"), format="text")
            return await publish(conn, table, columns, "SELECT * FROM carga_publicacion", skip_existing=skip_existing)
    return int(status.split()[-1])  # "COPY n"


def violates(error: asyncpg.UniqueViolationError, table: str, column: str) -> bool:
    """Whether `error` is a row refused by the unique index of `table` on `column` (models/base.py's names)."""
    return error.constraint_name == f"uq_{table}_{column}"


def _copy_text(records: list[tuple], seqs: list[int], width: int, lines: list[str] | None) -> bytes:
    """The rows in COPY's text format, each followed by its seq; lines: each record's values joined by tabs."""
    if lines is None:
        try:
            lines = list(map("\t".join, records))
        except TypeError:  # not every value is text
            lines = None
    if lines is not None:
        payload = "".join([f"{line}\t{n}\n" for line, n in zip(lines, seqs, strict=True)])
        # The format gives meaning to a backslash, a tab, a newline and a carriage return in a value. No validated
        # field holds one, so the whole text is asked once, and only when it holds one are the values escaped.
        if not (
            "\\" in payload
            or "\r" in payload
            or payload.count("\t") != width * len(lines)
            or payload.count("\n") != len(lines)
        ):
            return payload.encode()
    return "".join("\t".join(map(_copy_field, r)) + f"\t{n}\n" for r, n in zip(records, seqs, strict=True)).encode()


def _copy_field(value: object) -> str:
    """One value in COPY's text format: None is NULL; any other value its str(), escaped."""
    if value is None:
        return "\\N"
    return _COPY_ESCAPES.sub(lambda m: _ESCAPED[m[0]], value if isinstance(value, str) else str(value))


_ESCAPED = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_COPY_ESCAPES = re.compile("[\\\\\t\n\r]")
