"""The operator's loaders: `sia load patrones FILE` and `sia load avisos FILE`.

Every row is validated: its fields in Python, in a thread that reads the next batch of the file while the
database works on the current one, and against the database (the NRP in the padrón, conflicts with what is
already published) as set operations: patrones on a temporary staging table the batch is copied into; avisos
by one query per check that takes the chunk's keys as arrays, and then one COPY straight into `aviso`
(publicacion.publish_records), so that the database reads and writes each aviso once.

Patrones are written in the caller's transaction, and a file with bad rows (without --skip-invalid) writes
nothing. Avisos are checked and published a chunk of publicacion.CHUNK_ROWS rows at a time
(app/publicacion.py), each chunk while the next is validated: given a connection with no transaction begun
(`sia load`, `sia demo`), each chunk is its own transaction, so no publishing transaction is long and an
interrupted load leaves whole chunks, in order, that a re-run completes; given a connection in a transaction
(tests), everything happens in it, and what a stopped load published stays there for the caller to commit
or roll back. A bad row (without --skip-invalid) stops the publication where it is: the avisos of the rows
before it are published, none from it on, and the rest of the file is still checked, so that every bad row
is reported at once; once they are fixed, loading the file again publishes the rest.

Loading the same file twice changes nothing: avisos are immutable, and a folio that comes back with different
content is a bad row, never an overwrite. Within a chunk, a folio repeated with other content makes every
copy a bad row; in a later chunk the earlier copy is already published (or, after a stop, waiting unpublished),
so only the later copies are refused: publication cannot wait for the end of the file to know.
"""

import asyncio
import csv
import datetime as dt
import re
import time
from bisect import bisect_left
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from itertools import islice
from operator import itemgetter
from pathlib import Path

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app import publicacion
from app.auditoria import record_event
from app.catalogs import catalog_codes
from app.identifiers import (
    IdentifierError,
    check_curp,
    check_folio,
    check_nrp,
    check_nss,
    check_numero_credito,
    check_rfc,
    rfc_warning,
)
from app.models.aviso import CAMPOS_CARGA_AVISO

CAMPOS_PATRONES = ("rfc", "razon_social", "nrp")
COPY_BATCH = 20_000  # lines of a patrones file read and validated at a time
MAX_NOMBRE = 200

Progress = Callable[[int, int], None]  # (rows read, bytes read)


@dataclass(frozen=True)
class RowIssue:
    linea: int
    campo: str
    motivo: str

    def __str__(self) -> str:
        return f"línea {self.linea}, {self.campo}: {self.motivo}"


@dataclass
class LoadReport:
    archivo: str
    leidos: int = 0
    nuevos: int = 0
    existentes: int = 0
    patrones_nuevos: int = 0
    actualizados: int = 0
    errores: list[RowIssue] = field(default_factory=list)
    advertencias: list[RowIssue] = field(default_factory=list)
    # An avisos load without --skip-invalid stops publishing at its first bad line: this one.
    detenida_en: int | None = None
    # Where a load's time went: reading and validating in Python, and, at the same time, the database's part
    # (the checks made there, publishing).
    segundos_validacion: float = 0.0
    segundos_base_de_datos: float = 0.0

    @property
    def lineas_rechazadas(self) -> set[int]:
        return {e.linea for e in self.errores}


class LoadRejected(Exception):
    """The file has bad rows and --skip-invalid was not given: nothing of it is written (patrones), or nothing from
    the first of them on (avisos: report.detenida_en)."""

    def __init__(self, report: LoadReport) -> None:
        n = len(report.lineas_rechazadas)
        super().__init__(f"{n} {'fila inválida' if n == 1 else 'filas inválidas'} en {report.archivo}")
        self.report = report


class FileFormatError(ValueError):
    """The file as a whole cannot be read (unknown format, wrong header)."""


# ---------------------------------------------------------------- reading


class _ByteCounter:
    def __init__(self, path: Path) -> None:
        self.path, self.bytes = path, 0

    def raw_lines(self) -> Iterator[bytes]:
        with self.path.open("rb", buffering=1 << 20) as f:
            for raw in f:
                self.bytes += len(raw)
                yield raw

    def lines(self) -> Iterator[str]:
        for number, raw in enumerate(self.raw_lines()):
            yield _decoded(raw, number)


def _decoded(raw: bytes, number: int) -> str:
    # Undecodable bytes become U+FFFD, which validation reports on that row.
    line = raw.decode("utf-8", errors="replace")
    return line.removeprefix("\ufeff") if number == 0 else line


