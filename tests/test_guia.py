"""docs/guia-desarrolladores.md, run: every ```sh block, in order, in one bash with `set -euo pipefail`, against a
real `sia serve --upgrade --demo` (what `make run` starts: demo data, demo CA and e.firmas), from a folder laid out
like the project root after `make run` (.sia/ is the server's data folder; .venv/ and clients/ are the project's).
A command that fails fails the test, and so does a key result that is missing."""

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pypdf import PdfReader

from app.demo import demo_patrones
from tests.live import live_server
from tests.live import rows as _rows

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "guia-desarrolladores.md"
CLIENT_README = REPO / "clients" / "python" / "README.md"
FENCE = re.compile(r"^```(\S*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
DEVELOPER, EMPLOYER = "XIQB891116QE4", "APO740212FL9"
GRANTED_NRPS = ["D2925979134", "D2981167103"]


def blocks(kind: str | None = None, document: Path = GUIDE) -> list[tuple[str, str]]:
    found = [(m.group(1), m.group(2)) for m in FENCE.finditer(document.read_text(encoding="utf-8"))]
    return [b for b in found if kind is None or b[0] == kind]


def script(document: Path) -> str:
    return "set -euo pipefail\n" + "\n".join(code for _, code in blocks("sh", document))


def test_every_block_is_run_or_is_an_output_sample():
    kinds = [kind for kind, _ in blocks()]
    assert set(kinds) <= {"sh", "text"}, "```sh blocks run, ```text blocks are output samples; nothing else"
    assert kinds.count("sh") >= 10


def test_the_readme_links_the_guide():
    assert "(docs/guia-desarrolladores.md)" in (REPO / "README.md").read_text(encoding="utf-8")


def test_the_files_the_client_readme_writes_are_gitignored():
    """The password, the TOTP secret and the local copy the client's README names never land in a commit."""
    if subprocess.run(["git", "-C", str(REPO), "rev-parse"], capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    code = "\n".join(c for _, c in blocks("sh", CLIENT_README))
    named = set(re.findall(r"--(?:contrasena-archivo|secreto-totp-archivo|archivo) (\S+)", code))
    assert {"contrasena.txt", "secreto-totp.txt", "avisos.ndjson"} <= named
    for folder in ("", "clients/python/"):
        paths = [folder + name for name in sorted(named)]
        ignored = subprocess.run(
            ["git", "-C", str(REPO), "check-ignore", "--no-index", *paths], capture_output=True, text=True
        )
        assert sorted(ignored.stdout.split()) == paths, ignored


def test_the_client_warns_when_others_can_read_a_secret_file(tmp_path):
    password, secret = tmp_path / "contrasena.txt", tmp_path / "secreto-totp.txt"
    password.write_text("una-contrasena\n", encoding="utf-8")
    secret.write_text("JBSWY3DPEHPK3PXP\n", encoding="utf-8")
    password.chmod(0o644)
    secret.chmod(0o600)
    arguments = ["--url", "http://127.0.0.1:9", "--rfc", DEVELOPER, "--archivo", str(tmp_path / "a.ndjson")]
    files = ["--contrasena-archivo", str(password), "--secreto-totp-archivo", str(secret)]
    result = subprocess.run(
        [sys.executable, str(CLIENT_README.with_name("sia_cliente.py")), "sincronizar", *arguments, *files],
        capture_output=True,
        text=True,
        timeout=60,
    )
    warnings = [line for line in result.stderr.splitlines() if line.startswith("advertencia:")]
    assert warnings == [f"advertencia: otros usuarios pueden leer {password}; protéjalo con: chmod 600 {password}"]


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
    (tmp_path / "guia.sh").write_text(script(GUIDE), encoding="utf-8")
    (tmp_path / "cliente.sh").write_text(script(CLIENT_README), encoding="utf-8")
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
        # Right after the guide, as its README says: the reference client's own commands, in the same folder.
        started = time.monotonic()
        client = subprocess.run(
            ["bash", "-x", str(tmp_path / "cliente.sh")],
            cwd=root,
            env={**environment, "SIA": base},
            capture_output=True,
            text=True,
            timeout=240,
        )
        client_elapsed = time.monotonic() - started
    assert client.returncode == 0, f"stdout:\n{client.stdout[-3000:]}\nstderr:\n{client.stderr[-5000:]}"
    print(f"la guía corrió en {elapsed:.1f} s; el README del cliente, en {client_elapsed:.1f} s")
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
    relation, temporary = _rows(
        url,
        "SELECT rfc_desarrollador, nrps, revocada_en, folio_acuse_revocacion FROM relacion_confianza"
        " WHERE rfc_patron = $1 ORDER BY creada_en",
        EMPLOYER,
    )
    assert relation["rfc_desarrollador"] == DEVELOPER and sorted(relation["nrps"]) == GRANTED_NRPS
    assert relation["revocada_en"] is None, "the guide revokes only the relationship it made to show revocation"
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
            "SELECT folio FROM aviso WHERE rfc_patron = $1 AND nrp = ANY($2) ORDER BY seq",
            EMPLOYER,
            GRANTED_NRPS,
        )
    ]
    local = [a["folio"] for a in _lines(work / "avisos.ndjson")]
    assert local == expected
    assert len(expected) > 250, "the NDJSON loop pages more than once"
    first, second = (json.loads((work / f"pagina-{n}.json").read_text(encoding="utf-8")) for n in (1, 2))
    assert [a["folio"] for a in first["avisos"] + second["avisos"]] == expected[:200] and first["hay_mas"]
    assert out.count("sin_autorizacion") == 3, "no relationship yet, an NRP outside it, the same NRP once revoked"
    assert (work / "nuevos.ndjson").read_text(encoding="utf-8") == "", "nothing new during espera"
    assert "avisos nuevos: 1 (.sia/guia/avisos.ndjson)" in out
    assert local[-1] in out and re.fullmatch(r"\d{4}7700000001", local[-1])
    reads = _rows(
        url, "SELECT count(*) AS n FROM evento_auditoria WHERE actor = $1 AND accion = 'avisos.consulta'", DEVELOPER
    )
    assert reads[0]["n"] >= 5, "every read is in the employer's audit"

    # 5: the employer's audit lists the developer's reads; the temporary relationship for the third NRP was read,
    # then revoked with its own acuse, and the next read of that NRP was refused.
    audit = json.loads((work / "auditoria.json").read_text(encoding="utf-8"))["eventos"]
    assert audit and {e["actor"] for e in audit} == {DEVELOPER} and audit[0]["accion"] == "avisos.consulta"
    [third] = sorted(set(employer.nrps) - set(GRANTED_NRPS))
    assert temporary["nrps"] == [third] and temporary["revocada_en"] is not None
    revocation = json.loads((work / "revocacion.json").read_text(encoding="utf-8"))
    assert revocation["estado"] == "revocada"
    assert revocation["folio_acuse_revocacion"] == temporary["folio_acuse_revocacion"]
    assert _rows(
        url,
        "SELECT 1 FROM evento_auditoria WHERE actor = $1 AND accion = 'avisos.consulta' AND nrps = $2 AND cantidad = 5",
        DEVELOPER,
        [third],
    ), "the developer read the third NRP while the temporary relationship lived"

    # The client's README, right after: it certified again and synced the granted avisos into its own file,
    # whose password and secret files only their owner can read.
    assert "aprobada" in client.stdout.splitlines()
    assert f"avisos nuevos: {len(expected)} (avisos.ndjson)" in client.stdout
    assert [a["folio"] for a in _lines(root / "avisos.ndjson")] == expected
    for secret in (root / "contrasena.txt", root / "secreto-totp.txt", work / "secreto-des.txt"):
        assert secret.stat().st_mode & 0o777 == 0o600, secret
    assert "advertencia" not in result.stderr + client.stderr, "the client warns about readable secret files"
