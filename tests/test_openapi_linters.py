"""openapi.yaml passes the linters integrators run on it: Spectral (`spectral:oas`) and Redocly CLI
(`recommended`), at the versions pinned in tools/openapi-lint. They come from the npm registry; without `npx`
these tests skip, saying so."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from app.cli import OPENAPI_PATH
from tests import openapi_spec

TOOLS = Path(__file__).resolve().parents[1] / "tools" / "openapi-lint"
BIN = TOOLS / "node_modules" / ".bin"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("npx") is None,
        reason="SIN npx: Spectral y Redocly NO se ejecutaron; instale Node.js (p. ej. apt-get install npm)",
    ),
]


@pytest.fixture(scope="module")
def linters() -> Path:
    """The pinned linters, installed from the lockfile when they are not there yet."""
    if not (BIN / "spectral").exists() or not (BIN / "redocly").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=TOOLS, check=True, timeout=600)
    return BIN


def spectral(document: Path) -> list[dict]:
    """Spectral's findings; severity 0 is an error, 1 a warning."""
    result = subprocess.run(
        ["npx", "--no-install", "spectral", "lint", "--quiet", "--format", "json", "--ruleset", ".spectral.yaml",
         str(document)],
        cwd=TOOLS, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return json.loads(result.stdout or "[]")


def redocly(document: Path) -> dict:
    """Redocly's totals: {"errors": n, "warnings": n, "ignored": n} and the problems."""
    result = subprocess.run(
        ["npx", "--no-install", "redocly", "lint", "--config", "redocly.yaml", "--format", "json", str(document)],
        cwd=TOOLS, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return json.loads(result.stdout[result.stdout.index("{") :])


def _summary(findings: list[dict]) -> list[str]:
    return [f"{f['code']} {'.'.join(map(str, f['path']))}: {f['message']}" for f in findings]


def test_spectral_finds_no_error(linters):
    findings = spectral(OPENAPI_PATH)
    errors = [f for f in findings if f["severity"] == 0]
    print(f"Spectral: {len(errors)} errores, {sum(f['severity'] == 1 for f in findings)} advertencias")
    print("\n".join(_summary(f for f in findings if f["severity"] == 1)))
    assert not errors, _summary(errors)


def test_redocly_finds_no_error(linters):
    report = redocly(OPENAPI_PATH)
    totals = report["totals"]
    print(f"Redocly: {totals['errors']} errores, {totals['warnings']} advertencias")
    print("\n".join(f"{p['ruleId']} {p['severity']}: {p['message']}" for p in report["problems"]))
    assert totals["errors"] == 0, [p for p in report["problems"] if p["severity"] == "error"]


def test_both_linters_bite(linters, tmp_path):
    """The two checks above can fail: a text example for the aviso object and an operation without its
    security requirement are errors for each of them."""
    spec = openapi_spec.committed()
    operation = spec["paths"]["/v1/avisos"]["get"]
    operation["responses"]["200"]["content"]["application/json"]["example"] = "no es una página"
    del spec["paths"]["/livez"]["get"]["security"]
    broken = tmp_path / "roto.yaml"
    broken.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), encoding="utf-8")
    assert any(f["severity"] == 0 and f["code"] == "oas3-valid-media-example" for f in spectral(broken))
    assert {p["ruleId"] for p in redocly(broken)["problems"] if p["severity"] == "error"} >= {"security-defined"}