def file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".ndjson", ".jsonl"):
        return "ndjson"
    raise FileFormatError(f"{path.name}: formato desconocido; use .csv o .ndjson")


def read_records(path: Path, campos: tuple[str, ...], counter: _ByteCounter) -> Iterator[tuple[int, dict | str]]:
    """Yields (line number, record) or (line number, reason) for a line that is not a record at all."""
    if file_format(path) == "csv":
        reader = csv.DictReader(counter.lines())
        header = reader.fieldnames or []
        if sorted(header) != sorted(campos):
            faltan = [c for c in campos if c not in header]
            sobran = [c for c in header if c not in campos]
            raise FileFormatError(
                f"{path.name}: encabezado inválido"
                + (f"; faltan: {', '.join(faltan)}" if faltan else "")
                + (f"; sobran: {', '.join(sobran)}" if sobran else "")
            )
        for row in reader:
            if None in row or None in row.values():
                yield reader.line_num, "la fila no tiene el número de columnas del encabezado"
            else:
                yield reader.line_num, row
        return
    for number, raw in enumerate(counter.raw_lines(), start=1):
        try:
            # orjson reads the bytes as they are: valid UTF-8 (nearly every line) needs no decoding into a str.
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            # A blank line, a BOM, undecodable bytes or no JSON at all: read as text, as every line once was.
            line = _decoded(raw, number - 1)
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield number, "la línea no es JSON válido"
                continue
        if not isinstance(record, dict):
            yield number, "la línea debe ser un objeto JSON"
            continue
        yield number, record


@lru_cache
def _field_set(campos: tuple[str, ...]) -> frozenset[str]:
    return frozenset(campos)


def _record_issues(record: dict, campos: tuple[str, ...]) -> list[tuple[str, str]]:
    # The common case, checked at once: every field present, nothing else, all text (join refuses anything
    # else; records come from csv or orjson, so a str is never a subclass), all valid UTF-8.
    if record.keys() == _field_set(campos):
        try:
            joined = "".join(record.values())
        except TypeError:
            pass
        else:
            if "\ufffd" not in joined:
                return []
    issues = [(c, "falta el campo") for c in campos if c not in record]
    issues += [(str(c), "campo desconocido") for c in record if c not in campos]
    for c in campos:
        value = record.get(c)
        if c in record and not isinstance(value, str):
            # Amounts are exact decimals: a JSON number would arrive as a float.
            issues.append((c, "debe ser texto (una cadena JSON)"))
        elif isinstance(value, str) and "\ufffd" in value:
            issues.append((c, "el texto no está en UTF-8 válido"))
    return issues


def write_rejects(source: Path, lines: set[int], out: Path) -> int:
    """Copies the rejected records of `source` to `out` in the same format, ready to fix and reload."""
    counter = _ByteCounter(source)
    written = 0
    with out.open("w", newline="", encoding="utf-8") as f:
        if file_format(source) == "csv":
            reader = csv.reader(counter.lines())
            writer = csv.writer(f)
            writer.writerow(next(reader))
            for row in reader:
                if reader.line_num in lines:
                    writer.writerow(row)
                    written += 1
        else:
            for number, line in enumerate(counter.lines(), start=1):
                if number in lines:
                    f.write(line if line.endswith("\n") else line + "\n")
                    written += 1
    return written


# ---------------------------------------------------------------- field checks

# [0-9], not \d, which also matches other scripts' digits ("٢٠"): Python reads them, PostgreSQL does not.
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_DECIMAL = re.compile(r"^[0-9]{1,8}(\.[0-9]{1,4})?$")


@lru_cache(maxsize=65536)  # dates repeat across a file; only a valid one is cached (a raise is not)
def _check_date(value: str, today: dt.date) -> None:
    if not _DATE.match(value):
        raise IdentifierError("debe ser una fecha AAAA-MM-DD")
    try:
        parsed = dt.date.fromisoformat(value)
    except ValueError:
        raise IdentifierError(f"{value} no es una fecha del calendario") from None
    if parsed.year < 1972 or parsed > today + dt.timedelta(days=366):
        raise IdentifierError(f"{value} está fuera del rango aceptado")


# The same workers and employers come back across a file (one aviso per movement of a credit), so the checks
# that compute a check digit remember the values that passed; a value that fails raises, and is not remembered.
@lru_cache(maxsize=65536)
def _rfc(value: str) -> str | None:
    """check_rfc + rfc_warning."""
    check_rfc(value)
    return rfc_warning(value)


