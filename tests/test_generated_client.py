"""What a payroll integrator does with the contract: `openapi-python-client generate` with its default
settings, `pip install` of what it wrote into a fresh venv, and a full and an incremental sync of an
employer's avisos with that code alone, against a live server. The NDJSON page and the PDF acuse are reached
through their own operations, since generated code cannot choose Accept."""

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app import loaders
from app.db import async_url
from app.demo import demo_avisos
from tests import factories as f
from tests.live import live_server
from tests.test_certificacion import EMPLOYER, _seed
from tests.test_fuzz import _certify

BIN = Path(sys.executable).parent

# Runs in the throwaway venv, where only the generated package (and what it depends on) is installed.
SYNC = r"""
import json, sys
from sia_infonavit_client import AuthenticatedClient, Client
from sia_infonavit_client.api.acuses import consultar_acuse, descargar_acuse_pdf
from sia_infonavit_client.api.avisos import listar_avisos, listar_avisos_ndjson
from sia_infonavit_client.api.relaciones_de_confianza import crear_relacion_confianza
from sia_infonavit_client.api.tokens import emitir_token
from sia_infonavit_client.models import PaginaAvisos, Relacion, SolicitudRelacion, SolicitudToken, TokenEmitido
import datetime as dt

base, rfc, secret, cursor = sys.argv[1:5]  # secret: "password otp" on the first run, then the token
if cursor == "-":
    password, otp = secret.split(" ")
    token = emitir_token.sync(
        client=Client(base_url=base),
        body=SolicitudToken(grant_type="client_credentials", client_id=rfc, client_secret=password, otp=otp),
    )
    assert isinstance(token, TokenEmitido), token
    secret = token.access_token
client = AuthenticatedClient(base_url=base, token=secret, timeout=60)

def sync(despues_de):
    folios, pages = [], 0
    while True:
        page = listar_avisos.sync(client=client, limite=25, **({"despues_de": despues_de} if despues_de else {}))
        assert isinstance(page, PaginaAvisos), page
        pages += 1
        folios += [aviso.folio for aviso in page.avisos]
        if not page.hay_mas:
            return folios, pages
        despues_de = page.avisos[-1].folio

result = {"token": secret}
if cursor == "-":
    result["full"], result["pages"] = sync(None)
    ndjson = listar_avisos_ndjson.sync_detailed(client=client, limite=1000)
    *lines, end = ndjson.content.splitlines()
    assert json.loads(end) == {"fin": True, "hay_mas": False}, end  # the page is whole
    result["ndjson"] = [json.loads(line)["folio"] for line in lines]
    relacion = crear_relacion_confianza.sync(
        client=client,
        body=SolicitudRelacion(rfc_desarrollador=rfc, vigencia_fin=dt.datetime(2027, 12, 31, tzinfo=dt.UTC)),
    )
    assert isinstance(relacion, Relacion), relacion
    result["acuse_json"] = consultar_acuse.sync(relacion.folio_acuse, client=client).folio
    pdf = descargar_acuse_pdf.sync_detailed(relacion.folio_acuse, client=client)
    result["acuse_pdf"] = [pdf.status_code, pdf.headers["content-type"], pdf.content[:5].decode()]
else:
    result["incremental"], _ = sync(cursor)
print(json.dumps(result))
"""


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _folios(url: str) -> list[str]:
    async def run() -> list[str]:
        engine = create_async_engine(async_url(url))
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT folio FROM aviso WHERE rfc_patron = :r ORDER BY seq"), {"r": EMPLOYER.rfc}
            )
            folios = [row.folio for row in rows]
        await engine.dispose()
        return folios

    return asyncio.run(run())


def _publish(url: str, count: int) -> None:
    async def run() -> None:
        engine = create_async_engine(async_url(url))
        with tempfile.TemporaryDirectory() as folder:
            records = list(demo_avisos([EMPLOYER], count, seed=77, hasta=f.HASTA))
            async with engine.begin() as conn:
                await loaders.load_avisos(conn, f.write_ndjson(Path(folder) / "n.ndjson", records), today=f.TODAY)
        await engine.dispose()

    asyncio.run(run())


@pytest.mark.slow
def test_a_generated_client_installs_and_syncs(new_database, tmp_path):
    url = new_database()
    credentials = asyncio.run(_seed(url))
    asyncio.run(_certify(url, EMPLOYER.rfc))  # desarrollo propio: the employer reads its own avisos
    password, secret = credentials[EMPLOYER.rfc]
    path = {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # the generator's ruff post-hooks
    with live_server(url, tmp_path / "srv") as base:
        _run(
            str(BIN / "openapi-python-client"), "generate", "--url", f"{base}/openapi.json",
            cwd=tmp_path, env={**os.environ, **path},
        )  # fmt: skip
        [project] = [p for p in tmp_path.iterdir() if (p / "pyproject.toml").exists()]
        assert project.name == "sia-infonavit-client"
        venv.create(tmp_path / "venv", with_pip=True)
        python = str(tmp_path / "venv" / "bin" / "python")
        _run(python, "-m", "pip", "install", "--quiet", str(project))

        login = f"{password} {pyotp.TOTP(secret).now()}"
        first = json.loads(_run(python, "-c", SYNC, base, EMPLOYER.rfc, login, "-").stdout)
        expected = _folios(url)
        print(f"cliente generado: {len(first['full'])} avisos en {first['pages']} páginas")
        assert first["full"] == expected and len(expected) == 120 and first["pages"] == 5
        assert first["ndjson"] == expected
        assert first["acuse_json"].startswith("ACU-") and first["acuse_pdf"] == [200, "application/pdf", "%PDF-"]

        _publish(url, 7)
        later = json.loads(_run(python, "-c", SYNC, base, EMPLOYER.rfc, first["token"], first["full"][-1]).stdout)
        print(f"cliente generado, sincronización incremental: {len(later['incremental'])} avisos nuevos")
        assert later["incremental"] == _folios(url)[120:] and len(later["incremental"]) == 7
