"""Prints one table of ratios. Data is built with the demo generator and reused between runs (.bench/).

make bench                      # BENCH_AVISOS=200000 by default
BENCH_AVISOS=1000000 make bench
"""

import asyncio
import datetime as dt
import os
import time
from pathlib import Path

import asyncpg
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app import migrations
from app.catalogs import sync_catalogs
from app.db import async_url, asyncpg_dsn
from app.demo import write_demo_files
from app.embedded import database_url
from app.loaders import load_avisos, load_patrones
from app.models.aviso import CAMPOS_CARGA_AVISO
from app.settings import Settings

BENCH_DIR = Path(".bench")
console = Console()


async def _fresh_database(server_url: str, name: str) -> str:
    conn = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def _timed_load(url: str, patrones: Path, avisos: Path) -> float:
    engine = create_async_engine(async_url(url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await sync_catalogs(conn)
            await load_patrones(conn, patrones)
        started = time.perf_counter()
        async with engine.begin() as conn:
            report = await load_avisos(conn, avisos)
        elapsed = time.perf_counter() - started
        assert not report.errores and report.nuevos > 0
        return elapsed
    finally:
        await engine.dispose()


async def _timed_plain_copy(url: str, avisos_csv: Path) -> float:
    """The floor: COPY of the same rows as CSV into an unindexed table of text columns."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        columns = ", ".join(f"{c} text" for c in CAMPOS_CARGA_AVISO)
        await conn.execute(f"CREATE UNLOGGED TABLE copia_plana ({columns})")
        started = time.perf_counter()
        await conn.copy_to_table("copia_plana", source=avisos_csv, format="csv", header=True)
        return time.perf_counter() - started
    finally:
        await conn.close()


def _data(count: int) -> tuple[Path, Path, Path]:
    folder = BENCH_DIR / f"demo-{count}"
    patrones, avisos = folder / "patrones.csv", folder / "avisos.ndjson"
    avisos_csv = folder / "avisos.csv"
    if not avisos_csv.exists():
        console.print(f"Generando {count:,} avisos en {folder} (se reutilizan en las siguientes corridas)…")
        folder.mkdir(parents=True, exist_ok=True)
        write_demo_files(folder, avisos=count, patrones=20, seed=11, hasta=dt.date(2026, 11, 1))
        import csv

        import orjson

        with avisos.open("rb") as source, avisos_csv.open("w", newline="", encoding="utf-8") as target:
            writer = csv.DictWriter(target, fieldnames=CAMPOS_CARGA_AVISO)
            writer.writeheader()
            writer.writerows(orjson.loads(line) for line in source)
    return patrones, avisos, avisos_csv


def main() -> None:
    count = int(os.environ.get("BENCH_AVISOS", "200000"))
    started = time.monotonic()
    patrones, avisos, avisos_csv = _data(count)
    settings = Settings(data_dir=BENCH_DIR)
    with database_url(settings) as server_url:
        url = asyncio.run(_fresh_database(server_url, "sia_bench_carga"))
        migrations.upgrade(url)
        load_ndjson = asyncio.run(_timed_load(url, patrones, avisos))
        url = asyncio.run(_fresh_database(server_url, "sia_bench_carga"))
        migrations.upgrade(url)
        load_csv = asyncio.run(_timed_load(url, patrones, avisos_csv))
        plain = asyncio.run(_timed_plain_copy(url, avisos_csv))

    table = Table(title=f"SIA bench · {count:,} avisos · {os.cpu_count()} CPU")
    for column in ("medida", "filas/s", "razón", "referencia"):
        table.add_column(column, justify="right" if column != "medida" else "left")
    floor = count / plain
    for label, seconds in (("sia load avisos (NDJSON)", load_ndjson), ("sia load avisos (CSV)", load_csv)):
        rate = count / seconds
        table.add_row(label, f"{rate:,.0f}", f"{rate / floor:.2f}", "vs COPY plano del mismo CSV")
    table.add_row("COPY plano (piso físico)", f"{floor:,.0f}", "1.00", "tabla sin índices, texto")
    console.print(table)
    console.print(f"Corrida completa en {time.monotonic() - started:.0f} s.")


if __name__ == "__main__":
    main()
