"""Structured logs: one configuration for our loggers, uvicorn's and SQLAlchemy's, with the request id.

What a log line never holds (DESIGN §5): frame locals in a traceback (they held the token form's
client_secret and OTP, and rendering them took megabytes and seconds of the event loop per 500), request
bodies, and personal data from query strings in uvicorn's access log."""

import logging
import re
import sys
from urllib.parse import unquote_plus

import structlog
from asgi_correlation_id import correlation_id
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

# Query parameters whose values are not personal data and help an operator; every other value is masked,
# so a parameter added later is private until someone lists it here.
PUBLIC_QUERY_PARAMETERS = frozenset(
    {
        "antes_de",
        "clase",
        "desde",
        "despues_de",
        "emitidos_desde",
        "emitidos_hasta",
        "espera",
        "estado",
        "formato",
        "hasta",
        "limite",
        "nrp",
        "rol",
        "tipo_aviso",
    }
)
# An RFC of 12 characters is a company's (persona moral), public in the employer registry; 13 is a person's.
RFC_QUERY_PARAMETERS = frozenset({"rfc_patron", "desarrollador"})
_COMPANY_RFC = re.compile(r"[A-ZÑ&]{3}[0-9]{6}[A-Z0-9]{3}")
MASK = "***"

# What a client may send as X-Request-ID: it is echoed in responses and stored in the audit log.
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,63}")


def looks_like_request_id(value: str) -> bool:
    """A uuid, a ULID, nginx's $request_id, a trace id: short, no spaces, no markup, no control characters."""
    return _REQUEST_ID.fullmatch(value) is not None


def redact_query(path_with_query: str) -> str:
    """`/v1/avisos?nss=12345678901&limite=10` -> `/v1/avisos?nss=***&limite=10`."""
    path, sep, query = path_with_query.partition("?")
    if not sep:
        return path
    pairs = []
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        key = unquote_plus(name)
        keep = key in PUBLIC_QUERY_PARAMETERS or (
            key in RFC_QUERY_PARAMETERS and _COMPANY_RFC.fullmatch(unquote_plus(value).upper()) is not None
        )
        pairs.append(pair if keep or not eq else f"{name}={MASK}")
    return f"{path}?{'&'.join(pairs)}"


class RedactAccessLog(logging.Filter):
    """uvicorn.access logs (client, method, path with query, http version, status): the query is masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact_query(args[2]), args[3], args[4])
        return True


def _add_request_id(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    request_id = correlation_id.get()
    if request_id:
        event_dict["request_id"] = request_id
    return event_dict


def configure_logging(*, json_logs: bool, level: int = logging.INFO, access_log: bool = True) -> None:
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_request_id,
    ]
    if json_logs:
        # The traceback as data (type, message, file, line, function per frame), without locals.
        rendering: list[Processor] = [
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
            structlog.processors.JSONRenderer(),
        ]
    else:
        # structlog's default console formatter is rich's, with every frame's locals: the plain one has none.
        rendering = [structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    access = logging.getLogger("uvicorn.access")
    # uvicorn logs each request when this logger has a handler, its ancestors' included, whatever its own
    # access_log option said: off (SIA_ACCESS_LOG=false) means no handler reachable from it.
    access.propagate = access_log
    if not any(isinstance(f, RedactAccessLog) for f in access.filters):
        access.addFilter(RedactAccessLog())
