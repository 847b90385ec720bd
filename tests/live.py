"""`sia serve` in its own process on loopback, for tests that need a real server (streaming, clients, fuzzing)."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx2

from app.db import asyncpg_dsn

SIA = str(Path(sys.executable).with_name("sia"))


def rows(url: str, query: str, *args: object) -> list[asyncpg.Record]:
    """One query on a connection of its own, from synchronous code (a test beside a live server, make chaos)."""

    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


@contextmanager
def live_server(
    database_url: str, data_dir: Path, *serve_args: str, log: Path | None = None, **env: str
) -> Iterator[str]:
    """serve_args: options of `sia serve`, e.g. "--upgrade", "--demo" (what `make run` passes); log: a file that
    keeps the server's own log (stderr), for a test that reads what it logged."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SIA_PORT": str(port),
        "SIA_DATA_DIR": str(data_dir),
        "SIA_ENV": "test",
        "SIA_ACCESS_LOG": "false",
        # One process unless a test asks for more: its per-process rate-limit counts must not depend on which
        # worker each connection reaches (tests/test_workers.py covers several).
        "SIA_WORKERS": "1",
        **env,
    }
    # A file, not a pipe nobody drains: a test that provokes many logged errors would fill the pipe's 64 KiB
    # and freeze the server in its next write to stderr.
    errors = log.open("w+") if log else tempfile.TemporaryFile("w+")
    process = subprocess.Popen(
        [SIA, "serve", *serve_args], env=environment, stdout=subprocess.DEVNULL, stderr=errors, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if process.poll() is not None:
                errors.seek(0)
                raise AssertionError(errors.read())
            try:
                if httpx2.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        errors.close()
