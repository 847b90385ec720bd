"""Where an avisos load's time goes, statement by statement.

    python -m bench.profile_load [--avisos 200000]

Loads a demo file of N new avisos into an empty `aviso` of a fresh database (bench --carga's), through
load_avisos as `sia load avisos` runs it (no transaction begun: a commit per chunk), and times every statement
from SQLAlchemy's cursor events: from the statement's start to its answer reaching the event loop, so a wait
for the GIL (the validating thread holds it) counts too. The COPY into aviso runs on the driver directly and the
commits outside the cursor: what the load's database part spent beyond the statements is theirs.
"""

import argparse
import asyncio
import re
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app import loaders
from app.db import async_url
from bench import publicacion as bench_publicacion


async def _profile(server_url: str, rows: int) -> None:
    url = await bench_publicacion._fresh_database(server_url, "sia_bench_carga")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        employer, ndjson, _csv = bench_publicacion._files(folder, 101, rows)
        await bench_publicacion._register(url, employer, folder)
        engine = create_async_engine(async_url(url), poolclass=NullPool)
        spent: Counter[str] = Counter()

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def started(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            conn.info["started"] = time.perf_counter()

        @event.listens_for(engine.sync_engine, "after_cursor_execute")
        def ended(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            # One line per statement, savepoints (numbered) counted together.
            spent[re.sub(r"\d+", "N", " ".join(statement.split()))[:80]] += time.perf_counter() - conn.info.pop(
                "started"
            )

        try:
            began = time.perf_counter()
            async with engine.connect() as conn:
                report = await loaders.load_avisos(conn, ndjson)
            total = time.perf_counter() - began
        finally:
            await engine.dispose()

    def per_row(seconds: float) -> str:
        return f"{seconds * 1e6 / rows:6.2f} µs"

    print(f"{rows:,} avisos en {total:.1f} s: {per_row(total)} por fila")
    print(
        f"  validación (hilo) {per_row(report.segundos_validacion)}, base de datos {per_row(report.segundos_base_de_datos)}"
    )
    for statement, seconds in spent.most_common(12):
        print(f"  {per_row(seconds)}  {statement}")
    rest = report.segundos_base_de_datos - sum(spent.values())
    print(f"  {per_row(rest)}  (COPY a aviso, commits y lo demás)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--avisos", type=int, default=bench_publicacion.CARGA_AVISOS)
    args = parser.parse_args()
    from app.embedded import database_url
    from app.settings import Settings

    with database_url(Settings(data_dir=Path(".bench").resolve() / "data")) as server_url:
        asyncio.run(_profile(server_url, args.avisos))


if __name__ == "__main__":
    main()