_nss = lru_cache(maxsize=65536)(check_nss)
_curp = lru_cache(maxsize=65536)(check_curp)


@dataclass
class _Context:
    today: dt.date
    codes: dict[str, dict[str, str | None]]
    hoy: str = field(init=False)  # today as ISO text, compared with text dates that already passed _check_date

    def __post_init__(self) -> None:
        self.hoy = self.today.isoformat()


_IDENTIFIERS = {
    "folio": check_folio,
    "nss": check_nss,
    "curp": check_curp,
    "numero_credito": check_numero_credito,
    "nrp": check_nrp,
}
_CATALOG_FIELDS = {
    "tipo_aviso": "tipos-aviso",
    "tipo_credito": "tipos-credito",
    "estatus_credito": "estatus-credito",
    "tipo_descuento": "tipos-descuento",
}


def _validate_aviso(rec: dict, ctx: _Context) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The checks of _explain_aviso on an aviso that passes them all, made without building anything; any
    failure leaves the explaining to _explain_aviso, so every message comes from one place."""
    codes = ctx.codes
    try:
        check_folio(rec["folio"])
        _nss(rec["nss"])
        _curp(rec["curp"])
        check_numero_credito(rec["numero_credito"])
        check_nrp(rec["nrp"])
        warning_patron = _rfc(rec["rfc_patron"])
        warning_trabajador = _rfc(rec["rfc_trabajador"])
        _check_date(rec["fecha_emision"], ctx.today)
        _check_date(rec["fecha_inicio_descuento"], ctx.today)
    except IdentifierError:
        return _explain_aviso(rec, ctx)
    valor, nombre = rec["valor_descuento"], rec["nombre_trabajador"]
    if not (
        rec["tipo_aviso"] in codes["tipos-aviso"]
        and rec["tipo_credito"] in codes["tipos-credito"]
        and rec["estatus_credito"] in codes["estatus-credito"]
        and rec["tipo_descuento"] in codes["tipos-descuento"]
        and rec["fecha_emision"] <= ctx.hoy
        and _DECIMAL.match(valor)
        and (rec["tipo_descuento"] != "1" or float(valor) <= 100)
        and 0 < len(nombre) <= MAX_NOMBRE
        and nombre.isprintable()
        and not nombre.isspace()
    ):
        return _explain_aviso(rec, ctx)
    if warning_patron is None and warning_trabajador is None:
        return [], []
    warnings = [("rfc_patron", warning_patron), ("rfc_trabajador", warning_trabajador)]
    return [], [(name, warning) for name, warning in warnings if warning]


def _explain_aviso(rec: dict, ctx: _Context) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    errors: list[tuple[str, str]] = []
    warnings: list[tuple[str, str]] = []
    for name, check in _IDENTIFIERS.items():
        try:
            check(rec[name])
        except IdentifierError as e:
            errors.append((name, str(e)))
    for name in ("rfc_patron", "rfc_trabajador"):
        try:
            warning = _rfc(rec[name])
        except IdentifierError as e:
            errors.append((name, str(e)))
        else:
            if warning:
                warnings.append((name, warning))
    for name, catalog in _CATALOG_FIELDS.items():
        if rec[name] not in ctx.codes[catalog]:
            errors.append((name, f"'{rec[name]}' no está en el catálogo {catalog}"))
    for name in ("fecha_emision", "fecha_inicio_descuento"):
        try:
            _check_date(rec[name], ctx.today)
        except IdentifierError as e:
            errors.append((name, str(e)))
    if not errors and rec["fecha_emision"] > ctx.today.isoformat():
        errors.append(("fecha_emision", "no puede ser posterior a hoy"))
    valor = rec["valor_descuento"]
    if not _DECIMAL.match(valor):
        errors.append(("valor_descuento", "debe ser un decimal no negativo con hasta 4 decimales, p. ej. 20.0000"))
    elif rec["tipo_descuento"] == "1" and float(valor) > 100:
        errors.append(("valor_descuento", "un porcentaje no puede ser mayor a 100"))
    nombre = rec["nombre_trabajador"]
    if not nombre.strip() or len(nombre) > MAX_NOMBRE or not nombre.isprintable():
        errors.append(("nombre_trabajador", f"debe tener de 1 a {MAX_NOMBRE} caracteres imprimibles"))
    # Whether the NRP is registered to this employer is asked of the registry as a set (_check_registry).
    return errors, warnings


async def _registry_issues(conn: AsyncConnection, batch: "_Batch") -> list[RowIssue]:
    """Each aviso's NRP must be in the padrón and belong to the aviso's employer: asked of the registry once per
    distinct (NRP, employer) of the chunk, a handful, not row by row nor by reading the whole registry."""
    key_of = itemgetter(_AT["nrp"], _AT["rfc_patron"])
    pairs = sorted(set(map(key_of, batch.rows)))
    wrong = await conn.execute(
        text(
            """SELECT p.nrp, p.rfc, n.rfc_patron
               FROM unnest(CAST(:nrps AS text[]), CAST(:rfcs AS text[])) AS p(nrp, rfc) LEFT JOIN nrp n ON n.nrp = p.nrp
               WHERE n.rfc_patron IS DISTINCT FROM p.rfc"""
        ),
        {"nrps": [nrp for nrp, _ in pairs], "rfcs": [rfc for _, rfc in pairs]},
    )
    owners = {(nrp, rfc): owner for nrp, rfc, owner in wrong}
    if not owners:
        return []
    return [
        RowIssue(linea, "nrp", f"{nrp} no está en el padrón; cárguelo antes con `sia load patrones`")
        if owners[nrp, rfc] is None
        else RowIssue(linea, "nrp", f"{nrp} pertenece al patrón {owners[nrp, rfc]}, no a {rfc}")
        for linea, (nrp, rfc) in zip(batch.lineas, map(key_of, batch.rows), strict=True)
        if (nrp, rfc) in owners
    ]


# ---------------------------------------------------------------- staging


class _Staging:
    """A temporary table of text columns that a file's records are copied into and checked in: a patrones file
    whole; an avisos file's rows that wait, unpublished, after a stop."""

    def __init__(self, conn: AsyncConnection, table: str, columns: tuple[str, ...]) -> None:
        self.conn, self.table, self.columns = conn, table, ("linea", *columns)

    async def create(self) -> None:
        cols = ", ".join(f"{c} text" for c in self.columns[1:])
        # DROP first: an earlier load on this session (or its enclosing transaction) may have left it.
        await self.drop()
        await self.conn.execute(text(f"CREATE TEMP TABLE {self.table} (linea integer, {cols})"))

    async def drop(self) -> None:
        await self.conn.execute(text(f"DROP TABLE IF EXISTS pg_temp.{self.table}"))

    async def copy(self, rows: list[tuple]) -> None:
        raw = await self.conn.get_raw_connection()
        assert raw.driver_connection is not None  # None only for a closed connection
        await raw.driver_connection.copy_records_to_table(self.table, records=rows, columns=self.columns)

    async def analyze(self) -> None:
        # Temporary tables are never auto-analyzed; without statistics the planner guesses nested loops.
        await self.conn.execute(text(f"ANALYZE {self.table}"))

    async def discard(self, lines: set[int]) -> None:
        if lines:
            await self.conn.execute(
                text(f"DELETE FROM {self.table} WHERE linea = ANY(:lines)"), {"lines": sorted(lines)}
            )


