"""The API contract: FastAPI's document, completed where FastAPI falls short (problem+json errors, examples on
the media types, optional parameters without null) and where Spectral, Redocly and code generators need more
(servers, tags, public operations, rate-limit headers). Served as /openapi.json; `sia openapi` (app/cli.py)
writes it as openapi.yaml and checks it for drift in `make test`."""

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, JsonValue

from app.problems import PROBLEM_MEDIA_TYPE, problem_responses
from app.settings import Settings


def _problem_media_type_only(spec: dict[str, Any]) -> None:
    """FastAPI documents every `responses=` model as application/json, and request validation errors with
    its own HTTPValidationError; here both are what the handlers really send: problem+json."""
    validation = problem_responses("solicitud_invalida")[422]
    for operation in _operations(spec):
        for status, response in operation.get("responses", {}).items():
            content = response.get("content", {})
            json_schema = content.get("application/json", {}).get("schema", {})
            if PROBLEM_MEDIA_TYPE in content and json_schema.get("$ref", "").endswith("/ProblemDetail"):
                # An RFC 6749 body beside it (the token endpoint's 503) is real and stays.
                content.pop("application/json")
            elif status == "422" and "HTTPValidationError" in str(content):
                response.update(description=validation["description"], content=validation["content"])
    schemas = spec.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


# A wire model whose domain class has the plain name is named `…Public` in Python (credenciales.PruebaEfirma and
# routers.identidad.PruebaEfirmaPublic); the contract keeps the plain name, which generated clients import.
PUBLIC_SUFFIX = "Public"
SCHEMA_REF = "#/components/schemas/"


def _component_name(class_name: str) -> str:
    return class_name.removesuffix(PUBLIC_SUFFIX)


