"""The API contract: FastAPI's document, completed where FastAPI falls short (problem+json errors, examples on
the media types, optional parameters without null). Served as /openapi.json, committed as openapi.yaml, and
checked for drift in `make test`."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI
from pydantic import BaseModel

from app.problems import PROBLEM_MEDIA_TYPE, problem_responses
from app.settings import Settings

OPENAPI_PATH = Path(__file__).resolve().parents[1] / "openapi.yaml"


def _problem_media_type_only(spec: dict[str, Any]) -> None:
    """FastAPI documents every `responses=` model as application/json, and request validation errors with
    its own HTTPValidationError; here both are what the handlers really send: problem+json."""
    validation = problem_responses("solicitud_invalida")[422]
    for operation in _operations(spec):
        for status, response in operation.get("responses", {}).items():
            content = response.get("content", {})
            if PROBLEM_MEDIA_TYPE in content:
                content.pop("application/json", None)
            elif status == "422" and "HTTPValidationError" in str(content):
                response.update(description=validation["description"], content=validation["content"])
    schemas = spec.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


def _operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [operation for path in spec.get("paths", {}).values() for operation in path.values()]


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


def _model_examples() -> dict[str, list[Any]]:
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
            found[model.__name__] = extra["examples"]
    return found


def _restore_null_examples(spec: dict[str, Any]) -> None:
    examples = _model_examples()
    for schema in spec.get("components", {}).get("schemas", {}).values():
        if "examples" in schema and schema.get("title") in examples:
            schema["examples"] = examples[schema["title"]]


def install_openapi(app: FastAPI) -> None:
    """/openapi.json (what /docs and /redoc show) and openapi.yaml are the same document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()  # FastAPI's own, cached in app.openapi_schema: completed in place, once
            _problem_media_type_only(spec)
            _optional_parameters_not_null(spec)
            _restore_null_examples(spec)
            _examples_on_media_types(spec)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def openapi_document() -> dict[str, Any]:
    from app.main import create_app

    return create_app(Settings(database_url="postgresql://unused/unused")).openapi()


def openapi_yaml() -> str:
    return yaml.safe_dump(openapi_document(), sort_keys=False, allow_unicode=True, width=100)