@dataclass
class _Batch:
    """Consecutive lines of a file, read and validated: the rows to stage and the issues found in them."""

    rows: list[tuple] = field(default_factory=list)
    lineas: list[int] = field(default_factory=list)  # the line of each row
    textos: list[str] = field(default_factory=list)  # avisos: each row's values joined for COPY (publish_records)
    errores: list[RowIssue] = field(default_factory=list)
    advertencias: list[RowIssue] = field(default_factory=list)
    leidos: int = 0
    bytes_leidos: int = 0  # of the file, up to the batch's end
    segundos: float = 0.0  # spent reading and validating it


async def _validated_batches(
    path: Path,
    campos: tuple[str, ...],
    validate: Callable[[dict], tuple[list[tuple[str, str]], list[tuple[str, str]]]],
    to_row: Callable[[int, dict], tuple],
    size: int,
    prepare: Callable[["_Batch"], None] | None = None,
) -> AsyncGenerator[_Batch, None]:
    """The file in batches of `size` rows (none for a file without rows). Each is read and validated in a thread
    while the caller stores the one before it: Python and PostgreSQL on two cores instead of taking turns. Only
    that thread touches the reader, one batch at a time. prepare: more of the caller's work on each batch, done
    in that thread too."""
    counter = _ByteCounter(path)
    records = read_records(path, campos, counter)

    def next_batch() -> _Batch:
        started = time.perf_counter()
        batch = _Batch()
        for linea, record in islice(records, size):
            batch.leidos += 1
            if not batch.leidos % _YIELD_EVERY:
                time.sleep(0)  # gives the GIL to the event loop's thread if it waits (see _YIELD_EVERY)
            if isinstance(record, str):
                batch.errores.append(RowIssue(linea, "*", record))
                continue
            issues = _record_issues(record, campos)
            if issues:
                batch.errores += [RowIssue(linea, c, m) for c, m in issues]
                continue
            issues, warnings = validate(record)
            batch.errores += [RowIssue(linea, c, m) for c, m in issues]
            batch.advertencias += [RowIssue(linea, c, m) for c, m in warnings]
            # Kept even with field issues, so that the checks made in the database see every record of text
            # fields; the caller discards the rejected lines after them.
            batch.rows.append(to_row(linea, record))
            batch.lineas.append(linea)
        if prepare is not None:
            prepare(batch)
        batch.bytes_leidos, batch.segundos = counter.bytes, time.perf_counter() - started
        return batch

    batch = await asyncio.to_thread(next_batch)
    while batch.leidos:
        ahead = asyncio.ensure_future(asyncio.to_thread(next_batch)) if batch.leidos == size else None
        try:
            yield batch
            if ahead is None:
                return
            batch = await ahead
        finally:
            if ahead is not None and not ahead.done():
                ahead.cancel()  # the caller stopped: the next batch is not wanted (the thread ends it anyway)


