"""openapi.yaml: generated from the app, committed, and checked for drift in `make test`."""

from pathlib import Path
from typing import Any

import yaml

from app.problems import PROBLEM_MEDIA_TYPE, problem_responses
from app.settings import Settings

OPENAPI_PATH = Path(__file__).resolve().parents[1] / "openapi.yaml"


def _problem_media_type_only(spec: dict[str, Any]) -> None:
    """FastAPI documents every `responses=` model as application/json, and request validation errors with
    its own HTTPValidationError; here both are what the handlers really send: problem+json."""
    validation = problem_responses("solicitud_invalida")[422]
    for operation in (op for path in spec.get("paths", {}).values() for op in path.values()):
        for status, response in operation.get("responses", {}).items():
            content = response.get("content", {})
            if PROBLEM_MEDIA_TYPE in content:
                content.pop("application/json", None)
            elif status == "422" and "HTTPValidationError" in str(content):
                response.update(description=validation["description"], content=validation["content"])
    schemas = spec.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


def openapi_document() -> dict[str, Any]:
    from app.main import create_app

    spec = create_app(Settings(database_url="postgresql://unused/unused")).openapi()
    _problem_media_type_only(spec)
    return spec


def openapi_yaml() -> str:
    return yaml.safe_dump(openapi_document(), sort_keys=False, allow_unicode=True, width=100)
