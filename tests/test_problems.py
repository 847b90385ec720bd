"""The problem-code registry has one set of codes: the ProblemCode type and PROBLEMAS cannot drift apart, and
a misspelled code is caught by mypy (make test) instead of raising a KeyError, answered as a 500."""

import textwrap
from pathlib import Path
from typing import get_args

import pytest
from mypy import api as mypy_api

from app.credenciales import OAuthErrorCode
from app.problems import PROBLEMAS, Problem, ProblemCode
from app.security.efirma import EfirmaCode

REPO = Path(__file__).resolve().parents[1]


def test_the_literal_and_the_registry_hold_the_same_codes():
    assert set(get_args(ProblemCode)) == set(PROBLEMAS)
    assert len(get_args(ProblemCode)) == len(PROBLEMAS), "a code spelled twice in the Literal"


def test_every_efirma_code_is_a_registered_problem():
    # credenciales turns each EfirmaError into Problem(e.code): an unregistered one would be a 500.
    for code in get_args(EfirmaCode):
        problem = Problem(code, "detalle")
        assert 400 <= problem.status < 600 and problem.title


def test_oauth_error_codes_are_rfc_6749s():
    assert set(get_args(OAuthErrorCode)) <= {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "temporarily_unavailable",
    }


@pytest.mark.slow
def test_a_misspelled_code_is_a_type_error(tmp_path, monkeypatch):
    snippet = textwrap.dedent(
        """\
        from app.problems import Problem, problem_responses
        from app.security.efirma import EfirmaError

        Problem("aviso_no_encontrado", "bien escrito")
        Problem("aviso_no_encontardo", "mal escrito")
        problem_responses("no_autenticado", "sin_autorisacion")
        EfirmaError("llave_ilegibel", "mal escrito")
        """
    )
    (tmp_path / "misspelled.py").write_text(snippet, encoding="utf-8")
    # The project's own [tool.mypy] settings, run from the repository so `app` resolves to this checkout; a file
    # named on the command line replaces the configured ones.
    monkeypatch.chdir(REPO)
    stdout, stderr, status = mypy_api.run(["--config-file", "pyproject.toml", str(tmp_path / "misspelled.py")])
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    assert status == 1, stdout + stderr
    assert [line.split(":")[1] for line in errors] == ["5", "6", "7"], stdout
    assert all("arg-type" in line for line in errors), stdout
