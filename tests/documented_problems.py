"""Every problem a test receives must be one its route documents in openapi.yaml, status and code, and every
rate-limit header it receives must be documented on that response: so the whole suite checks the spec's
error lists and headers, not a list kept beside it."""

import re
from functools import cache
from typing import Any

import httpx2

from app.problems import PROBLEM_MEDIA_TYPE
from tests import openapi_spec


@cache
def _operations() -> list[tuple[re.Pattern[str], dict[str, Any]]]:
    paths = openapi_spec.committed()["paths"]
    return [
        (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path_item) for path, path_item in paths.items()
    ]


# What a client reads to pace itself (DESIGN §5): it must be able to learn from the spec where they come.
RATE_LIMIT_HEADERS = ("RateLimit", "RateLimit-Policy", "Retry-After")


def _operation(method: str, path: str) -> dict[str, Any] | None:
    return next((item.get(method.lower()) for pattern, item in _operations() if pattern.match(path)), None)


def undocumented_headers(method: str, path: str, status: int, headers: httpx2.Headers) -> str | None:
    """Which rate-limit headers of this answer its operation's response does not document, or None."""
    operation = _operation(method, path)
    if operation is None:
        return None
    documented = {name.lower() for name in operation["responses"].get(str(status), {}).get("headers", {})}
    missing = [name for name in RATE_LIMIT_HEADERS if name in headers and name.lower() not in documented]
    return f"{method} {path} {status} sends {missing}, not documented on that response" if missing else None


def undocumented(method: str, path: str, status: int, code: str) -> str | None:
    """Why this problem is not in the spec of the operation that answered, or None when it is."""
    operation = _operation(method, path)
    if operation is None:
        return None  # no such operation: the same 404 or 405 for every path
    response = operation["responses"].get(str(status))
    if response is None:
        return f"{method} {path} answered {status} {code}, and its operation documents no {status}"
    codes = response["content"][PROBLEM_MEDIA_TYPE]["schema"]["properties"]["code"]["enum"]
    if code not in codes:
        return f"{method} {path} answered {status} {code}; its {status} documents {codes}"
    return None


def event_hooks() -> dict[str, list]:
    async def check(response: httpx2.Response) -> None:
        request = response.request
        headers = undocumented_headers(request.method, request.url.path, response.status_code, response.headers)
        assert headers is None, headers
        if response.headers.get("content-type", "").startswith(PROBLEM_MEDIA_TYPE):
            await response.aread()
            problem = undocumented(request.method, request.url.path, response.status_code, response.json()["code"])
            assert problem is None, problem

    return {"response": [check]}
