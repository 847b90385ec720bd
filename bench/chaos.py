"""`make chaos`: the fault suite of issue 15, one row per scenario with its figures and a yes/no.

    python -m bench.chaos [--short] [--soak-minutes M] [--lock-seconds S] [--abandon-percent P] [--only NAME ...]

It exits 1 when a row says no. `--abandon-percent 0` is the soak's control: the same mix with no download
abandoned, which tells a harness problem from the service's.

Every run starts its own embedded PostgreSQL in a temporary folder and, on it, `sia serve --upgrade --demo`
(what `make run` starts: demo data, demo e.firmas, every core), and talks to the service only as its users and
operators do: HTTP, the `sia` command line, the reference client (clients/python/sia_cliente.py), and
PostgreSQL's own views and statements for the faults themselves. It imports nothing of the avisos path, so it
measures whatever that path becomes.

The employer of the demo data obtains its password and TOTP through the e.firma flow and certifies with the
reference client, as a payroll system would. Two settings differ from `make run`, both so that the faults are
what is measured: avisos reads are allowed 6000/minute (the soak's ~10 requests/s would otherwise be the rate
limiter's 429s, which its own tests cover) and tokens live 60 minutes (a renewal needs a new TOTP step, up to
30 s of waiting that would blur the timings).
"""

import argparse
import asyncio
import base64
import datetime as dt
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx2
import orjson
import psutil
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from app import embedded
from app.db import asyncpg_dsn
from app.demo import demo_avisos, demo_patrones
from tests.identity_helpers import Efirma, password_from_message
from tests.live import SIA
from tests.live import rows as sql

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "clients" / "python"))
from sia_cliente import ClienteSIA  # noqa: E402 - the reference client is a script folder, not a package

console = Console(width=None if sys.stdout.isatty() else 160)  # a log or a pipe gets the table whole
SERVICE_ENV = {"SIA_RATE_LIMIT_AVISOS": "6000/minute", "SIA_TOKEN_TTL_MINUTES": "60", "SIA_ACCESS_LOG": "false"}
EMPLOYER = demo_patrones(4)[0].rfc  # the demo employer with the most avisos, whose e.firma `--demo` writes
# A statement of the loader (its session's application_name, LOADER) seen in pg_stat_activity: what it is doing
# now. Checking: between two publications, its last statement a COMMIT (it waits for the next chunk's
# validation, ~0.1 s), the setting up of its temporary table or a chunk's check of its NRPs against the padrón;
# publishing: the COPY into aviso. Patterns, not the loader's SQL text.
LOADER = "sia load avisos"
CHECKING = r"^\s*COMMIT\M|carga_pendiente|\mJOIN\s+nrp\M"
PUBLISHING = r"^\s*COPY\s+(public\.)?\"?aviso\"?\s*\(.*FROM\s+STDIN"


# ------------------------------------------------------------------ PostgreSQL and the service


