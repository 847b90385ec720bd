"""docs/guia-desarrolladores.md, run: every ```sh block, in order, in one bash with `set -euo pipefail`, against a
real `sia serve --upgrade --demo` (what `make run` starts: demo data, demo CA and e.firmas), from a folder laid out
like the project root after `make run` (.sia/ is the server's data folder; .venv/ and clients/ are the project's).
A command that fails fails the test, and so does a key result that is missing."""

import asyncio
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
from pypdf import PdfReader

from app.db import asyncpg_dsn
from app.demo import demo_patrones
from tests.live import live_server

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "guia-desarrolladores.md"
FENCE = re.compile(r"^```(\S*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
DEVELOPER, EMPLOYER = "XIQB891116QE4", "APO740212FL9"
GRANTED_NRPS = ["D2925979134", "D2981167103"]


def blocks(kind: str | None = None) -> list[tuple[str, str]]:
    found = [(m.group(1), m.group(2)) for m in FENCE.finditer(GUIDE.read_text(encoding="utf-8"))]
    return [b for b in found if kind is None or b[0] == kind]


def test_every_block_is_run_or_is_an_output_sample():
    kinds = [kind for kind, _ in blocks()]
    assert set(kinds) <= {"sh", "text"}, "```sh blocks run, ```text blocks are output samples; nothing else"
    assert kinds.count("sh") >= 10


def test_the_readme_links_the_guide():
    assert "(docs/guia-desarrolladores.md)" in (REPO / "README.md").read_text(encoding="utf-8")


def _rows(url: str, query: str, *args) -> list:
    async def run() -> list:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_the_guide_runs_against_make_run(new_database, tmp_path):
    employer = next(p for p in demo_patrones(4, seed=2026) if p.rfc == EMPLOYER)
    assert set(GRANTED_NRPS) < set(employer.nrps), "the guide names NRPs of a demo employer"

    root = tmp_path / "proyecto"
    root.mkdir()
    (root / ".venv").symlink_to(Path(sys.executable).parents[1])
    (root / "clients").symlink_to(REPO / "clients")
    url = new_database()
    script = "set -euo pipefail\n" + "\n".join(code for _, code in blocks("sh"))
    (tmp_path / "guia.sh").write_text(script, encoding="utf-8")
    # The guide's `sia load` (the operator's step) reaches the database through DATABASE_URL here, the embedded
    # server in .sia/ beside `make run`. Its `pip install httpx2` never runs (a dev dependency) nor goes online.
    # No SIA_* setting leaks in: the guide's defaults (.sia/) must be what resolves; SIA is the server's URL.
    environment = {**os.environ, "DATABASE_URL": url, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for setting in [k for k in environment if k.startswith("SIA_")]:
        del environment[setting]

    with live_server(url, root / ".sia", "--upgrade", "--demo", SIA_ENV="development") as base:
        started = time.monotonic()
        result = subprocess.run(
            ["bash", "-x", str(tmp_path / "guia.sh")],
            cwd=root,
            env={**environment, "SIA": base},
            capture_output=True,
            text=True,
            timeout=240,
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 0, f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-5000:]}"
    print(f"la guía corrió en {elapsed:.1f} s")
    out = [line.strip() for line in result.stdout.splitlines()]
    work = root / ".sia" / "guia"

    # 1: the signature the guide shows with openssl is the one `sia efirma firmar` made; no access before certifying.
    assert "misma firma" in out
    assert out.index("sin_certificacion") < out.index("sin_autorizacion")

    # 2: the reference client certified the developer.
    certification = json.loads((work / "certificacion.json").read_text(encoding="utf-8"))["certificacion"]
    assert certification["estado"] == "aprobada", certification
    assert _rows(url, "SELECT 1 FROM certificacion WHERE rfc = $1 AND estado = 'aprobada'", DEVELOPER)

    # 3: the employer read its NRPs from the API, then the relationship, with its PDF acuse.
    assert json.loads((work / "patron.json").read_text(encoding="utf-8"))["nrps"] == sorted(employer.nrps)
    [relation] = _rows(url, "SELECT rfc_desarrollador, nrps FROM relacion_confianza WHERE rfc_patron = $1", EMPLOYER)
    assert relation["rfc_desarrollador"] == DEVELOPER and sorted(relation["nrps"]) == GRANTED_NRPS
    pdf = (work / "acuse-relacion.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and "%PDF-" in out
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert EMPLOYER in text and DEVELOPER in text

    # 4: two JSON pages that follow each other, then the local NDJSON copy: exactly the granted avisos, in
    # publication order, with the one the operator published last, fetched by the reference client.
    expected = [
        r["folio"]
        for r in _rows(
            url,
            "SELECT folio FROM aviso WHERE rfc_patron = $1 AND nrp = ANY($2) ORDER BY publicacion_xid, id",
            EMPLOYER,
            GRANTED_NRPS,
        )
    ]
    local = [a["folio"] for a in _lines(work / "avisos.ndjson")]
    assert local == expected
    assert len(expected) > 250, "the NDJSON loop pages more than once"
    first, second = (json.loads((work / f"pagina-{n}.json").read_text(encoding="utf-8")) for n in (1, 2))
    assert [a["folio"] for a in first["avisos"] + second["avisos"]] == expected[:200] and first["hay_mas"]
    assert out.count("sin_autorizacion") == 2, "uncertified-for-this-employer, then an NRP outside the relationship"
    assert (work / "nuevos.ndjson").read_text(encoding="utf-8") == "", "nothing new during espera"
    assert "avisos nuevos: 1 (.sia/guia/avisos.ndjson)" in out
    assert out[-1] == local[-1] and re.fullmatch(r"\d{4}7700000001", local[-1])
    reads = _rows(
        url, "SELECT count(*) AS n FROM evento_auditoria WHERE actor = $1 AND accion = 'avisos.consulta'", DEVELOPER
    )
    assert reads[0]["n"] >= 5, "every read is in the employer's audit"
