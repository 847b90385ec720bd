"""`sia`: the command line of the service and of its operators."""

import asyncio
import datetime as dt
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypedDict, TypeVar

import typer
from rich.console import Console
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from app import loaders, migrations
from app.catalogs import sync_catalogs
from app.db import async_url
from app.embedded import database_url
from app.logging import configure_logging
from app.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

cli = typer.Typer(help="SIA — Servicio de Intercomunicación de Avisos.", no_args_is_help=True)
db_cli = typer.Typer(help="Base de datos.", no_args_is_help=True)
load_cli = typer.Typer(help="Cargas del operador (COPY, validadas, idempotentes).", no_args_is_help=True)
keys_cli = typer.Typer(help="Llaves de firma de tokens y sellos.", no_args_is_help=True)
efirma_cli = typer.Typer(help="e.firma: firmar retos y archivos de demostración.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(load_cli, name="load")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(efirma_cli, name="efirma")

WORKER_HEALTHCHECK_SECONDS = 30
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as e:
        err.print(f"[red]Configuración inválida:[/red] {e}")
        raise typer.Exit(2) from None


def _in_transaction(
    url: str, work: Callable[[AsyncConnection], Awaitable[T]], *, begin: bool = True, name: str = "sia"
) -> T:
    """Runs work on one connection, in one transaction; with begin=False, work commits its own. name: the
    connection's application_name, which tells an operator in pg_stat_activity what the session is doing."""

    async def run() -> T:
        engine = create_async_engine(
            async_url(url),
            poolclass=NullPool,
            hide_parameters=True,  # rows hold NSS, CURP
            connect_args={"server_settings": {"application_name": name}},
        )
        try:
            async with engine.connect() as conn:
                if not begin:
                    return await work(conn)
                async with conn.begin():
                    return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def upgrade_database(url: str, settings: Settings) -> None:
    migrations.upgrade(url)
    counts = _in_transaction(url, lambda conn: sync_catalogs(conn, settings.catalogs_dir))
    out.print(f"Migraciones al día ({migrations.head_revision()}); catálogos: {counts}")


# ------------------------------------------------------------------ serve


@cli.command()
def serve(
    upgrade: Annotated[bool, typer.Option(help="Aplicar migraciones y catálogos antes de servir.")] = False,
    demo: Annotated[bool, typer.Option(help="Cargar los datos de demostración si la base está vacía.")] = False,
) -> None:
    """Sirve la API (con PostgreSQL embebido si DATABASE_URL no está definido)."""
    settings = _settings()
    configure_logging(json_logs=settings.json_logs, access_log=settings.access_log)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal. Turning SIGTERM into
    # SystemExit (as Python already does with SIGINT -> KeyboardInterrupt) unwinds through the `with` below,
    # so the embedded PostgreSQL is stopped cleanly in both cases.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        _serve(settings, upgrade=upgrade, demo=demo)
    except KeyboardInterrupt:
        out.print("Detenido.")


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _serve(settings: Settings, *, upgrade: bool, demo: bool) -> None:
    import uvicorn

    from app.http_protocol import BoundedHttpToolsProtocol
    from app.security.keys import load_keys

    with database_url(settings) as url:
        if upgrade:
            upgrade_database(url, settings)
        if demo:
            _load_demo_if_empty(url, settings)
            _ensure_demo_efirma(settings)
        served = settings.model_copy(update={"database_url": url})
        # Signing keys are made on a first start in development: once, here, not by N workers racing to write
        # N different keys (a token signed by one worker must verify in every other).
        load_keys(served)
        workers = settings.resolved_workers
        # Each worker is a fresh interpreter (spawned) that reads its settings from this environment: it must
        # find the database this process resolved (never start an embedded server of its own).
        os.environ["DATABASE_URL"] = url
        os.environ["SIA_WORKERS"] = str(workers)
        base = f"http://{settings.host}:{settings.port}"
        out.print(f"SIA escuchando en {base}  ·  documentación: {base}/docs  ·  Ctrl-C para detener")
        # For people (HR, a legal representative): everything in a browser, no command line.
        out.print(f"Portal SIA para patrones y desarrolladores: {base}/portal  ·  guía: docs/guia-portal.md")
        out.print(f"{_n(workers, 'proceso', 'procesos')} (SIA_WORKERS)")
        if workers > 1 and not settings.rate_limit_storage:
            out.print(
                f"Aviso: sin SIA_RATE_LIMIT_STORAGE cada uno de los {workers} procesos cuenta sus propios límites "
                "de tasa (README, «Several processes and replicas»)."
            )
        if demo:
            from app.efirma_demo import DEMO_KEY_PASSWORD

            out.print(
                "Pruebe el flujo con curl: docs/guia-desarrolladores.md  ·  e.firmas de demostración en "
                f"{settings.resolved_data_dir / 'efirma-demo'} (contraseña {DEMO_KEY_PASSWORD.decode()})"
            )
        # uvicorn turns SIGINT/SIGTERM into a graceful shutdown and returns; then the embedded server stops.
        uvicorn.run(
            "app.cli:worker_app",
            factory=True,
            workers=workers,
            # uvicorn replaces a worker that does not answer its parent's ping in time (5 s by default); a worker
            # still importing on a busy machine takes longer, and was killed and respawned in a loop.
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            host=settings.host,
            port=settings.port,
            log_config=None,
            proxy_headers=False,
            access_log=settings.access_log,
            # No `Server: uvicorn` banner: it tells an attacker which CVEs to try.
            server_header=False,
            http=BoundedHttpToolsProtocol,
            timeout_keep_alive=settings.keep_alive_seconds,
        )


def worker_app() -> "FastAPI":
    """The app of one `sia serve` process (uvicorn's factory, called in each worker): the settings `_serve` left
    in the environment."""
    from app.main import create_app

    settings = _settings()
    configure_logging(json_logs=settings.json_logs, access_log=settings.access_log)
    # The Argon2 cap is one for the machine: N workers share it, or N workers would allow N times the memory.
    gate = max(1, settings.password_verifications_max // settings.resolved_workers)
    return create_app(
        settings.model_copy(update={"password_verifications_max": gate}),
        purge_every=dt.timedelta(minutes=settings.purge_interval_minutes),
    )


# ------------------------------------------------------------------ db


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Aplica las migraciones pendientes y sincroniza los catálogos desde CSV."""
    settings = _settings()
    with database_url(settings) as url:
        upgrade_database(url, settings)


# ------------------------------------------------------------------ load


def _n(count: int, singular: str, plural: str) -> str:
    """A count with its noun: exactly one takes the singular in Spanish ("1 fila", "0 filas", "2 filas")."""
    return f"{count:,} {singular if count == 1 else plural}"


def _progress_printer(label: str, total_bytes: int) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A Rich progress bar with rows/s on a terminal; plain lines otherwise (logs, CI)."""
    started = time.monotonic()
    if err.is_terminal:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        bar = Progress(
            TextColumn(f"{label}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[filas]} · {task.fields[ritmo]:,.0f} filas/s"),
            TimeElapsedColumn(),
            console=err,
        )
        task = bar.add_task(label, total=total_bytes, filas=_n(0, "fila", "filas"), ritmo=0.0)
        bar.start()

        def update(rows: int, read: int) -> None:
            rate = rows / max(time.monotonic() - started, 1e-6)
            bar.update(task, completed=read, filas=_n(rows, "fila", "filas"), ritmo=rate)

        return update, bar.stop

    def plain(rows: int, read: int) -> None:
        if rows % 100_000 == 0 or read >= total_bytes:
            rate = rows / max(time.monotonic() - started, 1e-6)
            done = f"{100 * read / max(total_bytes, 1):.0f} %"
            err.print(f"{label}: {_n(rows, 'fila leída', 'filas leídas')} ({done}, {rate:,.0f} filas/s)")

    return plain, lambda: None


def _load_file(
    url: str,
    kind: str,
    file: Path,
    *,
    skip_invalid: bool = False,
    rejects: Path | None = None,
    actor: str = "operador",
) -> None:
    """One load, reported for a person; exits non-zero when the file has bad rows and --skip-invalid was not
    given. Patrones load in one transaction; avisos are published in chunks, each committed on its own, up to
    the first bad row (app/loaders.py)."""
    load = loaders.load_avisos if kind == "avisos" else loaders.load_patrones
    progress, stop = _progress_printer(f"Cargando {kind}", file.stat().st_size)
    started = time.monotonic()
    try:
        report = _in_transaction(
            url,
            lambda conn: load(conn, file, skip_invalid=skip_invalid, progress=progress, actor=actor),
            begin=kind != "avisos",
            name=f"sia load {kind}",
        )
    except loaders.FileFormatError as e:
        stop()
        err.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None
    except loaders.LoadRejected as e:
        stop()
        for issue in e.report.errores:
            err.print(str(issue), markup=False, highlight=False)
        report = e.report
        invalid = _n(len(report.lineas_rechazadas), "fila inválida", "filas inválidas")
        if report.nuevos:
            err.print(
                f"[red]La carga se detuvo en la línea {report.detenida_en}[/red], la primera inválida: "
                f"{_n(report.nuevos, 'aviso nuevo publicado', 'avisos nuevos publicados')} de las líneas "
                f"anteriores, nada desde ella; {invalid} de {report.leidos:,}. Corríjalas y cargue de nuevo el "
                "archivo (lo ya publicado se omite), o use --skip-invalid para cargar las válidas."
            )
        else:
            err.print(
                f"[red]No se cargó nada:[/red] {invalid} de "
                f"{report.leidos:,}. Corríjalas, o use --skip-invalid para cargar las válidas."
            )
        raise typer.Exit(1) from None
    stop()
    elapsed = time.monotonic() - started
    for issue in report.errores:
        err.print(str(issue), markup=False, highlight=False)
    for issue in report.advertencias[:100]:
        err.print(f"advertencia: {issue}", markup=False, highlight=False)
    if len(report.advertencias) > 100:
        err.print(f"… y {len(report.advertencias) - 100:,} advertencias más")
    if report.errores:
        rejects = rejects or file.with_name(f"{file.stem}.rechazos{file.suffix}")
        written = loaders.write_rejects(file, report.lineas_rechazadas, rejects)
        err.print(f"{_n(written, 'fila rechazada escrita', 'filas rechazadas escritas')} en {rejects}")
    extra = (
        f", {_n(report.patrones_nuevos, 'patrón nuevo', 'patrones nuevos')}, "
        f"{_n(report.actualizados, 'razón social actualizada', 'razones sociales actualizadas')}"
        if kind == "patrones"
        else ""
    )
    phases = (
        f" (validación {report.segundos_validacion:.1f} s a la par de la base de datos "
        f"{report.segundos_base_de_datos:.1f} s)"
        if kind == "avisos"
        else ""
    )
    nuevos = ("NRP nuevo", "NRP nuevos") if kind == "patrones" else ("aviso nuevo", "avisos nuevos")
    out.print(
        f"{kind}: {_n(report.leidos, 'fila leída', 'filas leídas')} en {elapsed:.1f} s "
        f"({report.leidos / max(elapsed, 1e-6):,.0f} filas/s): "
        f"{_n(report.nuevos, *nuevos)}, {_n(report.existentes, 'ya existía', 'ya existían')}{extra}, "
        f"{_n(len(report.lineas_rechazadas), 'rechazada', 'rechazadas')}{phases}"
    )


def _run_load(kind: str, file: Path, skip_invalid: bool, rejects: Path | None) -> None:
    settings = _settings()
    if not file.is_file():
        err.print(f"[red]No existe el archivo {file}[/red]")
        raise typer.Exit(2)
    with database_url(settings) as url:
        _load_file(url, kind, file, skip_invalid=skip_invalid, rejects=rejects)


SkipInvalid = Annotated[
    bool, typer.Option("--skip-invalid", help="Cargar las filas válidas y escribir las inválidas aparte.")
]
Rejects = Annotated[Path | None, typer.Option(help="Archivo de filas rechazadas (por omisión, junto al original).")]


@load_cli.command("patrones")
def load_patrones(file: Path, skip_invalid: SkipInvalid = False, rejects: Rejects = None) -> None:
    """Padrón de patrones: CSV con encabezado rfc,razon_social,nrp (una fila por NRP)."""
    _run_load("patrones", file, skip_invalid, rejects)


@load_cli.command("avisos")
def load_avisos(file: Path, skip_invalid: SkipInvalid = False, rejects: Rejects = None) -> None:
    """Avisos: CSV (encabezado = campos del aviso salvo clase y publicado_en) o NDJSON con las mismas claves."""
    _run_load("avisos", file, skip_invalid, rejects)


# ------------------------------------------------------------------ purge


@cli.command()
def purgar() -> None:
    """Borra retos vencidos, bloqueos ya cumplidos y los avisos de sandbox de intentos terminados
    (`sia serve` lo hace cada SIA_PURGE_INTERVAL_MINUTES)."""
    from app.purge import purge

    settings = _settings()
    with database_url(settings) as url:
        purged = _in_transaction(url, lambda conn: purge(conn, settings, dt.datetime.now(dt.UTC)))
    out.print(
        f"Purgados: {purged.retos} retos, {purged.bloqueos} bloqueos, {purged.sandbox_avisos} avisos de sandbox, "
        f"{purged.sandbox_solicitudes} solicitudes de sandbox"
    )


# ------------------------------------------------------------------ demo


def _load_demo_if_empty(url: str, settings: Settings) -> None:
    async def empty(conn: AsyncConnection) -> bool:
        return not await conn.scalar(text("SELECT EXISTS (SELECT 1 FROM patron)"))

    if _in_transaction(url, empty):
        out.print("Base vacía: cargando los datos de demostración…")
        _demo(url, avisos=3000, patrones=4, seed=2026)


def _demo(url: str, *, avisos: int, patrones: int, seed: int) -> None:
    from app.demo import write_demo_files

    with tempfile.TemporaryDirectory(prefix="sia-demo-") as folder:
        started = time.monotonic()
        patrones_csv, avisos_ndjson = write_demo_files(
            Path(folder), avisos=avisos, patrones=patrones, seed=seed, hasta=dt.date.today()
        )
        out.print(f"Datos generados en {time.monotonic() - started:.1f} s")
        _load_file(url, "patrones", patrones_csv, actor="demo")
        _load_file(url, "avisos", avisos_ndjson, actor="demo")


@cli.command()
def demo(
    avisos: Annotated[int, typer.Option(min=1, help="Cuántos avisos generar.")] = 3000,
    patrones: Annotated[int, typer.Option(min=1, help="Cuántos patrones generar.")] = 4,
    seed: Annotated[int, typer.Option(help="Semilla: el mismo valor da los mismos datos.")] = 2026,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Escribir patrones.csv y avisos.ndjson aquí en lugar de cargarlos."),
    ] = None,
) -> None:
    """Datos sintéticos deterministas con identificadores válidos (también para benchmarks)."""
    if out_dir is not None:
        from app.demo import write_demo_files

        out_dir.mkdir(parents=True, exist_ok=True)
        paths = write_demo_files(out_dir, avisos=avisos, patrones=patrones, seed=seed, hasta=dt.date.today())
        out.print("Escritos: " + ", ".join(str(p) for p in paths))
        return
    settings = _settings()
    with database_url(settings) as url:
        _demo(url, avisos=avisos, patrones=patrones, seed=seed)


# ------------------------------------------------------------------ keys and e.firma


@keys_cli.command("rotate")
def keys_rotate(
    sellos: Annotated[
        bool, typer.Option("--sellos", help="Rotar la llave de sellos de acuses, no la de tokens.")
    ] = False,
) -> None:
    """Agrega una llave nueva: se publica de inmediato (en la base de datos, para todas las réplicas) y firma
    pasados dos intervalos de SIA_KEYS_REFRESH_SECONDS; la anterior sigue publicada en el JWKS mientras haya
    tokens suyos vigentes (las de sellos, siempre)."""
    from app.keys_store import publish, rotation_delay
    from app.security.keys import KeyRing, rotate

    settings = _settings()
    anillo = "sellos" if sellos else "tokens"
    folder = settings.keys_dir / anillo
    delay = rotation_delay(settings.keys_refresh_seconds) if KeyRing(folder, retain=None).local() else None
    key = rotate(folder, activate_after=delay)
    out.print(f"Llave nueva {key.kid} en {folder}; firma desde {key.created:%Y-%m-%d %H:%M:%S} UTC")
    if not settings.database_url:
        # The embedded server is not started just for this: the service publishes it on its next refresh.
        out.print("La publicará el servicio al refrescar sus llaves (SIA_KEYS_REFRESH_SECONDS).")
        return
    try:
        _in_transaction(settings.database_url, lambda conn: publish(conn, anillo, KeyRing(folder, retain=None)))
        out.print("Publicada en la base de datos: las demás réplicas la conocerán antes de que firme.")
    except Exception as e:  # the replicas' own refresh publishes it too, within SIA_KEYS_REFRESH_SECONDS
        err.print(
            f"[yellow]No se pudo publicar en la base de datos ({type(e).__name__}):[/yellow] cada réplica "
            "la publicará al refrescar sus llaves."
        )


@efirma_cli.command("firmar")
def efirma_firmar(
    cer: Annotated[
        Path, typer.Option(help="El .cer de la e.firma (para comprobar que llave y certificado son pareja).")
    ],
    key: Annotated[Path, typer.Option(help="El .key de la e.firma.")],
    reto: Annotated[str, typer.Option(help="El reto tal como lo devolvió POST /v1/efirma/retos (base64).")],
    password_file: Annotated[Path | None, typer.Option(help="Archivo con la contraseña de la llave.")] = None,
) -> None:
    """Imprime la firma (base64) del reto con la llave de la e.firma: RSA PKCS#1 v1.5, SHA-256."""
    import base64
    import binascii

    from app.security import efirma

    password = (
        password_file.read_text(encoding="utf-8").strip()
        if password_file
        else typer.prompt("Contraseña de la llave privada", hide_input=True)
    )
    try:
        private_key = efirma.load_private_key(key.read_bytes(), password.encode())
        certificate = efirma.parse_certificate(cer.read_bytes())
        base64.b64decode(reto, validate=True)
    except efirma.EfirmaError as e:
        err.print(f"[red]{e.detail}[/red]")
        raise typer.Exit(1) from None
    except (binascii.Error, ValueError):
        err.print("[red]El reto no es base64 válido.[/red]")
        raise typer.Exit(1) from None
    # Keys compare by value; public_numbers() would raise on an Ed25519 or other non-RSA certificate.
    if certificate.public_key() != private_key.public_key():
        err.print("[red]La llave no corresponde a ese certificado.[/red]")
        raise typer.Exit(1)
    typer.echo(efirma.sign_reto(private_key, reto))


class _DemoPerson(TypedDict):
    rfc: str
    nombre: str
    curp: str | None


DEMO_DEVELOPER: _DemoPerson = {
    "rfc": "XIQB891116QE4",
    "curp": "XIQB891116MGRMZR05",
    "nombre": "BERENICE XIQUE QUINTERO",
}


def _ensure_demo_efirma(settings: Settings, *, force: bool = False) -> Path:
    """A demo CA (trusted in development through the default SIA_EFIRMA_TRUST_DIR) and e.firma files for
    the demo employers and a demo developer, in the data folder."""
    from app import efirma_demo
    from app.demo import demo_patrones

    folder = settings.resolved_data_dir / "efirma-demo"
    if (folder / "ca" / "ac-demo.cer").exists() and not force:
        return folder
    ca = efirma_demo.make_ca()
    efirma_demo.write_ca(folder / "ca", ca)
    people = [_DemoPerson(rfc=p.rfc, nombre=p.razon_social.upper(), curp=None) for p in demo_patrones(4)] + [
        DEMO_DEVELOPER
    ]
    for person in people:
        cert, key = efirma_demo.make_efirma(ca, rfc=person["rfc"], nombre=person["nombre"], curp=person["curp"])
        efirma_demo.write_efirma(folder, person["rfc"], cert, key)
    out.print(
        f"e.firmas de demostración en {folder} (contraseña de las llaves: "
        f"{efirma_demo.DEMO_KEY_PASSWORD.decode()}): " + ", ".join(p["rfc"] for p in people)
    )
    return folder


@efirma_cli.command("demo")
def efirma_demo_command(
    force: Annotated[bool, typer.Option("--force", help="Rehacer la AC y los archivos aunque existan.")] = False,
) -> None:
    """Crea una AC de demostración y archivos .cer/.key para los patrones de demostración y un desarrollador."""
    settings = _settings()
    folder = _ensure_demo_efirma(settings, force=force)
    if settings.efirma_trust_dir is None:
        out.print(f"En desarrollo el servicio confía en {settings.trust_dir} (SIA_EFIRMA_TRUST_DIR por omisión).")
    else:
        out.print(f"Para confiar en ella, copie {folder / 'ca' / 'ac-demo.cer'} a {settings.efirma_trust_dir}.")


@cli.command()
def otp(secreto: Annotated[str, typer.Argument(help="El secreto TOTP (base32) de POST /v1/contrasenas.")]) -> None:
    """Imprime el código TOTP vigente de un secreto (lo que haría una app autenticadora)."""
    from app.security import totp

    typer.echo(totp.current_code(secreto))


# ------------------------------------------------------------------ openapi


OPENAPI_PATH = Path(__file__).resolve().parents[1] / "openapi.yaml"

# The settings the document states, at their defaults whatever the environment says: the committed file must
# not depend on who runs `sia openapi`.
STATED_DEFAULTS = {
    name: Settings.model_fields[name].default for name in ("public_url", "host", "port", "avisos_limite_max")
}


def openapi_document() -> dict[str, Any]:
    """The contract as the app builds it (app.openapi completes FastAPI's document); no database is opened."""
    from app.main import create_app

    return create_app(Settings(database_url="postgresql://unused/unused", **STATED_DEFAULTS)).openapi()


def openapi_yaml() -> str:
    import yaml

    return yaml.safe_dump(openapi_document(), sort_keys=False, allow_unicode=True, width=100)


@cli.command()
def openapi(
    write: Annotated[bool, typer.Option("--write", help="Reescribir openapi.yaml.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Fallar si openapi.yaml no coincide con la app.")] = False,
) -> None:
    """El contrato: openapi.yaml generado desde la app."""
    document = openapi_yaml()
    if write:
        OPENAPI_PATH.write_text(document, encoding="utf-8")
        out.print(f"Escrito {OPENAPI_PATH}")
    elif check:
        current = OPENAPI_PATH.read_text(encoding="utf-8") if OPENAPI_PATH.exists() else ""
        if current != document:
            err.print(f"{OPENAPI_PATH.name} no coincide con la app: ejecute `sia openapi --write` y revise el diff")
            raise typer.Exit(1)
        out.print(f"{OPENAPI_PATH.name} al día")
    else:
        sys.stdout.write(document)


def main() -> None:
    cli()
