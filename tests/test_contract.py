"""The contract: openapi.yaml is valid, and no route answers malformed input with a 500."""

import json
import re

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from app.cli import STATED_DEFAULTS
from app.main import create_app
from app.openapi import _public_suffix_dropped
from app.problems import PROBLEM_MEDIA_TYPE
from app.settings import Settings
from tests import openapi_spec


def test_openapi_yaml_is_a_valid_openapi_document():
    validate(openapi_spec.committed())


def test_every_documented_error_is_a_problem():
    """Except the token endpoint's, which are RFC 6749 §5.2 errors because OAuth clients expect them."""
    spec = openapi_spec.committed()
    for path, operations in spec["paths"].items():
        if path == "/v1/token":
            continue
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == [PROBLEM_MEDIA_TYPE], (method, path, status)
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_wire_models_publish_their_names_without_the_public_suffix():
    """PruebaEfirmaPublic in Python is PruebaEfirma in the contract, the name generated clients import; two models
    that would publish one name are refused rather than one silently replacing the other."""
    spec = create_app(Settings(database_url="postgresql://unused/unused", **STATED_DEFAULTS)).openapi()
    schemas = spec["components"]["schemas"]
    assert {"PruebaEfirma", "Veredicto", "Sandbox"} <= set(schemas)
    assert not re.search(r"\wPublic\b", json.dumps(spec)), "no component, title or $ref keeps the suffix"
    with pytest.raises(RuntimeError, match="APublic"):
        _public_suffix_dropped({"components": {"schemas": {"A": {}, "APublic": {}}}})


def test_every_operation_and_parameter_is_described():
    """Developers learn the API from /docs: no operation or parameter is left to guess."""
    spec = openapi_spec.committed()
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
    """Payroll developers learn the API from these examples, so each must be a body the schema accepts. An
    NDJSON media type's schema and example are those of one line, as linters and generators read them."""
    spec = openapi_spec.committed()
    checked = 0
    for where, media_type, media in _bodies(spec):
        if media_type == "application/pdf":
            continue
        if "examples" in media:
            examples = [named["value"] for named in media["examples"].values()]
        else:
            assert "example" in media, f"{where} has no example"
            examples = [media["example"]]
        # The schema is resolved inside the whole spec, so its $refs to components work.
        validator = Draft202012Validator({**spec, **media["schema"]})
        for example in examples:
            errors = [e.message for e in validator.iter_errors(example)]
            assert not errors, f"{where}: {errors}"
            checked += 1
    assert checked > 100


def test_a_wrong_example_is_caught():
    """The check above can fail: a problem example with a code its status does not list is refused."""
    spec = openapi_spec.committed()
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


@pytest.fixture
def app_settings(settings):
    """The settings the document states at their defaults, as in openapi.yaml, whatever the environment."""
    return settings.model_copy(update=STATED_DEFAULTS)


async def test_the_docs_show_the_committed_contract(client):
    """/docs and /redoc read /openapi.json: it is the same document as openapi.yaml, problems and examples included."""
    served = (await client.get("/openapi.json")).json()
    assert served == openapi_spec.committed()
    assert (
        served["paths"]["/v1/relaciones-confianza"]["post"]["responses"]["201"]["content"]["application/json"][
            "example"
        ]["revocada_en"]
        is None
    )


# ------------------------------------------------------------------ what linters and generators need


def _committed() -> dict:
    return openapi_spec.committed()


def _served(settings: Settings, **changes) -> dict:
    return create_app(settings.model_copy(update=changes)).openapi()


def test_servers_come_from_the_public_url(settings):
    """Swagger UI's "Try it out" and generated clients call `servers`: the committed file names the default
    address of `make run`, the served document the one this deployment is reached at."""
    assert [s["url"] for s in _committed()["servers"]] == ["http://127.0.0.1:8000"]
    served = _served(settings, public_url="https://sia.example.mx")
    assert [s["url"] for s in served["servers"]] == ["https://sia.example.mx"]


def test_limite_declares_the_configured_maximum(settings):
    def maxima(spec: dict) -> dict[str, int]:
        return {
            path: next(p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == "limite")["schema"][
                "maximum"
            ]
            for path in ("/v1/avisos", "/sandbox/v1/avisos")
        }

    assert maxima(_committed()) == {"/v1/avisos": 10_000, "/sandbox/v1/avisos": 10_000}
    assert maxima(_served(settings, avisos_limite_max=2_000)) == {"/v1/avisos": 2_000, "/sandbox/v1/avisos": 2_000}


def test_every_tag_is_declared_with_a_description():
    spec = _committed()
    declared = {tag["name"]: tag.get("description") for tag in spec["tags"]}
    used = {tag for operations in spec["paths"].values() for op in operations.values() for tag in op["tags"]}
    assert used == set(declared) and all(declared.values()), declared


PUBLIC = {
    "livez",
    "readyz",
    "consultarCatalogo",
    "crearReto",
    "emitirContrasena",
    "renovarContrasena",
    "cancelarContrasena",
    "emitirToken",
    "jwks",
    "verificarAcuse",
}


def test_public_operations_say_so_and_the_others_need_the_bearer_token():
    spec = _committed()
    public = set()
    for operations in spec["paths"].values():
        for op in operations.values():
            assert "security" in op, op["operationId"]
            if op["security"] == []:
                public.add(op["operationId"])
            else:
                assert op["security"] == [{"HTTPBearer": []}], op["operationId"]
    assert public == PUBLIC


def test_no_english_developer_notes_in_the_contract():
    """Docstrings of models become schema descriptions: what a payroll developer reads is Spanish."""
    english = re.compile(r"\b(the|of|is|are|which|so that|here|when|with|that|every)\b", re.IGNORECASE)

    def descriptions(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("description", "summary", "title") and isinstance(value, str):
                    yield value
                else:
                    yield from descriptions(value)
        elif isinstance(node, list):
            for value in node:
                yield from descriptions(value)

    found = [text for text in descriptions(_committed()) if english.search(text)]
    assert not found, found


def test_generated_clients_get_python_names():
    """openapi-python-client names the package after info.title and a module after each tag, keeping only
    ASCII letters in words: an accent splits a word and leaves a name pip refuses."""
    from openapi_python_client.strings import kebab_case, snake_case

    spec = _committed()
    project = kebab_case(spec["info"]["title"]).lower() + "-client"
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", project), project
    for tag in spec["tags"]:
        assert re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", snake_case(tag["name"])), tag["name"]