class Postgres:
    """An embedded PostgreSQL this suite may restart (same folder, same port, same URL)."""

    def __init__(self, folder: Path) -> None:
        self.pgdata = folder / "pgdata"
        self.server = embedded.get_server(self.pgdata, cleanup_mode="delete")
        root = self.server.get_uri()
        sql(root, "CREATE DATABASE sia_chaos")
        self.url = make_url(root).set(database="sia_chaos").render_as_string(hide_password=False)

    def restart(self) -> None:
        embedded._package().pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user)
        self.server.ensure_postgres_running()

    def close(self) -> None:
        self.server.cleanup()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Replica:
    """`sia serve` in its own process with its own data folder; its log goes to a file (a pipe nobody drains
    would freeze a server that logs many errors, which is what faults make it do)."""

    def __init__(self, name: str, url: str, work: Path, *serve_args: str) -> None:
        self.name, self.data_dir, port = name, work / name, _free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.log = work / f"{name}.log"
        env = {**os.environ, "DATABASE_URL": url, "SIA_DATA_DIR": str(self.data_dir), "SIA_PORT": str(port)}
        env |= {"SIA_ENV": "development", **SERVICE_ENV}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([SIA, "serve", *serve_args], env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 300
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{name} no arrancó: {self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)

    def ready(self, timeout: float = 1) -> bool:
        try:
            return httpx2.get(f"{self.base}/readyz", timeout=timeout).status_code == 200
        except httpx2.TransportError:
            return False

    def alive(self) -> bool:
        return self.process.poll() is None

    def rss_mb(self) -> float:
        parent = psutil.Process(self.process.pid)
        return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)]) / 2**20

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def sia_load(url: str, work: Path, file: Path, kind: str = "avisos") -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "SIA_DATA_DIR": str(work / "operador")}
    return subprocess.Popen(
        [SIA, "load", kind, str(file)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def avisos_file(path: Path, count: int, seed: int) -> list[str]:
    """`count` new avisos of the demo employer (the seed is in the folio: no clash with other files)."""
    patron = demo_patrones(4)[0]
    folios = []
    with path.open("wb") as out:
        for aviso in demo_avisos([patron], count, seed=seed, hasta=dt.date.today()):
            folios.append(aviso["folio"])
            out.write(orjson.dumps(aviso, option=orjson.OPT_APPEND_NEWLINE))
    return folios


# ------------------------------------------------------------------ the caller


class Recorder(httpx2.HTTPTransport):
    """What the reference client met on the wire: answers by status, and transport errors by kind."""

    def __init__(self) -> None:
        super().__init__()
        self.reset()

    def reset(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.pages = 0

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            response = super().handle_request(request)
        except httpx2.TransportError as e:
            self.errors[type(e).__name__] += 1
            raise
        self.statuses[response.status_code] += 1
        self.pages += request.url.path == "/v1/avisos" and response.status_code == 200
        return response


@dataclass
class Caller:
    """The demo employer's credential, obtained and certified through the API."""

    rfc: str
    password: str
    secret: str
    step_file: Path
    recorder: Recorder = field(default_factory=Recorder)
    client: ClienteSIA | None = None

    def fresh_client(self, base: str, transport: httpx2.BaseTransport | None = None) -> ClienteSIA:
        # A new client reads the last TOTP step used from the file: it never replays another's code.
        return ClienteSIA(base, self.rfc, self.password, self.secret, paso_archivo=self.step_file, transport=transport)

    def token(self) -> str:
        assert self.client is not None
        return self.client.token()

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}", **extra}


def enrol(replica: Replica, work: Path) -> Caller:
    folder = replica.data_dir / "efirma-demo"
    who = Efirma.from_files(EMPLOYER, folder / f"{EMPLOYER}.cer", folder / f"{EMPLOYER}.key")
    with httpx2.Client(base_url=replica.base, timeout=60) as http:
        reto = http.post("/v1/efirma/retos", json={"rfc": EMPLOYER}).json()
        proof = {"reto_id": reto["reto_id"], "certificado": base64.b64encode(who.cer).decode()}
        answer = http.post("/v1/contrasenas", json={**proof, "firma": who.sign(reto["reto"]), "correo": "n@demo.mx"})
    if answer.status_code != 201:
        raise SystemExit(f"POST /v1/contrasenas: {answer.status_code} {answer.text}")
    mail = max((replica.data_dir / "outbox").glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    caller = Caller(EMPLOYER, password_from_message(mail.read_bytes()), answer.json()["otp"]["secreto"], work / "paso")
    caller.client = caller.fresh_client(replica.base, caller.recorder)
    verdict = caller.client.certificar()
    if verdict.get("certificacion", {}).get("estado") != "aprobada":
        raise SystemExit(f"la certificación no quedó aprobada: {verdict}")
    return caller


def kid_of(token: str) -> str:
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def first_folio(replica: Replica, caller: Caller) -> str:
    page = httpx2.get(f"{replica.base}/v1/avisos", params={"limite": 1}, headers=caller.headers(), timeout=30)
    return page.json()["avisos"][0]["folio"]


# ------------------------------------------------------------------ checks of one answer


@dataclass
class Answer:
    kind: str
    started: float
    seconds: float
    status: int | None  # None: no answer (a transport error before the head)
    retry_after: bool = False
    cut: bool = False  # a 200 whose body is not whole: bad JSON, a cut NDJSON line, a connection lost mid-body


def ask(http: httpx2.Client, kind: str, path: str, headers: dict[str, str], abandon: bool = False) -> Answer:
    """One request; NDJSON and JSON bodies are checked whole. `abandon`: read the first chunk and leave."""
    started = time.monotonic()
    status, retry_after, cut = None, False, False
    try:
        with http.stream("GET", path, headers=headers) as response:
            status, retry_after = response.status_code, "retry-after" in response.headers
            if abandon:
                next(response.iter_raw(), None)
            else:
                body = response.read()
                if status == 200:
                    cut = not whole(body, response.headers.get("content-type", ""))
    except httpx2.TransportError:
        cut = status is not None
    return Answer(kind, started, time.monotonic() - started, status, retry_after, cut)


def whole(body: bytes, media_type: str) -> bool:
    try:
        if "ndjson" in media_type:
            return body == b"" or (body.endswith(b"\n") and all(orjson.loads(x) for x in body.splitlines()))
        parsed = orjson.loads(body)
        return "hay_mas" in parsed if isinstance(parsed, dict) and "avisos" in parsed else bool(parsed)
    except orjson.JSONDecodeError:
        return False


# ------------------------------------------------------------------ scenarios


@dataclass
class Row:
    name: str
    figures: str
    ok: bool


@dataclass
class Run:
    pg: Postgres
    work: Path
    a: Replica
    caller: Caller
    args: argparse.Namespace


def restart_mid_download(run: Run) -> Row:
    """The reference client syncs the employer's avisos into a file; PostgreSQL restarts after a few pages."""
    run.caller.recorder.reset()  # counts of this scenario only
    assert run.caller.client is not None
    target = run.work / "copia.ndjson"
    target.unlink(missing_ok=True)
    result: dict[str, object] = {}

    def sync() -> None:
        try:
            result["n"] = run.caller.client.sincronizar(target, EMPLOYER, limite=500)  # type: ignore[union-attr]
        except Exception as e:
            result["error"] = f"{type(e).__name__}: {e}"

    worker = threading.Thread(target=sync)
    worker.start()
    while run.caller.recorder.pages < 3 and worker.is_alive():
        time.sleep(0.01)
    pid = run.a.process.pid
    started = time.monotonic()
    run.pg.restart()
    back = time.monotonic()
    green = None
    with httpx2.Client(base_url=run.a.base, timeout=5) as http:
        while green is None and time.monotonic() - back < 60:
            answer = ask(http, "json", f"/v1/avisos?rfc_patron={EMPLOYER}&limite=1", run.caller.headers())
            if answer.status == 200 and run.a.ready():
                green = time.monotonic() - started
            time.sleep(0.1)
    worker.join(300)
    expected = {r["folio"] for r in sql(run.pg.url, "SELECT folio FROM aviso WHERE rfc_patron = $1", EMPLOYER)}
    got = [json.loads(line)["folio"] for line in target.read_text().splitlines()] if target.exists() else []
    lost, duplicated = len(expected - set(got)), len(got) - len(set(got))
    statuses, errors = run.caller.recorder.statuses, run.caller.recorder.errors
    same = run.a.alive() and run.a.process.pid == pid
    ok = "error" not in result and lost == 0 and duplicated == 0 and statuses[500] == 0 and same and green is not None
    figures = (
        f"{len(got):,} de {len(expected):,} avisos; perdidos {lost}, duplicados {duplicated}; PostgreSQL caído "
        f"{back - started:.1f} s; verde a los {green:.1f} s"
        if green is not None
        else "nunca verde"
    )
    figures += f"; respuestas {dict(sorted(statuses.items()))}, errores de red {dict(errors)}"
    figures += "; el servicio siguió sin reiniciar" if same else "; el servicio murió"
    return Row(
        "PostgreSQL reiniciado a media descarga", figures + (f"; {result['error']}" if "error" in result else ""), ok
    )


def _watch(url: str, pattern: str, load: subprocess.Popen) -> bool:
    """Waits until a backend (not this one) runs a statement matching `pattern`; False if the load ends first."""

    async def run() -> bool:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            while load.poll() is None:
                if await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $3"
                    " AND datname = current_database() AND query ~* $1"
                    " AND (state = 'active' OR $1 = $2)",
                    pattern,
                    CHECKING,
                    LOADER,
                ):
                    return True
                await asyncio.sleep(0.02)
            return False
        finally:
            await conn.close()

    return asyncio.run(run())


def _orphans(url: str) -> int:
    return sql(
        url,
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()"
        " AND state <> 'idle'",
        LOADER,
    )[0]["n"]


def kill_load(url: str, work: Path, count: int, phase: str, pattern: str, seed: int) -> Row:
    """`sia load avisos` of `count` new avisos killed with -9 while it checks (or publishes), then run again to
    the end. Needs only the database (migrated, the demo employer registered), not the service."""
    file = work / f"carga-{seed}.ndjson"
    folios = avisos_file(file, count, seed)
    load = sia_load(url, work, file)
    seen = _watch(url, pattern, load)
    if phase == "publicando" and seen:
        time.sleep(0.05)  # well inside the COPY (a chunk's takes ~0.1 s), not at its first row
    if load.poll() is None:
        os.kill(load.pid, signal.SIGKILL)
    load.wait()
    killed = time.monotonic()
    visible = sql(url, "SELECT count(*) AS n FROM aviso WHERE folio = ANY($1)", folios)[0]["n"]
    while _orphans(url) and time.monotonic() - killed < 120:
        time.sleep(0.1)
    orphan_seconds = time.monotonic() - killed
    again = sia_load(url, work, file)
    _, stderr = again.communicate(timeout=900)
    rerun_seconds = time.monotonic() - killed - orphan_seconds
    [counts] = sql(url, "SELECT count(*) AS n, count(DISTINCT folio) AS d FROM aviso WHERE folio = ANY($1)", folios)
    ok = seen and again.returncode == 0 and counts["n"] == counts["d"] == len(folios)
    figures = (
        f"fase {'vista' if seen else 'NO vista'}; tras el kill {visible:,} filas visibles, backend huérfano "
        f"{orphan_seconds:.1f} s; re-ejecución rc={again.returncode} en {rerun_seconds:.1f} s: "
        f"{counts['n']:,} filas de {len(folios):,} en el archivo, {counts['n'] - counts['d']} duplicadas"
    )
    if again.returncode:
        figures += f"; {stderr.strip()[-300:]}"
    return Row(f"kill -9 de una carga {phase}, y re-ejecución", figures, ok)


def table_lock(run: Run) -> Row:
    """`LOCK TABLE aviso IN ACCESS EXCLUSIVE MODE` held for --lock-seconds while callers keep reading."""
    folio = first_folio(run.a, run.caller)
    released: list[float] = []

    async def hold() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(run.pg.url))
        try:
            async with conn.transaction():
                await conn.execute("LOCK TABLE aviso IN ACCESS EXCLUSIVE MODE")
                locked.set()
                await asyncio.sleep(run.args.lock_seconds)
            released.append(time.monotonic())
        finally:
            await conn.close()

    locked = threading.Event()
    holder = threading.Thread(target=lambda: asyncio.run(hold()))
    kinds = {
        "json": (f"/v1/avisos?rfc_patron={EMPLOYER}&limite=100", {}),
        "ndjson": (f"/v1/avisos?rfc_patron={EMPLOYER}&limite=1000", {"Accept": "application/x-ndjson"}),
        "uno": (f"/v1/avisos/{folio}", {}),
        "readyz": ("/readyz", {}),
    }
    answers: list[Answer] = []
    stop = threading.Event()

    def probe(kind: str) -> None:
        path, extra = kinds[kind]
        with httpx2.Client(base_url=run.a.base, timeout=120) as http:
            while not stop.is_set():
                answers.append(ask(http, kind, path, run.caller.headers(**extra) if kind != "readyz" else {}))
                time.sleep(0.4)

    holder.start()
    locked.wait(30)
    probes = [threading.Thread(target=probe, args=(k,)) for k in kinds]
    for p in probes:
        p.start()
    holder.join()
    time.sleep(10)
    stop.set()
    for p in probes:
        p.join()
    data = [a for a in answers if a.kind != "readyz"]
    during = [a for a in data if a.started < released[0]]
    statuses = Counter(a.status for a in data)
    unavailable = [a for a in data if a.status == 503]
    without_retry = sum(not a.retry_after for a in unavailable)
    cut = sum(a.cut for a in data)
    after = [
        a.started + a.seconds - released[0] for a in data if a.status == 200 and a.started + a.seconds > released[0]
    ]
    recovery = min(after) if after else None
    slowest = max((a.seconds for a in during), default=0)
    readyz = max((a.seconds for a in answers if a.kind == "readyz"), default=0)
    ok = statuses[500] == 0 and statuses[None] == 0 and cut == 0 and without_retry == 0 and recovery is not None
    figures = (
        f"{len(data)} lecturas: {dict(sorted(statuses.items(), key=str))} ({len(during)} durante el bloqueo: "
        f"{dict(Counter(a.status for a in during))}); 503 sin Retry-After {without_retry}; "
        f"cuerpos cortados {cut}; la más lenta durante el bloqueo {slowest:.1f} s; "
        f"/readyz la más lenta {readyz:.1f} s; "
        + (f"primera lectura completa {recovery:.1f} s tras liberar" if recovery is not None else "sin recuperación")
    )
    return Row(f"ACCESS EXCLUSIVE de {run.args.lock_seconds:.0f} s sobre aviso", figures, ok)


def replicas_rotation(run: Run) -> Row:
    """A second `sia serve` with its own data folder; `sia keys rotate` in the first one's folder."""
    b = Replica("b", run.pg.url, run.work, "--upgrade")
    try:

        def verifies(token: str) -> dict[str, int]:
            url = f"/v1/avisos?rfc_patron={EMPLOYER}&limite=1"
            return {
                r.name: httpx2.get(r.base + url, headers={"Authorization": f"Bearer {token}"}).status_code
                for r in (run.a, b)
            }

        old = run.caller.token()
        from_b = run.caller.fresh_client(b.base).token()
        env = {**os.environ, "DATABASE_URL": run.pg.url, "SIA_DATA_DIR": str(run.a.data_dir)}
        started = time.monotonic()  # the figures count from the rotation's start: the command takes seconds
        rotated = subprocess.run([SIA, "keys", "rotate"], env=env, capture_output=True, text=True)
        match = re.search(r"Llave nueva (\S+)", rotated.stdout)
        if rotated.returncode or not match:
            return Row("dos réplicas y rotación de llave", f"sia keys rotate falló: {rotated.stderr[-300:]}", False)
        new_kid = match.group(1)
        published: dict[str, float] = {}
        while len(published) < 2 and time.monotonic() - started < 60:
            for r in (run.a, b):
                kids = {k["kid"] for k in httpx2.get(f"{r.base}/.well-known/jwks.json").json()["keys"]}
                if new_kid in kids and r.name not in published:
                    published[r.name] = time.monotonic() - started
            time.sleep(0.2)
        # It signs from the time `sia keys rotate` announces (two key refreshes later, so that every replica
        # knows it first): the first token asked for after that time must carry it.
        announced = re.search(r"firma desde (\S+ \S+) UTC", rotated.stdout)
        signs_at = dt.datetime.fromisoformat(announced.group(1)).replace(tzinfo=dt.UTC) if announced else None
        wait = (signs_at - dt.datetime.now(dt.UTC)).total_seconds() if signs_at else 0
        delay = time.monotonic() - started + wait  # since the rotation, as the other figures
        time.sleep(max(0, wait) + 0.5)
        client = run.caller.fresh_client(run.a.base)
        token = client.token()
        signed = time.monotonic() - started if kid_of(token) == new_kid else None
        if signed is not None:
            run.caller.client = client  # its token is the one that lasts; the older client's step is stale
        before_signing = all(v < delay for v in published.values())
        after = verifies(token) if signed is not None else {}
        checks = {"de a antes": verifies(old), "de b": verifies(from_b), "nuevo de a": after}
        every = all(set(v.values()) == {200} for v in checks.values())
        ok = every and len(published) == 2 and before_signing and signed is not None
        figures = (
            f"llave {new_kid[:12]}… publicada en "
            + ", ".join(f"{k} a los {v:.1f} s" for k, v in published.items())
            + f" (firma anunciada a los {delay:.1f} s: {'después' if before_signing else 'ANTES'} de que ambas"
            + " la vean)"
            + (f"; primer token nuevo a los {signed:.1f} s con ella" if signed is not None else "; no firmó a tiempo")
            + "; tokens verificados (a, b): "
            + "; ".join(f"{k} {list(v.values())}" for k, v in checks.items())
        )
        return Row("dos réplicas y rotación de llave", figures, ok)
    finally:
        b.stop()


def soak(run: Run) -> Row:
    """~10 requests/s for --soak-minutes, 10 % of them NDJSON downloads abandoned after the first chunk."""
    seconds = run.args.soak_minutes * 60
    folios = [r["folio"] for r in sql(run.pg.url, "SELECT folio FROM aviso WHERE rfc_patron = $1", EMPLOYER)]
    ndjson = {"Accept": "application/x-ndjson"}
    mix: list[tuple[str, Callable[[], str], dict[str, str], bool]] = [
        ("json", lambda: f"/v1/avisos?rfc_patron={EMPLOYER}&limite=100&despues_de={random.choice(folios)}", {}, False),
        ("ndjson", lambda: f"/v1/avisos?rfc_patron={EMPLOYER}&limite=1000", ndjson, False),
        ("uno", lambda: f"/v1/avisos/{random.choice(folios)}", {}, False),
        ("abandonada", lambda: f"/v1/avisos?rfc_patron={EMPLOYER}&limite=10000", ndjson, True),
    ]
    abandoned = run.args.abandon_percent
    weights = [50 * (100 - abandoned), 30 * (100 - abandoned), 20 * (100 - abandoned), 100 * abandoned]
    answers: list[Answer] = []
    rss: list[float] = []
    http = httpx2.Client(base_url=run.a.base, timeout=120, limits=httpx2.Limits(max_connections=64))

    def one(choice: tuple[str, Callable[[], str], dict[str, str], bool]) -> None:
        kind, path, extra, abandon = choice
        answers.append(ask(http, kind, path(), run.caller.headers(**extra), abandon))

    started = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        n = 0
        while (now := time.monotonic() - started) < seconds:
            if not rss or now >= 5 * len(rss):
                rss.append(run.a.rss_mb())
            pool.submit(one, random.choices(mix, weights)[0])
            n += 1
            time.sleep(max(0, started + n / 10 - time.monotonic()))
    elapsed = time.monotonic() - started
    soaked = len(answers)
    for _ in range(100):  # afterwards, plain requests: an abandoned stream must not have poisoned anything
        one(mix[0])
    http.close()
    rss.append(run.a.rss_mb())
    bad = [a for a in answers if a.status != 200 or a.cut]
    bad_after = sum(a.status != 200 or a.cut for a in answers[soaked:])
    kinds = Counter(f"{a.kind} {a.status}{' cortada' if a.cut else ''}" for a in bad)
    latencies = sorted(a.seconds for a in answers if a.kind != "abandonada" and a.status == 200)
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else 0
    baseline = statistics.median(rss[1:4]) if len(rss) > 4 else rss[0]
    figures = (
        f"{soaked:,} solicitudes en {elapsed / 60:.1f} min ({soaked / elapsed:.1f}/s), "
        f"{sum(a.kind == 'abandonada' for a in answers)} abandonadas tras el primer trozo, y 100 después; "
        f"errores {len(bad)} ({len(bad) / len(answers):.1%}; {bad_after} de las 100 de después) {dict(kinds)}; "
        f"latencia p50 {statistics.median(latencies) if latencies else 0:.3f} s, p99 {p99:.3f} s; RSS del servicio "
        f"{baseline:.0f} → {rss[-1]:.0f} MB (máx. {max(rss):.0f}), crecimiento {rss[-1] - baseline:+.1f} MB "
        f"en {len(rss)} muestras"
    )
    return Row("soak con descargas abandonadas", figures, not bad)


SCENARIOS: dict[str, Callable[[Run], list[Row]]] = {
    "reinicio": lambda run: [restart_mid_download(run)],
    "carga": lambda run: [
        kill_load(run.pg.url, run.work, run.args.load_avisos, "comprobando", CHECKING, seed=41),
        kill_load(run.pg.url, run.work, run.args.load_avisos, "publicando", PUBLISHING, seed=42),
    ],
    "bloqueo": lambda run: [table_lock(run)],
    "replicas": lambda run: [replicas_rotation(run)],
    "soak": lambda run: [soak(run)],
}


# ------------------------------------------------------------------ the run


@contextmanager
def service(args: argparse.Namespace) -> Iterator[Run]:
    work = Path(tempfile.mkdtemp(prefix="sia-chaos-"))
    pg = Postgres(work)
    a = None
    try:
        started = time.monotonic()
        a = Replica("a", pg.url, work, "--upgrade", "--demo")
        file = work / "datos.ndjson"
        avisos_file(file, args.download_avisos, seed=31)
        loaded = sia_load(pg.url, work, file)
        if loaded.wait() != 0:
            raise SystemExit(f"sia load: {loaded.stderr.read() if loaded.stderr else ''}")
        caller = enrol(a, work)
        console.print(f"Servicio listo, patrón {EMPLOYER} certificado, en {time.monotonic() - started:.0f} s ({work})")
        yield Run(pg, work, a, caller, args)
    finally:
        if a is not None:
            a.stop()
        pg.close()
        for data in work.glob("*.ndjson"):  # the generated files (~100 MB in a full run); the logs stay
            data.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="soak de 1.5 minutos y datos más chicos")
    parser.add_argument("--soak-minutes", type=float)
    parser.add_argument("--lock-seconds", type=float, default=40)
    parser.add_argument("--abandon-percent", type=int, default=10, help="del soak (0: el control sin abandonos)")
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    args = parser.parse_args()
    args.soak_minutes = args.soak_minutes or (1.5 if args.short else 10)
    args.download_avisos = 20_000 if args.short else 50_000
    args.load_avisos = 40_000 if args.short else 100_000
    started = time.monotonic()
    rows: list[Row] = []
    with service(args) as run:
        console.print(f"Registros del servicio y de las cargas en {run.work}")
        for name in args.only:
            console.print(f"[bold]{name}[/bold]…")
            if not run.a.alive():
                rows.append(Row(name, "el servicio había muerto: no se corrió", False))
                continue
            try:
                rows += SCENARIOS[name](run)
            except Exception as e:
                rows.append(Row(name, f"falló el escenario: {type(e).__name__}: {e}", False))
            console.print(rows[-1])
    table = Table(title=f"make chaos ({time.monotonic() - started:.0f} s)", show_lines=True)
    for column in ("escenario", "cifras", "¿cumple?"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.name, row.figures, "[green]sí[/green]" if row.ok else "[red]no[/red]")
    console.print(table)
    sys.exit(0 if all(r.ok for r in rows) else 1)


if __name__ == "__main__":
    main()