# The event loop's thread needs the GIL back each time the database answers; a thread that never blocks only
# lets go of it every sys.getswitchinterval() (5 ms), which cost each of a chunk's dozen statements up to that
# long. Letting go every few dozen records (about half a millisecond of validation) costs almost nothing.
_YIELD_EVERY = 50


def _count(report: LoadReport, batch: _Batch, progress: Progress | None) -> None:
    report.leidos += batch.leidos
    report.advertencias += batch.advertencias
    report.segundos_validacion += batch.segundos
    if progress:
        progress(report.leidos, batch.bytes_leidos)


async def _audit(conn: AsyncConnection, accion: str, report: LoadReport, actor: str) -> None:
    await record_event(
        conn,
        accion=accion,
        actor=actor,
        rfc_patron=None,
        cantidad=report.nuevos,
        now=dt.datetime.now(dt.UTC),
        detalle={
            "archivo": report.archivo,
            "leidos": report.leidos,
            "nuevos": report.nuevos,
            "existentes": report.existentes,
            "patrones_nuevos": report.patrones_nuevos,
            "actualizados": report.actualizados,
            "rechazados": len(report.lineas_rechazadas),
            "detenida_en_linea": report.detenida_en,
        },
    )


# ---------------------------------------------------------------- avisos

_AVISO_COLUMNS = (*CAMPOS_CARGA_AVISO, "clase")
_AT = {c: i for i, c in enumerate(_AVISO_COLUMNS)}  # where each field is in a batch row
_campos_carga = itemgetter(*CAMPOS_CARGA_AVISO)
_COMPARED = tuple(c for c in CAMPOS_CARGA_AVISO if c != "folio")  # what two copies of one folio must share


def _content(values: Iterable) -> tuple:
    """An aviso's _COMPARED fields, as text from a file or as `aviso` holds them, in a form that compares as the
    columns do: an amount by its value (20 is 20.0000), the rest as text (dates are validated ISO text)."""
    return tuple(Decimal(v) if c == "valor_descuento" else str(v) for c, v in zip(_COMPARED, values, strict=True))


def _row_content(row: tuple) -> tuple:
    return _content(row[_AT[c]] for c in _COMPARED)


