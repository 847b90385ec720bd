"""The loader and publication bars, on a database of their own.

    python -m bench.publicacion [--rows 200000] [--other-rows 300000]

- loader: `load_avisos` of a demo file into an empty `aviso` (through the CLI's path: no transaction begun,
  chunks committed) ÷ a plain COPY of the same rows, as CSV, into a table with aviso's indexes and no
  constraints or triggers; best of three each, taken in turns. `python -m bench --carga` runs only this.
- horizon: while another employer's load runs (`sia load avisos` in another process) and a session idles
  in a transaction holding a transaction id, how long after its commit another employer's new avisos
  reach a reader of the ordinary page query.

`make bench` runs both (bench/__main__.py); standalone it is quicker (no 10M-row data) and prints the same.
"""

import argparse
import asyncio
import csv
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

import asyncpg
import orjson
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app import loaders, migrations
from app.avisos import sql as avisos_sql
from app.catalogs import sync_catalogs
from app.db import async_url, asyncpg_dsn
from app.demo import CLASE_POR_TIPO_AVISO, demo_avisos, demo_patrones
from app.models.aviso import CAMPOS_CARGA_AVISO

HASTA = dt.date(2026, 11, 1)
WAIT_CAP = 60.0  # seconds a reader waits for the new avisos before the bar is simply "no"
NEW_AVISOS = 50
CARGA_AVISOS = 200_000


@dataclass
class LoaderFigures:
    rows: int
    copy_rate: float  # rows/s of the plain COPY
    loader_seconds: float  # the loader's fastest run, end to end
    best: loaders.LoadReport  # that run's report (its phases say where the time went)

    @property
    def loader_rate(self) -> float:
        return self.rows / self.loader_seconds

    def per_row(self, seconds: float) -> str:
        return f"{seconds * 1e6 / self.rows:.1f} µs"


@dataclass
class Figures:
    loader: LoaderFigures
    delivery_seconds: float  # inf: not delivered within WAIT_CAP
    other_rows: int
    other_running: bool  # the other load was still running when the avisos arrived


def _files(folder: Path, seed: int, rows: int) -> tuple[list, Path, Path]:
    """One new employer's registry and `rows` avisos, as NDJSON (for the loader) and CSV (for COPY)."""
    employer = demo_patrones(1, seed=seed)
    records = list(demo_avisos(employer, rows, seed=seed, hasta=HASTA))
    ndjson = folder / f"avisos-{seed}.ndjson"
    ndjson.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    plain = folder / f"avisos-{seed}.csv"
    with plain.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow((*CAMPOS_CARGA_AVISO, "clase"))
        writer.writerows((*(r[c] for c in CAMPOS_CARGA_AVISO), CLASE_POR_TIPO_AVISO[r["tipo_aviso"]]) for r in records)
    return employer, ndjson, plain


async def _register(url: str, employers: list, folder: Path) -> None:
    engine = create_async_engine(async_url(url), poolclass=NullPool)
    path = folder / "patrones.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("rfc", "razon_social", "nrp"))
        writer.writerows((p.rfc, p.razon_social, nrp) for p in employers for nrp in p.nrps)
    async with engine.begin() as conn:
        await sync_catalogs(conn)
        await loaders.load_patrones(conn, path)
    await engine.dispose()


async def _load(url: str, path: Path) -> tuple[float, loaders.LoadReport]:
    """Seconds the load took, connecting included, and its report."""
    engine = create_async_engine(async_url(url), poolclass=NullPool)
    try:
        started = time.perf_counter()
        async with engine.connect() as conn:
            report = await loaders.load_avisos(conn, path)
        return time.perf_counter() - started, report
    finally:
        await engine.dispose()


async def _plain_copy(url: str, path: Path, rows: int) -> float:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_copia")
        # aviso's columns, defaults and indexes; none of its checks, references or triggers.
        await conn.execute(
            "CREATE TABLE bench_copia (LIKE aviso INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES)"
        )
        for column in await conn.fetch(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'bench_copia'::regclass AND attnum > 0 "
            "AND attnotnull AND attname NOT IN ('id', 'folio')"
        ):
            await conn.execute(f"ALTER TABLE bench_copia ALTER COLUMN {column['attname']} DROP NOT NULL")
        started = time.perf_counter()
        await conn.copy_to_table(
            "bench_copia", source=path, columns=[*CAMPOS_CARGA_AVISO, "clase"], format="csv", header=True
        )
        return rows / (time.perf_counter() - started)
    finally:
        await conn.execute("DROP TABLE IF EXISTS bench_copia")
        await conn.close()


async def measure_loader(url: str, folder: Path, rows: int = CARGA_AVISOS, repeat: int = 3) -> LoaderFigures:
    """The loader and the plain COPY on `url`, each the best of `repeat`, taken in turns so that both see the
    same machine; the loader's every run starts from an empty `aviso` and the same registry."""
    employer, ndjson, plain = _files(folder, 101, rows)
    await _register(url, employer, folder)
    copy_rate, best = 0.0, (float("inf"), loaders.LoadReport(""))
    for _ in range(repeat):
        copy_rate = max(copy_rate, await _plain_copy(url, plain, rows))
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute("TRUNCATE aviso")
            await conn.execute("VACUUM ANALYZE aviso")
        finally:
            await conn.close()
        seconds, report = await _load(url, ndjson)
        assert report.nuevos == rows, report
        best = min(best, (seconds, report), key=itemgetter(0))
    return LoaderFigures(rows, copy_rate, *best)