def _public_suffix_dropped(spec: dict[str, Any]) -> None:
    components = spec.get("components", {})
    renamed = {name: _component_name(name) for name in components.get("schemas", {})}
    clashes = sorted(name for name in renamed if name != renamed[name] and renamed[name] in renamed)
    if clashes:
        # Two wire models would publish one name: rename one of them rather than let the contract pick.
        raise RuntimeError(f"estos esquemas tendrían el nombre de otro sin el sufijo {PUBLIC_SUFFIX}: {clashes}")
    components["schemas"] = {renamed[name]: schema for name, schema in components.get("schemas", {}).items()}
    for schema in components["schemas"].values():
        if schema.get("title") in renamed:
            schema["title"] = renamed[schema["title"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(SCHEMA_REF):
                node["$ref"] = SCHEMA_REF + renamed.get(ref.removeprefix(SCHEMA_REF), ref.removeprefix(SCHEMA_REF))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)


def _operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [operation for path in spec.get("paths", {}).values() for operation in path.values()]


# Top-level tags, in the order the docs show them. Names are ASCII on purpose: openapi-python-client makes a
# Python module of each and splits words at any accent; the descriptions carry the Spanish.
TAGS = [
    ("Monitoreo", "Sondas de vida y de disponibilidad para el orquestador; no requieren token."),
    ("Tablas de referencia", "Los catálogos de Infonavit: tipos de aviso, de descuento y de crédito, y estatus."),
    ("e.firma", "Retos que se firman con la e.firma del SAT para obtener, renovar o cancelar la contraseña."),
    ("Credenciales", "Contraseña (por correo) y secreto TOTP, emitidos, renovados o cancelados con la e.firma."),
    ("Tokens", "Tokens de acceso de pocos minutos (RFC 6749) y las llaves públicas que los verifican."),
    ("Acuses", "Acuses sellados por el servicio, en JSON o PDF, y su verificación pública."),
    ("Patrones", "Los registros patronales (NRP) de un patrón."),
    ("Relaciones de confianza", "Un patrón autoriza a un desarrollador a leer sus avisos, y lo revoca."),
    ("Registro de lecturas", "Auditoría: quién leyó los avisos de un patrón, cuándo y cuántos."),
    ("Avisos", "Descarga completa e incremental de los avisos de un patrón, en JSON o NDJSON."),
    ("Certificar software", "Intentos de certificación: escenarios que el servicio comprueba con su propio registro."),
    ("Sandbox", "La API de avisos sobre los datos sintéticos del intento de certificación en curso."),
]

# Headers of `limits` that a client paces itself with (RFC 9331 draft and RFC 9110 §10.2.3).
RATE_LIMIT_HEADERS = {
    "RateLimit": {
        "description": "Cuota restante (`r`) y segundos hasta que se renueva (`t`) de la política nombrada.",
        "schema": {"type": "string", "example": '"600/minute";r=599;t=60'},
    },
    "RateLimit-Policy": {
        "description": "La política: solicitudes (`q`) por ventana de `w` segundos.",
        "schema": {"type": "string", "example": '"600/minute";q=600;w=60'},
    },
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Segundos que debe esperar antes de reintentar.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}


def _servers_and_tags(spec: dict[str, Any], settings: Settings) -> None:
    """`servers` is where Swagger UI's "Try it out" and generated clients send requests: this deployment's."""
    spec["servers"] = [{"url": settings.resolved_public_url, "description": "Este servicio."}]
    spec["tags"] = [{"name": name, "description": description} for name, description in TAGS]


def _public_operations_say_so(spec: dict[str, Any]) -> None:
    """FastAPI writes `security` only where the bearer dependency is; elsewhere no token is needed, and the
    document says so instead of leaving linters and readers to guess."""
    for operation in _operations(spec):
        operation.setdefault("security", [])


def _rate_limit_headers(spec: dict[str, Any]) -> None:
    """Every 429 carries Retry-After; the limiter's also carry RateLimit and RateLimit-Policy (the
    certification scenario's and the token endpoint's lockout do not, so they are optional there). A 503 says
    when to come back where it knows (a busy Argon2 gate, an OCSP responder down), so there it is optional."""
    retry_after_optional = {"Retry-After": {**RETRY_AFTER["Retry-After"], "required": False}}
    for operation in _operations(spec):
        responses = operation.get("responses", {})
        if (response := responses.get("429")) is not None:
            response["headers"] = {**response.get("headers", {}), **RETRY_AFTER, **RATE_LIMIT_HEADERS}
        if (response := responses.get("503")) is not None:
            response["headers"] = {**response.get("headers", {}), **retry_after_optional}


def _limite_maximum(spec: dict[str, Any], settings: Settings) -> None:
    """The largest page is a setting, so the document states the one in force (the sandbox caps lower)."""
    for path in ("/v1/avisos", "/v1/avisos.ndjson", "/sandbox/v1/avisos", "/sandbox/v1/avisos.ndjson"):
        for parameter in spec.get("paths", {}).get(path, {}).get("get", {}).get("parameters", []):
            if parameter["name"] == "limite":
                parameter["schema"]["maximum"] = settings.avisos_limite_max


def _examples_on_media_types(spec: dict[str, Any]) -> None:
    """A body's example lives beside its model (`model_config` examples). Swagger UI, ReDoc and code generators
    read the media type's `example`, so it is copied there."""
    schemas = spec.get("components", {}).get("schemas", {})

    def example_of(schema: dict[str, Any]) -> Any:
        if "$ref" in schema:
            return next(iter(schemas[schema["$ref"].rsplit("/", 1)[-1]].get("examples", [])), None)
        if schema.get("type") == "array":
            item = example_of(schema.get("items", {}))
            return None if item is None else [item]
        return None

    for operation in _operations(spec):
        for body in [operation.get("requestBody", {}), *operation.get("responses", {}).values()]:
            for media in body.get("content", {}).values():
                example = example_of(media.get("schema", {}))
                if example is not None and "example" not in media and "examples" not in media:
                    media["example"] = example


def _optional_parameters_not_null(spec: dict[str, Any]) -> None:
    """An optional query parameter is absent, never null (a query string cannot say null): FastAPI's
    `anyOf [X, null]` becomes X, which ReDoc and code generators show as the plain type it is."""
    for operation in _operations(spec):
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            kinds = schema.get("anyOf", [])
            if not parameter.get("required") and {"type": "null"} in kinds and len(kinds) == 2:
                (kind,) = [k for k in kinds if k != {"type": "null"}]
                del schema["anyOf"]
                schema.update(kind)


def _model_examples() -> dict[str, JsonValue]:
    """Our models' examples by class name, as written: FastAPI drops every null from the document
    (`exclude_none`), examples included, and an aviso or a relation without its null fields misleads."""

    def subclasses(cls: type[BaseModel]) -> Iterator[type[BaseModel]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    found = {}
    for model in subclasses(BaseModel):
        extra = model.model_config.get("json_schema_extra")
        if model.__module__.startswith("app.") and isinstance(extra, dict) and "examples" in extra:
            found[_component_name(model.__name__)] = extra["examples"]
    return found


def _restore_null_examples(spec: dict[str, Any]) -> None:
    examples = _model_examples()
    for schema in spec.get("components", {}).get("schemas", {}).values():
        if "examples" in schema and schema.get("title") in examples:
            schema["examples"] = examples[schema["title"]]


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """/openapi.json (what /docs and /redoc show) and openapi.yaml are the same document, but for the two
    settings it states (`servers`, the maximum `limite`): openapi.yaml is written with their defaults."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()  # FastAPI's own, cached in app.openapi_schema: completed in place, once
            _public_suffix_dropped(spec)
            _problem_media_type_only(spec)
            _optional_parameters_not_null(spec)
            _restore_null_examples(spec)
            _examples_on_media_types(spec)
            _servers_and_tags(spec, settings)
            _public_operations_say_so(spec)
            _rate_limit_headers(spec)
            _limite_maximum(spec, settings)
        assert app.openapi_schema is not None  # generate() cached it there
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
