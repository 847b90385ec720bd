"""`make bench`: DESIGN §7's bars as ratios measured in one run, on the same data.

Data is built once into .bench/ (an embedded PostgreSQL, or the server DATABASE_URL names): `sia demo`
makes 1,000,000 avisos of one employer through the real loader, then SQL clones them for nine more
employers, giving the 10,000,000-row table of the deep-page bar. A first run takes ~10 minutes on a
2-core machine; later runs reuse the data and take ~2 minutes.

`python -m bench --descarga [--avisos N]` measures only the bulk-download bars (NDJSON vs COPY text, COPY
row_to_json and the textbook implementation) on a data set of its own: one employer's N avisos (150,000 by
default) through the real loader, built once into the same .bench/ server (~1 minute) and reused.

`python -m bench --carga [--avisos N]` measures only the loader bar (bench/publicacion.py): the loader of a
demo file of N avisos (200,000 by default) into a fresh database ÷ a plain COPY of the same rows.
"""

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx2
import psutil
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app import loaders, migrations, publicacion
from app.catalogs import sync_catalogs
from app.db import async_url, asyncpg_dsn
from app.demo import demo_patrones, write_demo_files
from app.embedded import database_url
from app.models.aviso import CAMPOS_AVISO, CAMPOS_CARGA_AVISO
from app.security import tokens
from app.security.keys import load_keys
from app.settings import Settings
from bench import espera as espera_bench
from bench import publicacion as publicacion_bench

BENCH_DIR = Path(".bench").resolve()
DATA_VERSION = "10M-v2"  # v2: publication seq (migration 20261202_seq)
DESCARGA_AVISOS = 150_000
BASE_AVISOS = 1_000_000
CLONES = 9
DOWNLOAD = 100_000
PAGE = 10_000
console = Console()
PY = sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _scalar(url: str, query: str, *args):
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


# ------------------------------------------------------------------ data


async def _build_data(url: str, version: str, base_avisos: int = BASE_AVISOS, clones: int = CLONES) -> None:
    started = time.monotonic()
    engine = create_async_engine(async_url(url), poolclass=NullPool)
    with tempfile.TemporaryDirectory(dir=BENCH_DIR) as folder:
        patrones_csv, avisos_ndjson = write_demo_files(
            Path(folder), avisos=base_avisos, patrones=1, seed=11, hasta=dt.date(2026, 11, 1)
        )
        async with engine.begin() as conn:
            await sync_catalogs(conn)
            await loaders.load_patrones(conn, patrones_csv)
        load_started = time.monotonic()
        async with engine.connect() as conn:  # no transaction begun: the loader publishes in chunks
            report = await loaders.load_avisos(conn, avisos_ndjson)
        console.print(
            f"  sia demo: {report.nuevos:,} avisos cargados en {time.monotonic() - load_started:.0f} s "
            f"({report.nuevos / (time.monotonic() - load_started):,.0f} filas/s)"
        )
    await engine.dispose()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        superuser = await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        base = await conn.fetchval("SELECT rfc FROM patron LIMIT 1")
        letters = "JKMNPQSTU"
        clones_rfc = [p.rfc for p in demo_patrones(clones + 1, seed=99)[1:]]
        cols = [c for c in CAMPOS_CARGA_AVISO if c not in ("folio", "rfc_patron", "nrp")] + ["clase"]
        # The base employer's avisos under a new RFC, NRPs and folios, published as every aviso is.
        lock, insert = publicacion.publish_statements(
            "aviso",
            ("folio", "rfc_patron", "nrp", *cols),
            f"""SELECT substr(folio, 1, 4) || $1 || substr(folio, 7) AS folio, $2::text AS rfc_patron,
                       $3 || substr(nrp, 2) AS nrp, {", ".join(cols)}, seq AS orden
                FROM aviso WHERE rfc_patron = $4 AND seq > $5 AND seq <= $5 + {publicacion.CHUNK_ROWS}""",
        )
        last = await conn.fetchval("SELECT max(seq) FROM aviso WHERE rfc_patron = $1", base)
        for k, rfc in enumerate(clones_rfc):
            clone_started = time.monotonic()
            async with conn.transaction():
                await conn.execute("INSERT INTO patron (rfc, razon_social) VALUES ($1, $2)", rfc, f"Clon {k + 1}")
                await conn.execute(
                    "INSERT INTO nrp (nrp, rfc_patron) SELECT $1 || substr(nrp, 2), $2 FROM nrp WHERE rfc_patron = $3",
                    letters[k],
                    rfc,
                    base,
                )
            for desde in range(0, last, publicacion.CHUNK_ROWS):
                async with conn.transaction():
                    if superuser:  # bench data only: skip the reference checks of a 1M-row clone
                        await conn.execute("SET LOCAL session_replication_role = replica")
                    args = (f"{60 + k:02d}", rfc, letters[k], base, desde)
                    await conn.execute(lock, *args)
                    await conn.execute(insert, *args)
            console.print(
                f"  clon {k + 1}/{clones}: {base_avisos:,} avisos en {time.monotonic() - clone_started:.0f} s"
            )
        # Vacuumed now, not by autovacuum during the measurements: 10,000,000 freshly inserted rows keep a worker
        # busy for minutes, restarted on every run (the embedded server stops between runs), on a 2-core machine.
        await conn.execute("VACUUM (ANALYZE)")
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_info (clave text PRIMARY KEY, valor text)")
        await conn.execute("INSERT INTO bench_info VALUES ('datos', $1)", version)
    finally:
        await conn.close()
    console.print(f"  datos listos en {time.monotonic() - started:.0f} s")