async def load_avisos(
    conn: AsyncConnection,
    path: Path,
    *,
    skip_invalid: bool = False,
    today: dt.date | None = None,
    progress: Progress | None = None,
    actor: str = "operador",
) -> LoadReport:
    """Raises LoadRejected at the end when the file has bad rows and not skip_invalid: by then what came before
    the first of them (report.detenida_en) is published, or, in the caller's transaction, written to it."""
    own_transactions = not conn.in_transaction()  # see the module docstring
    ctx = _Context(today or dt.date.today(), await catalog_codes(conn))
    tipos = ctx.codes["tipos-aviso"]
    report = LoadReport(path.name)
    batches = _validated_batches(
        path,
        CAMPOS_CARGA_AVISO,
        lambda rec: _validate_aviso(rec, ctx),
        # A tipo_aviso outside the catalog is a rejected line: its clase is never read.
        lambda linea, rec: (*_campos_carga(rec), tipos.get(rec["tipo_aviso"], "")),
        publicacion.CHUNK_ROWS,
        _join_for_copy,
    )
    pending = _Staging(conn, "carga_pendiente", _AVISO_COLUMNS)
    await pending.create()
    await conn.execute(text("CREATE INDEX ON carga_pendiente (folio)"))
    if own_transactions:
        await conn.commit()  # not left open while the first chunk is validated
    async with aclosing(batches):
        async for batch in batches:
            started = time.perf_counter()
            _count(report, batch, progress)
            await _publish_chunk(pending, batch, report, skip_invalid, own_transaction=own_transactions)
            if own_transactions:
                await conn.commit()
            report.segundos_base_de_datos += time.perf_counter() - started
    await pending.drop()
    await _audit(conn, "carga.avisos", report, actor)
    if own_transactions:
        await conn.commit()
    if report.detenida_en is not None:
        raise LoadRejected(report)
    return report


async def _publish_chunk(
    pending: _Staging, batch: _Batch, report: LoadReport, skip_invalid: bool, *, own_transaction: bool
) -> None:
    """Checks one chunk of the file against the database and publishes what may be published of it: its valid
    avisos, or, once the file has shown a bad row and skip_invalid is not set, those before that row only. The
    valid rows after that row wait in carga_pendiente, never published, so that a folio repeated in a later
    chunk is still compared with them, as one published earlier is compared with `aviso`.

    Nearly every chunk of a real file is new avisos without a bad row, and the Python of this path shares one core
    with the validation of the next chunk: such a chunk is published at once, and the COPY tells whether some
    folio is there already (the unique index fails it at the first). That spares every chunk the query over its
    folios; only a chunk that fails (a re-run) takes it."""
    stopped = report.detenida_en is not None
    checked = await _row_checks(pending.conn, batch)
    if not (stopped or checked.errores or checked.skipped):
        inserted = await _publish_new(pending.conn, batch, own_transaction=own_transaction)
        if inserted is not None:
            report.nuevos += inserted
            return
    await _published_checks(pending, batch, checked, stopped=stopped)
    # In line order, as a person reads them; a line's own issues in the order found (the sort is stable).
    errores, skipped = sorted(checked.errores, key=lambda issue: issue.linea), checked.skipped
    report.errores += errores
    if errores and not skip_invalid and report.detenida_en is None:
        report.detenida_en = min(e.linea for e in errores)
    lineas, rows = batch.lineas, batch.rows
    if errores:
        rejected = {e.linea for e in errores}
        kept = [i for i, linea in enumerate(lineas) if linea not in rejected]
        lineas, rows = [lineas[i] for i in kept], [rows[i] for i in kept]
    if report.detenida_en is not None:
        stop = bisect_left(lineas, report.detenida_en)  # lines are in file order
        if stop < len(rows):
            await pending.copy([(linea, *row) for linea, row in zip(lineas[stop:], rows[stop:], strict=True)])
        lineas, rows = lineas[:stop], rows[:stop]
    # skipped: the lines already published with the same content (other content was refused), and the later
    # copies of a folio repeated with the same content. publish_records then skips only what a concurrent load
    # publishes meanwhile.
    fresh = [row for linea, row in zip(lineas, rows, strict=True) if linea not in skipped] if skipped else rows
    inserted = await publicacion.publish_records(pending.conn, "aviso", _AVISO_COLUMNS, fresh, skip_existing="folio")
    report.nuevos += inserted
    # Each folio of the chunk once: inserted now, or there already.
    report.existentes += (len({row[_AT["folio"]] for row in rows}) if skipped else len(rows)) - inserted


def _join_for_copy(batch: _Batch) -> None:
    # In the validating thread: the event loop's, which waits for the database, has the less to do.
    batch.textos = list(map("\t".join, batch.rows))


