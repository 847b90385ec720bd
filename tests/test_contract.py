"""The contract: openapi.yaml is valid, and no route answers malformed input with a 500."""

import json

import pytest
import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from app.openapi import OPENAPI_PATH
from app.problems import PROBLEM_MEDIA_TYPE


def test_openapi_yaml_is_a_valid_openapi_document():
    validate(yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8")))


def test_every_documented_error_is_a_problem():
    """Except the token endpoint's, which are RFC 6749 §5.2 errors because OAuth clients expect them."""
    spec = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    for path, operations in spec["paths"].items():
        if path == "/v1/token":
            continue
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == [PROBLEM_MEDIA_TYPE], (method, path, status)
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_every_operation_and_parameter_is_described():
    """Developers learn the API from /docs: no operation or parameter is left to guess."""
    spec = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary") and operation.get("description"), f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                described = parameter.get("description") or parameter["schema"].get("description")
                assert described, f"{method.upper()} {path} {parameter['name']}"


def _bodies(spec: dict):
    """(where, media type, media object) of every request and response body in the spec."""
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            bodies = [("request", operation.get("requestBody", {})), *operation["responses"].items()]
            for status, body in bodies:
                for media_type, media in body.get("content", {}).items():
                    yield f"{method.upper()} {path} {status} {media_type}", media_type, media


def test_every_body_has_an_example_that_matches_its_schema():
    """Payroll developers learn the API from these examples, so each must be a body the schema accepts."""
    spec = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    checked = 0
    for where, media_type, media in _bodies(spec):
        if media_type == "application/pdf":
            continue
        if "examples" in media:
            examples = [named["value"] for named in media["examples"].values()]
        else:
            assert "example" in media, f"{where} has no example"
            examples = [media["example"]]
        if media_type == "application/x-ndjson":
            examples = [json.loads(line) for example in examples for line in example.splitlines()]
        # The schema is resolved inside the whole spec, so its $refs to components work.
        validator = Draft202012Validator({**spec, **media["schema"]})
        for example in examples:
            errors = [e.message for e in validator.iter_errors(example)]
            assert not errors, f"{where}: {errors}"
            checked += 1
    assert checked > 100


def test_a_wrong_example_is_caught():
    """The check above can fail: a problem example with a code its status does not list is refused."""
    spec = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    media = spec["paths"]["/v1/efirma/retos"]["post"]["responses"]["429"]["content"][PROBLEM_MEDIA_TYPE]
    wrong = {**media["examples"]["limite_de_tasa"]["value"], "code": "reto_usado"}
    assert list(Draft202012Validator({**spec, **media["schema"]}).iter_errors(wrong))


GARBAGE = [
    "/v1/catalogos/%00",
    "/v1/catalogos/" + "x" * 5000,
    "/v1/catalogos/tipos-aviso%ff%fe",
    "/v1/catalogos/%F0%9F%92%A5",
    "/v1/catalogos/tipos-aviso?limite=-1&%ff=%fe",
    "/v1/catalogos/../../etc/passwd",
    "/readyz?x=" + "%" * 300,
    "/%",
]


@pytest.mark.parametrize("path", GARBAGE)
async def test_malformed_requests_get_problems_not_500(client, path):
    response = await client.get(path)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
        assert response.json()["code"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_wrong_methods_with_garbage_bodies(client, method):
    response = await client.request(method, "/v1/catalogos/tipos-aviso", content=b"\xff\x00{not json")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_need_no_internet(client, page):
    response = await client.get(page)
    assert response.status_code == 200
    html = response.text
    assert "/static/" in html
    assert "http://" not in html and "https://" not in html, "every asset from this service, none from a CDN"
    for asset in ("/static/swagger-ui-bundle.js", "/static/swagger-ui.css", "/redoc.js"):
        assert (await client.get(asset)).status_code == 200
    assert "cdn.redoc.ly" not in (await client.get("/redoc.js")).text, "ReDoc's footer logo comes from here too"


async def test_the_docs_show_the_committed_contract(client):
    """/docs and /redoc read /openapi.json: it is the same document as openapi.yaml, problems and examples included."""
    served = (await client.get("/openapi.json")).json()
    assert served == yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    assert (
        served["paths"]["/v1/relaciones-confianza"]["post"]["responses"]["201"]["content"]["application/json"][
            "example"
        ]["revocada_en"]
        is None
    )