async def _data_version(server_url: str, url: str, database: str) -> str | None:
    if not await _scalar(server_url, "SELECT 1 FROM pg_database WHERE datname = $1", database):
        return None
    if not await _scalar(url, "SELECT to_regclass('bench_info') IS NOT NULL"):
        return None
    return await _scalar(url, "SELECT valor FROM bench_info WHERE clave = 'datos'")


def _ensure_data(server_url: str, database: str = "sia_bench", version: str = DATA_VERSION, **size: int) -> str:
    url = make_url(server_url).set(database=database).render_as_string(hide_password=False)
    if asyncio.run(_data_version(server_url, url, database)) == version:
        migrations.upgrade(url)
        return url
    console.print("Construyendo los datos del bench (solo la primera vez)…")
    asyncio.run(_scalar(server_url, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
    asyncio.run(_scalar(server_url, f"CREATE DATABASE {database}"))
    migrations.upgrade(url)
    asyncio.run(_build_data(url, version, **size))
    return url


# ------------------------------------------------------------------ PostgreSQL alone


async def _copy_rate(url: str, query: str, repeat: int = 3) -> float:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        size = [0]

        async def sink(chunk: bytes) -> None:
            size[0] += len(chunk)

        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            await conn.copy_from_query(query, output=sink)
            best = min(best, time.perf_counter() - started)
        return DOWNLOAD / best
    finally:
        await conn.close()


# ------------------------------------------------------------------ the server


@contextmanager
def _process(args: list[str], env: dict[str, str], port: int, ready_path: str = "/livez"):
    # stderr to a file, not a pipe nobody reads while the server runs: a server that logs every request (the
    # access log) fills a pipe's 64 KiB and then blocks on its next line, and the load generator waits forever.
    log = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
    try:
        for _ in range(300):
            if process.poll() is not None:
                log.seek(0)
                raise SystemExit(f"{args[0]} exited: {log.read()[-2000:]}")
            try:
                if httpx2.get(f"http://127.0.0.1:{port}{ready_path}", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                time.sleep(0.1)
        yield process
    except BaseException:
        # Whatever failed on the client's side, the server's own account of it is in its stderr.
        log.seek(0)
        print(f"--- stderr de {' '.join(args[:2])} (final) ---\n{log.read()[-4000:]}", file=sys.stderr)
        raise
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _client(*args: str) -> dict:
    output = subprocess.run([PY, "-m", "bench.client", *args], capture_output=True, text=True, check=True)
    return json.loads(output.stdout)


def _best_download(*args: str) -> dict:
    """The fastest of three downloads: measured the way the COPY rates are (best of three), so that both
    sides of a ratio see the same warm-up and the same luck on this shared machine."""
    return min((_client("download", *args) for _ in range(3)), key=lambda run: run["seconds"])


def _token(settings: Settings, url: str, rfc: str) -> str:
    async def credential() -> uuid.UUID:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            cid = uuid.uuid4()
            now = dt.datetime.now(dt.UTC)
            await conn.execute("DELETE FROM certificacion WHERE rfc = $1", rfc)
            await conn.execute("UPDATE credencial SET estado = 'cancelada' WHERE rfc = $1 AND estado = 'activa'", rfc)
            await conn.execute(
                """INSERT INTO credencial (id, rfc, correo, hash_contrasena, totp_cifrado, estado,
                   certificado_numero, creada_en) VALUES ($1, $2, 'bench@sia', '-', '\\x2d', 'activa', '0', $3)""",
                cid,
                rfc,
                now,
            )
            await conn.execute(
                """INSERT INTO certificacion (id, rfc, estado, creada_en, aprobada_en, vigente_hasta)
                   VALUES ($1, $2, 'aprobada', $3, $3, $4)""",
                uuid.uuid4(),
                rfc,
                now,
                now + dt.timedelta(days=1),
            )
            return cid
        finally:
            await conn.close()

    keys = load_keys(settings)
    return tokens.issue_access_token(
        keys.tokens,
        sub=rfc,
        credencial_id=asyncio.run(credential()),
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        ttl=dt.timedelta(hours=2),
        now=dt.datetime.now(dt.UTC),
    )


def _rss_growth(pid: int, base: str, token: str, rfc: str, total: int) -> tuple[float, int]:
    process = psutil.Process(pid)
    before = process.memory_info().rss
    peak, done = [before], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = _client("download", base, token, rfc, str(total), str(total))
    finally:
        done.set()
        sampler.join()
    return (peak[0] - before) / 2**20, result["rows"]


def _latencies(urls: list[str], headers: dict, repeat: int = 200) -> list[float]:
    """The median latency of each URL, asked in turns (first, deep, first, deep, ...): both see the same moments
    of this shared machine, where a sub-millisecond difference drifts more than that between two runs."""
    samples: list[list[float]] = [[] for _ in urls]
    with httpx2.Client(headers=headers, timeout=60) as client:
        for _ in range(repeat):
            for url, taken in zip(urls, samples, strict=True):
                started = time.perf_counter()
                response = client.get(url)
                response.read()
                taken.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
    return [statistics.median(taken[10:]) for taken in samples]


def _rps(url: str, token: str, seconds: float = 10) -> tuple[float, str]:
    if shutil.which("wrk"):
        args = ["wrk", "-t2", "-c32", f"-d{int(seconds)}s", "--latency"]
        if token != "-":
            args += ["-H", f"Authorization: Bearer {token}"]
        output = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
        line = next(line for line in output.splitlines() if line.startswith("Requests/sec"))
        if "Non-2xx" in output:
            raise SystemExit(f"wrk saw errors on {url}:\n{output}")
        return float(line.split()[1]), "wrk -t2 -c32"
    result = _client("load", url, token, "32", str(seconds))
    return result["requests"] / result["seconds"], "Python, 32 conexiones"


def _bulk_rates(url: str, rfc: str, base: str, token: str, rounds: int = 5) -> tuple[dict, float, float]:
    """SIA's NDJSON download and PostgreSQL alone on the same rows (COPY text of the columns, COPY row_to_json),
    each the best of `rounds`, taken in turns: a short run on this shared machine swings by 2-3x with whatever
    else runs, and turns give every side the same luck."""
    columns = ", ".join(CAMPOS_AVISO)
    where = f"FROM aviso WHERE rfc_patron = '{rfc}' ORDER BY seq LIMIT {DOWNLOAD}"
    text_query, json_query = f"SELECT {columns} {where}", f"SELECT row_to_json(a) FROM (SELECT {columns} {where}) a"
    download, copy_text, copy_json = None, 0.0, 0.0
    for _ in range(rounds):
        copy_text = max(copy_text, asyncio.run(_copy_rate(url, text_query, repeat=1)))
        copy_json = max(copy_json, asyncio.run(_copy_rate(url, json_query, repeat=1)))
        run = _client("download", base, token, rfc, str(DOWNLOAD), str(PAGE))
        download = run if download is None or run["seconds"] < download["seconds"] else download
    assert download is not None
    return download, copy_text, copy_json


def _server_env(url: str, settings: Settings, port: int, **extra: str) -> dict[str, str]:
    """sia serve's environment for a measurement: this database, no rate limits, no access log."""
    return {
        **os.environ,
        "DATABASE_URL": url,
        "SIA_DATA_DIR": str(settings.data_dir),
        "SIA_PORT": str(port),
        "SIA_RATE_LIMIT_ENABLED": "false",
        "SIA_ACCESS_LOG": "false",
        **extra,
    }


def _page_rates(env: dict[str, str], settings: Settings, rfc: str, base: str, token: str, rounds: int = 2):
    """(SIA's pages, the floor's, /livez, the load tool) in req/s, while `sia serve` runs at base. The floor is
    the same 100-aviso page from bench/floor.py (Starlette + asyncpg, nothing else), with as many worker processes
    as `sia serve` runs (SIA_WORKERS in env, else the settings'). Both servers run at once and are measured in
    turns, best of `rounds` each: on this shared machine one 10 s run can be half another."""
    port = _free_port()
    args = [PY, "-m", "uvicorn", "bench.floor:app", "--port", str(port), "--no-access-log", "--log-level", "warning"]
    args += ["--workers", env.get("SIA_WORKERS") or str(settings.resolved_workers)]
    floor_url = f"http://127.0.0.1:{port}/v1/avisos?limite=100&rfc_patron={rfc}"
    livez_rps, tool = _rps(f"{base}/livez", "-")
    avisos_rps = floor_rps = 0.0
    with _process(
        args, {**env, "PYTHONPATH": str(Path.cwd())}, port, ready_path=f"/v1/avisos?limite=1&rfc_patron={rfc}"
    ):
        for _ in range(rounds):
            avisos_rps = max(avisos_rps, _rps(f"{base}/v1/avisos?limite=100", token, seconds=8)[0])
            floor_rps = max(floor_rps, _rps(floor_url, "-", seconds=8)[0])
    return avisos_rps, floor_rps, livez_rps, tool


def _page_rows(row, avisos_rps: float, floor_rps: float, livez_rps: float, tool: str) -> None:
    row(
        f"Páginas de 100 con token vs el piso Starlette + asyncpg ({tool})",
        f"{avisos_rps:,.0f} vs {floor_rps:,.0f} req/s",
        avisos_rps / floor_rps,
        "≥ 0.60",
        avisos_rps / floor_rps >= 0.6,
    )
    # Reported, no bar: the floor itself is a fraction of /livez (DESIGN §7).
    row(
        "  (las mismas vs /livez; el piso vs /livez)",
        f"{avisos_rps:,.0f} vs {livez_rps:,.0f} req/s; piso {floor_rps / livez_rps:.2f}",
        avisos_rps / livez_rps,
        "informativo",
        True,
    )


def pages_only() -> None:
    """`python -m bench --paginas`: only the small-page bars, on bench/profile_page.py's small database
    (seconds to build instead of the ten minutes of the 10M-aviso data)."""
    from bench import profile_page

    with profile_page._database() as (settings, url):
        with tempfile.TemporaryDirectory() as folder:
            rfc = asyncio.run(profile_page._prepare(url, Path(folder)))
        token = _token(settings, url, rfc)
        port = _free_port()
        # One process each, SIA and the floor: a quick look on a busy machine, where two workers of each plus
        # PostgreSQL and the load generator would only measure the scheduler.
        env = _server_env(url, settings, port, SIA_WORKERS=os.environ.get("SIA_WORKERS", "1"))
        base = f"http://127.0.0.1:{port}"
        with _process([str(Path(PY).with_name("sia")), "serve"], env, port):
            avisos_rps, floor_rps, livez_rps, tool = _page_rates(env, settings, rfc, base, token)
    table = Table(
        title=f"SIA bench, solo páginas pequeñas · {profile_page.ARGS.avisos:,} avisos · {os.cpu_count()} CPU"
    )
    for column in ("barra (DESIGN §7)", "medido", "razón", "meta", "¿cumple?"):
        table.add_column(column, justify="left" if column.startswith("barra") else "right")
    _page_rows(
        lambda name, measured, ratio, goal, ok: table.add_row(
            name, measured, f"{ratio:.2f}", goal, "sí" if ok else "NO"
        ),
        avisos_rps,
        floor_rps,
        livez_rps,
        tool,
    )
    console.print(table)


def _textbook_download(env: dict[str, str], token: str, rfc: str) -> dict:
    port = _free_port()
    args = [PY, "-m", "uvicorn", "bench.textbook:app", "--port", str(port), "--no-access-log", "--log-level", "warning"]
    with _process(args, {**env, "PYTHONPATH": str(Path.cwd())}, port, ready_path="/openapi.json"):
        return _best_download(f"http://127.0.0.1:{port}", token, rfc, str(DOWNLOAD), str(PAGE), "--textbook")


def _bulk_bars(download: dict, copy_text: float, copy_json: float, textbook: dict) -> list[tuple]:
    """The three bulk-download bars of issue 14: (name, measured, ratio, goal, met)."""
    sia_rate = download["rows"] / download["seconds"]
    bars = []
    for name, other, goal in (
        ("COPY texto", copy_text, 0.60),
        ("COPY row_to_json", copy_json, 2.0),
        ("implementación de libro", textbook["rows"] / textbook["seconds"], 15.0),
    ):
        measured = f"{sia_rate:,.0f} vs {other:,.0f} filas/s"
        bars.append(
            (f"NDJSON /v1/avisos vs {name}", measured, sia_rate / other, f"≥ {goal:.2f}", sia_rate / other >= goal)
        )
    return bars


def _table(title: str) -> tuple[Table, Callable[..., None]]:
    table = Table(title=title, show_lines=True)
    for column in ("barra (DESIGN §7)", "medido", "razón", "meta", "¿cumple?"):
        table.add_column(column, justify="left" if column.startswith("barra") else "right")

    def row(name: str, measured: str, ratio: float, goal: str, ok: bool) -> None:
        table.add_row(name, measured, f"{ratio:.2f}", goal, "sí" if ok else "NO")

    return table, row


def descarga(avisos: int) -> None:
    """Only the bulk-download bars, on one employer's `avisos` (a database of its own, kept for the next run)."""
    started = time.monotonic()
    BENCH_DIR.mkdir(exist_ok=True)
    settings = Settings(data_dir=BENCH_DIR / "data")
    with database_url(settings) as server_url:
        url = _ensure_data(server_url, "sia_bench_descarga", f"descarga-{avisos}-v1", base_avisos=avisos, clones=0)
        rfc = asyncio.run(_scalar(url, "SELECT rfc_patron FROM aviso ORDER BY id LIMIT 1"))
        token = _token(settings, url, rfc)
        port = _free_port()
        env = _server_env(url, settings, port, SIA_AVISOS_LIMITE_MAX="1000000")
        with _process([str(Path(PY).with_name("sia")), "serve"], env, port):
            download, copy_text, copy_json = _bulk_rates(url, rfc, f"http://127.0.0.1:{port}", token)
        textbook = _textbook_download(env, token, rfc)
    table, row = _table(f"SIA bench --descarga · {avisos:,} avisos de un patrón · {os.cpu_count()} CPU")
    for bar in _bulk_bars(download, copy_text, copy_json, textbook):
        row(*bar)
    console.print(table)
    console.print(
        f"Descarga: {download['rows']:,} avisos en páginas de {PAGE:,}, contados por un cliente en otro proceso. "
        f"Corrida en {time.monotonic() - started:.0f} s."
    )


def carga(avisos: int) -> None:
    """Only the loader bar, on a fresh database of its own (bench/publicacion.py measure_loader)."""
    started = time.monotonic()
    BENCH_DIR.mkdir(exist_ok=True)
    with database_url(Settings(data_dir=BENCH_DIR / "data")) as server_url:
        loader = asyncio.run(publicacion_bench.measure_carga(server_url, avisos))
    table, row = _table(f"SIA bench --carga · {avisos:,} avisos · {os.cpu_count()} CPU")
    row(*publicacion_bench.loader_row(loader))
    console.print(table)
    console.print(f"Mejor de 3 de cada uno, por turnos. Corrida en {time.monotonic() - started:.0f} s.")


def main() -> None:
    started = time.monotonic()
    BENCH_DIR.mkdir(exist_ok=True)
    settings = Settings(data_dir=BENCH_DIR / "data")
    with database_url(settings) as server_url:
        url = _ensure_data(server_url)
        rfc = asyncio.run(_scalar(url, "SELECT rfc_patron FROM aviso ORDER BY id LIMIT 1"))
        total_rows = asyncio.run(_scalar(url, "SELECT count(*) FROM aviso"))
        employer_rows = asyncio.run(_scalar(url, "SELECT count(*) FROM aviso WHERE rfc_patron = $1", rfc))
        token = _token(settings, url, rfc)
        port = _free_port()
        env = _server_env(url, settings, port, SIA_AVISOS_LIMITE_MAX="1000000")
        base = f"http://127.0.0.1:{port}"
        with _process([str(Path(PY).with_name("sia")), "serve"], env, port) as server:
            download, copy_text, copy_json = _bulk_rates(url, rfc, base, token)
            memory_mb, streamed = _rss_growth(server.pid, base, token, rfc, BASE_AVISOS)
            folios = asyncio.run(
                _scalar(
                    url,
                    "SELECT array_agg(folio) FROM (SELECT folio FROM aviso WHERE rfc_patron = $1 "
                    "ORDER BY seq DESC LIMIT 200) t",
                    rfc,
                )
            )
            auth = {"Authorization": f"Bearer {token}"}
            first, deep = _latencies(
                [f"{base}/v1/avisos?limite=100", f"{base}/v1/avisos?limite=100&despues_de={folios[-1]}"], auth
            )
            avisos_rps, floor_rps, livez_rps, tool = _page_rates(env, settings, rfc, base, token)
        textbook = _textbook_download(env, token, rfc)
        publication = asyncio.run(
            publicacion_bench.measure(server_url, rows=publicacion_bench.CARGA_AVISOS, other_rows=300_000)
        )
        waiting = espera_bench.measure(server_url, settings)

    table, row = _table(f"SIA bench · {total_rows:,} avisos en la tabla · {os.cpu_count()} CPU")
    for bar in _bulk_bars(download, copy_text, copy_json, textbook):
        row(*bar)
    row(
        f"RSS del servidor al transmitir {streamed:,} avisos",
        f"+{memory_mb:.1f} MB",
        memory_mb / 20,
        "crecimiento < 20 MB",
        memory_mb < 20,
    )
    row(
        f"Página profunda vs primera ({employer_rows:,} del patrón)",
        f"{deep * 1000:.2f} vs {first * 1000:.2f} ms",
        deep / first,
        "≤ 1.10",
        deep / first <= 1.1,
    )
    _page_rows(row, avisos_rps, floor_rps, livez_rps, tool)
    for bar in publicacion_bench.rows_for_table(publication):
        row(*bar)
    for bar in espera_bench.rows_for_table(waiting):
        row(*bar)
    console.print(table)
    console.print(
        f"Descarga: {download['rows']:,} avisos en páginas de {PAGE:,}, contados por un cliente en otro proceso. "
        f"Corrida completa en {time.monotonic() - started:.0f} s."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench", description="DESIGN §7's bars as ratios in one run.")
    parser.add_argument("--descarga", action="store_true", help="only the bulk-download bars, on a smaller data set")
    parser.add_argument("--carga", action="store_true", help="only the loader bar, on a fresh database")
    parser.add_argument("--avisos", type=int, help="the avisos of --descarga's data set or --carga's file")
    parser.add_argument("--paginas", action="store_true", help="only the small-page bars, on a small database")
    parser.add_argument("--espera", action="store_true", help="only the long-poll bars, on their own small data")
    options = parser.parse_args()
    if options.descarga:
        descarga(options.avisos or DESCARGA_AVISOS)
    elif options.carga:
        carga(options.avisos or publicacion_bench.CARGA_AVISOS)
    elif options.espera:
        espera_bench.main()
    elif options.paginas:
        pages_only()
    else:
        main()
