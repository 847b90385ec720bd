"""The Makefile's two README commands, run for real in a copy of it, with a stub interpreter and a stub `sia` in
.venv/bin (so no minute of pip): what a newcomer sees while the first `make run` or `make test` installs."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STUB = """#!/bin/sh
echo "$(basename "$0") $*" >> "$(dirname "$0")/../calls.log"
"""

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(REPO / name, tmp_path / name)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("python", "sia", "ruff", "mypy", "lint-imports"):
        (bin_dir / tool).write_text(STUB, encoding="utf-8")
        (bin_dir / tool).chmod(0o755)
    return tmp_path


def make(project: Path, target: str) -> tuple[str, list[str]]:
    log = project / ".venv" / "calls.log"
    log.unlink(missing_ok=True)
    result = subprocess.run(
        ["make", "--no-print-directory", target],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("MAKE")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, log.read_text(encoding="utf-8").splitlines() if log.exists() else []


@pytest.mark.parametrize(("target", "command"), [("run", "sia serve --upgrade --demo"), ("test", "python -m pytest")])
def test_the_first_run_says_it_is_installing_and_for_how_long(project, target, command):
    out, calls = make(project, target)
    said = out.index("Instalando")
    assert said < out.index("pip install"), "the message comes before the silent pip"
    assert "minuto" in out[said : out.index("\n", said)], "it says roughly how long"
    assert any("pip install" in call for call in calls) and calls[-1].startswith(command)

    again, calls = make(project, target)
    assert "Instalando" not in again and not any("pip install" in call for call in calls), "installed once"
    assert calls[-1].startswith(command)


def test_make_test_checks_types_and_the_layers_before_the_suite(project):
    _, calls = make(project, "test")
    tools = [call.split()[0] for call in calls if not call.startswith("python -m pip")]
    assert tools[-5:] == ["ruff", "mypy", "lint-imports", "sia", "python"], calls