async def _publish_new(conn: AsyncConnection, batch: _Batch, *, own_transaction: bool) -> int | None:
    """Publishes a chunk's rows, all expected to be new; None, and nothing written, if a folio is there already.
    A failure undoes its own transaction (which has only checked the chunk so far), or a savepoint in the caller's."""
    try:
        if own_transaction:
            return await publicacion.publish_records(conn, "aviso", _AVISO_COLUMNS, batch.rows, textos=batch.textos)
        async with conn.begin_nested():
            return await publicacion.publish_records(conn, "aviso", _AVISO_COLUMNS, batch.rows, textos=batch.textos)
    except asyncpg.UniqueViolationError as e:
        if not publicacion.violates(e, "aviso", "folio"):
            raise
        if own_transaction:
            await conn.rollback()
        return None


@dataclass
class _Checked:
    """What a chunk's checks found so far, and the places (in the batch) of its valid rows, which they compare."""

    errores: list[RowIssue]
    skipped: set[int]  # lines not to publish for their aviso is there already
    valid: Sequence[int]
    folios: list[str]  # of the valid rows
    copies: dict[str, list[int]] = field(default_factory=dict)  # each folio's places, once some check needs them


async def _row_checks(conn: AsyncConnection, batch: _Batch) -> _Checked:
    """The chunk's field and registry issues, and its folios repeated within it: a later copy with the same content
    is skipped, copies with other content are all refused."""
    rows, lineas = batch.rows, batch.lineas
    # The registry's issues take the place the per-row check gave them: in line order, after that line's
    # field issues (the sort is stable).
    errores = sorted(batch.errores + await _registry_issues(conn, batch), key=lambda issue: issue.linea)
    rejected = {e.linea for e in errores}
    valid = [i for i, linea in enumerate(lineas) if linea not in rejected] if errores else range(len(rows))
    folios = [rows[i][_AT["folio"]] for i in valid] if errores else list(map(itemgetter(_AT["folio"]), rows))
    checked = _Checked(errores, set(), valid, folios)
    if len(set(folios)) < len(folios):
        for folio, i in zip(folios, valid, strict=True):
            checked.copies.setdefault(folio, []).append(i)
        for folio, places in checked.copies.items():
            # The same folio twice in one chunk must carry the same content; then the copies are dropped. In two
            # chunks, the later one finds it published.
            lines = [lineas[i] for i in places]
            checked.skipped.update(lines[1:])
            if len({_row_content(rows[i]) for i in places}) > 1:
                errores += [
                    RowIssue(linea, "folio", f"{folio} aparece con contenido distinto en las líneas {lines}")
                    for linea in lines
                ]
    return checked


async def _published_checks(pending: _Staging, batch: _Batch, checked: _Checked, *, stopped: bool) -> None:
    """Adds to `checked` the valid rows' folios that are published (same content: skipped; other content:
    refused) and, after a stop, those that wait in carga_pendiente with other content."""
    conn, rows, lineas = pending.conn, batch.rows, batch.lineas
    folios, valid, copies, errores = checked.folios, checked.valid, checked.copies, checked.errores
    # A published aviso never changes.
    there = (
        await conn.execute(
            text(f"SELECT folio, {', '.join(_COMPARED)} FROM aviso WHERE folio = ANY(CAST(:folios AS text[]))"),
            {"folios": folios},
        )
    ).all()
    # After a stop, the same comparison with the valid rows that wait unpublished (see _publish_chunk).
    waiting = (
        (
            await conn.execute(
                text(
                    f"""SELECT folio, linea, {", ".join(_COMPARED)} FROM carga_pendiente
                        WHERE folio = ANY(CAST(:folios AS text[])) ORDER BY linea"""
                ),
                {"folios": folios},
            )
        ).all()
        if stopped
        else []
    )
    if (there or waiting) and not copies:
        copies.update((folio, [i]) for folio, i in zip(folios, valid, strict=True))
    for folio, *values in there:
        content = _content(values)
        for i in copies[folio]:
            if differing := [
                c for c, mine, theirs in zip(_COMPARED, _row_content(rows[i]), content, strict=True) if mine != theirs
            ]:
                errores.append(
                    RowIssue(
                        lineas[i],
                        "folio",
                        f"{folio} ya está publicado con otro contenido ({', '.join(differing)}); "
                        "un aviso no se modifica: publique la corrección con un folio nuevo",
                    )
                )
            else:
                checked.skipped.add(lineas[i])
    earlier: dict[str, list[tuple[int, tuple]]] = {}
    for folio, linea, *values in waiting:
        earlier.setdefault(folio, []).append((linea, _content(values)))
    for folio, waits in earlier.items():
        for i in copies[folio]:
            if lines := [wait for wait, content in waits if content != _row_content(rows[i])]:
                errores.append(
                    RowIssue(
                        lineas[i],
                        "folio",
                        f"{folio} aparece con contenido distinto en las líneas {[*lines, lineas[i]]}",
                    )
                )