async def _fresh_database(server_url: str, name: str) -> str:
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    admin = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    await asyncio.to_thread(migrations.upgrade, url)
    return url


async def _delivery(url: str, other_file: Path, new_file: Path, rfc: str, folios: set[str]) -> tuple[float, bool]:
    """Seconds from the commit of `new_file`'s avisos to a reader holding all of them, while `other_file`
    loads in another process and an idle session holds a transaction id."""
    idle = await asyncpg.connect(asyncpg_dsn(url))
    reader = await asyncpg.connect(asyncpg_dsn(url))
    sia = str(Path(sys.executable).with_name("sia"))
    env = {**os.environ, "DATABASE_URL": url}
    other = subprocess.Popen([sia, "load", "avisos", str(other_file)], env=env, stderr=subprocess.DEVNULL)
    try:
        await idle.execute("BEGIN")
        await idle.execute("SELECT pg_current_xact_id()")
        # Wait until the other load is writing its avisos, then publish ours.
        idle_pid = await idle.fetchval("SELECT pg_backend_pid()")
        while not await reader.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_xid IS NOT NULL AND pid NOT IN (pg_backend_pid(), $1)",
            idle_pid,
        ):
            if other.poll() is not None:
                raise SystemExit("the other load ended before it wrote anything: use more --other-rows")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        await _load(url, new_file)
        committed = time.perf_counter()
        query = avisos_sql.page_query(avisos_sql.Filtros(rfc), None, len(folios) + 1)
        while time.perf_counter() - committed < WAIT_CAP:
            seen = {r[0] for r in await reader.fetch(f"SELECT json::json->>'folio' FROM ({query}) AS p")}
            if folios <= seen:
                return time.perf_counter() - committed, other.poll() is None
            await asyncio.sleep(0.01)
        return float("inf"), other.poll() is None
    finally:
        await idle.close()
        await reader.close()
        other.wait()


async def measure(server_url: str, rows: int, other_rows: int) -> Figures:
    url = await _fresh_database(server_url, "sia_bench_publicacion")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        loader = await measure_loader(url, folder, rows)
        other, other_file, _ = _files(folder, 102, other_rows)
        new, new_file, _ = _files(folder, 103, NEW_AVISOS)
        await _register(url, other + new, folder)
        folios = {orjson.loads(line)["folio"] for line in new_file.read_bytes().splitlines()}
        delivery, running = await _delivery(url, other_file, new_file, new[0].rfc, folios)
    return Figures(loader, delivery, other_rows, running)


def loader_row(f: LoaderFigures) -> tuple[str, str, float, str, bool]:
    """The loader bar as (bar, measured, ratio, goal, met), for bench/__main__.py's table, with where the
    loader's time went per row: Python's reading and validating, and the database's part, which overlap."""
    ratio = f.loader_rate / f.copy_rate
    return (
        "Cargador vs COPY simple (mismos índices)",
        f"{f.loader_rate:,.0f} vs {f.copy_rate:,.0f} filas/s; por fila: {f.per_row(f.loader_seconds)} "
        f"(validación {f.per_row(f.best.segundos_validacion)} a la par de la base de datos "
        f"{f.per_row(f.best.segundos_base_de_datos)}), COPY {1e6 / f.copy_rate:.1f} µs",
        ratio,
        "≥ 0.40",
        ratio >= 0.4,
    )


async def measure_carga(server_url: str, rows: int) -> LoaderFigures:
    """`python -m bench --carga`: only the loader bar, on a fresh database of its own."""
    url = await _fresh_database(server_url, "sia_bench_carga")
    with tempfile.TemporaryDirectory() as name:
        return await measure_loader(url, Path(name), rows)


def rows_for_table(f: Figures) -> list[tuple[str, str, float, str, bool]]:
    """(bar, measured, ratio, goal, met) for bench/__main__.py's table."""
    delivered = "no llegó" if f.delivery_seconds == float("inf") else f"{f.delivery_seconds:.2f} s"
    return [
        loader_row(f.loader),
        (
            f"Avisos nuevos con otra carga de {f.other_rows:,} en curso y una transacción inactiva",
            f"{delivered}{'' if f.other_running else ' (la otra carga ya había terminado)'}",
            f.delivery_seconds,
            "≤ 1 s",
            f.delivery_seconds <= 1 and f.other_running,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=CARGA_AVISOS, help="avisos of the loader bar's file")
    parser.add_argument("--other-rows", type=int, default=300_000, help="avisos of the unrelated load")
    args = parser.parse_args()
    from app.embedded import database_url
    from app.settings import Settings

    with database_url(Settings(data_dir=Path(".bench").resolve() / "data")) as server_url:
        figures = asyncio.run(measure(server_url, args.rows, args.other_rows))
    for name, measured, ratio, goal, ok in rows_for_table(figures):
        print(f"{name}: {measured} · {ratio:.2f} · meta {goal} · {'sí' if ok else 'NO'}")


if __name__ == "__main__":
    main()
