"""Pure-ASGI middleware every response passes through: a bound on request bodies and the security headers.

Pure ASGI rather than BaseHTTPMiddleware: they see each `http.request` chunk and each `http.response.*` message
as it goes by, so they neither buffer a body nor break the streamed avisos responses."""

import json
from collections.abc import Callable, Iterable

from asgi_correlation_id import correlation_id
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.problems import PROBLEM_MEDIA_TYPE, PROBLEMAS, ProblemCode

TooLarge = Callable[[Scope, int], tuple[int, list[tuple[bytes, bytes]], bytes]]


def problem_too_large(scope: Scope, limit: int) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The RFC 9457 answer: status, headers and body."""
    code: ProblemCode = "solicitud_demasiado_grande"
    body = {
        "type": f"urn:sia:problema:{code}",
        "title": PROBLEMAS[code].title,
        "status": PROBLEMAS[code].status,
        "code": code,
        "detail": f"El cuerpo de la solicitud excede {limit} bytes.",
        "instance": scope.get("path"),
        "request_id": correlation_id.get(),
    }
    return 413, [(b"content-type", PROBLEM_MEDIA_TYPE.encode())], json.dumps(body, ensure_ascii=False).encode()


def oauth_too_large(_scope: Scope, limit: int) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """RFC 6749 §5.2's shape, for the token endpoint whose clients are OAuth libraries."""
    body = {"error": "invalid_request", "error_description": f"El cuerpo de la solicitud excede {limit} bytes."}
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
    return 413, headers, json.dumps(body, ensure_ascii=False).encode()


class BodyLimit:
    """413 once a body is known to exceed `limit` bytes: at once when Content-Length says so, else as soon as the
    chunks received pass it. The app never reads more than `limit` bytes, and an unauthenticated 100 MB body is
    refused before it is read (FastAPI reads a body before the dependencies that would answer 401)."""

    def __init__(self, app: ASGIApp, limit: int, oauth_paths: Iterable[str] = ()) -> None:
        self.app, self.limit, self.oauth_paths = app, limit, frozenset(oauth_paths)

    def _refusal(self, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        answer = oauth_too_large if scope.get("path") in self.oauth_paths else problem_too_large
        return answer(scope, self.limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await _respond(send, self._refusal(scope), close=True)
            return

        received = 0
        answered = False  # the 413 went out: whatever the app sends afterwards is dropped
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, answered
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    if not response_started and not answered:
                        answered = True
                        await _respond(send, self._refusal(scope), close=True)
                    # To the app the client has gone: Starlette raises ClientDisconnect, nothing is parsed.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if answered:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not answered:
                raise  # a real error; after a 413 the app's complaint about the vanished body is expected


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server (h11, httptools) has already refused a malformed length
    return None


async def _respond(send: Send, answer: tuple[int, list[tuple[bytes, bytes]], bytes], *, close: bool) -> None:
    status, headers, body = answer
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    if close:
        # The unread rest of the body must not be taken for the next request on this connection.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """`X-Content-Type-Options: nosniff` on every response, and `Cache-Control: no-store` on every response that
    does not choose its own: tokens, TOTP secrets, avisos and acuses are personal, and a route that forgets must
    not become cacheable. Public documents (JWKS, catalogs) set their own `Cache-Control`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {name.lower() for name, _ in headers}
                headers.append((b"x-content-type-options", b"nosniff"))
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