# ---------------------------------------------------------------- patrones


def _validate_patron(
    rec: dict, seen_rfc: dict[str, str], seen_nrp: dict[str, str]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    errors, warnings = [], []
    try:
        warning = _rfc(rec["rfc"])
        if warning:
            warnings.append(("rfc", warning))
    except IdentifierError as e:
        errors.append(("rfc", str(e)))
    try:
        check_nrp(rec["nrp"])
    except IdentifierError as e:
        errors.append(("nrp", str(e)))
    razon = rec["razon_social"].strip()
    if not razon or len(razon) > 300 or not razon.isprintable():
        errors.append(("razon_social", "debe tener de 1 a 300 caracteres imprimibles"))
    if errors:
        return errors, warnings
    if seen_rfc.setdefault(rec["rfc"], razon) != razon:
        errors.append(("razon_social", f"distinta de la de otra fila del mismo RFC: {seen_rfc[rec['rfc']]!r}"))
    if seen_nrp.setdefault(rec["nrp"], rec["rfc"]) != rec["rfc"]:
        errors.append(("nrp", f"{rec['nrp']} aparece también con el RFC {seen_nrp[rec['nrp']]}"))
    return errors, warnings


async def load_patrones(
    conn: AsyncConnection,
    path: Path,
    *,
    skip_invalid: bool = False,
    progress: Progress | None = None,
    actor: str = "operador",
) -> LoadReport:
    """Adds employers and NRPs; a changed razón social is updated (the registry is not immutable),
    but an NRP never moves to another employer."""
    report = LoadReport(path.name)
    staging = _Staging(conn, "carga_patron", CAMPOS_PATRONES)
    seen_rfc: dict[str, str] = {}
    seen_nrp: dict[str, str] = {}
    await staging.create()
    batches = _validated_batches(
        path,
        CAMPOS_PATRONES,
        lambda rec: _validate_patron(rec, seen_rfc, seen_nrp),
        lambda linea, rec: (linea, rec["rfc"], rec["razon_social"].strip(), rec["nrp"]),
        COPY_BATCH,
    )
    async with aclosing(batches):
        async for batch in batches:
            _count(report, batch, progress)
            report.errores += batch.errores
            await staging.copy(batch.rows)
    await conn.execute(text("CREATE INDEX ON carga_patron (linea)"))
    await staging.analyze()
    await staging.discard(report.lineas_rechazadas)  # the check below compares valid rows only
    moved = await conn.execute(
        text(
            """SELECT c.linea, c.nrp, n.rfc_patron FROM carga_patron c
               JOIN nrp n ON n.nrp = c.nrp WHERE n.rfc_patron <> c.rfc"""
        )
    )
    for linea, nrp, owner in moved:
        report.errores.append(RowIssue(linea, "nrp", f"{nrp} ya está registrado para el patrón {owner}"))
    if report.errores and not skip_invalid:
        raise LoadRejected(report)  # in the caller's transaction: nothing of the file is written
    await staging.discard(report.lineas_rechazadas)
    patrones = await conn.execute(
        text(
            """INSERT INTO patron (rfc, razon_social)
               SELECT DISTINCT ON (rfc) rfc, razon_social FROM carga_patron ORDER BY rfc, linea
               ON CONFLICT (rfc) DO UPDATE SET razon_social = EXCLUDED.razon_social
               WHERE patron.razon_social IS DISTINCT FROM EXCLUDED.razon_social
               RETURNING (xmax = 0) AS inserted"""
        )
    )
    inserted = [row.inserted for row in patrones]
    report.patrones_nuevos, report.actualizados = inserted.count(True), inserted.count(False)
    nrps = await conn.execute(
        text(
            """INSERT INTO nrp (nrp, rfc_patron)
               SELECT DISTINCT ON (nrp) nrp, rfc FROM carga_patron ORDER BY nrp, linea
               ON CONFLICT (nrp) DO NOTHING"""
        )
    )
    report.nuevos = nrps.rowcount
    staged = await conn.scalar(text("SELECT count(DISTINCT nrp) FROM carga_patron"))
    report.existentes = staged - report.nuevos
    await _audit(conn, "carga.patrones", report, actor)
    return report
