"""The pool's wait for a connection (app/db.py, QueueingPool): a burst larger than the pool waits its turn while
connections keep coming back; a pool that stops moving (the database stuck) still answers at once, and no wait in
line is unbounded. Against the suite's PostgreSQL: the holds are real statements."""

import asyncio
import time

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from app.db import Database, Timeouts


async def _hold(database: Database, seconds: float) -> None:
    async with database.engine.connect() as conn:
        await conn.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})


def _database(url: str, **timeouts: float) -> Database:
    return Database.connect(url, pool_size=1, max_overflow=0, timeouts=Timeouts(**timeouts))


async def test_a_burst_larger_than_the_pool_waits_its_turn(database_url):
    # One connection, twenty requests of 0.1 s: the last waits ~2 s in line, four times the pool timeout, while
    # the pool returns a connection every 0.1 s. A plain pool timeout answered most of them 503.
    database = _database(database_url, pool=0.5, pool_queue=10)
    try:
        started = time.monotonic()
        await asyncio.gather(*(_hold(database, 0.1) for _ in range(20)))
        assert time.monotonic() - started >= 1.9
    finally:
        await database.dispose()


async def test_a_pool_that_stops_moving_answers_within_its_timeout(database_url):
    database = _database(database_url, pool=0.3, pool_queue=10)
    try:
        stuck = asyncio.create_task(_hold(database, 3))
        await asyncio.sleep(0.2)  # the only connection is taken, and stays taken
        started = time.monotonic()
        with pytest.raises(sa_exc.TimeoutError):
            await _hold(database, 0)
        assert time.monotonic() - started < 1.5  # the pool timeout, not the 3 s hold nor the 10 s queue bound
        await stuck
    finally:
        await database.dispose()


async def test_no_wait_in_line_outlasts_its_bound(database_url):
    database = _database(database_url, pool=0.3, pool_queue=0.5)
    try:
        outcomes = await asyncio.gather(*(_hold(database, 0.1) for _ in range(12)), return_exceptions=True)
        refused = [o for o in outcomes if isinstance(o, sa_exc.TimeoutError)]
        assert refused and all(o is None or isinstance(o, sa_exc.TimeoutError) for o in outcomes)
    finally:
        await database.dispose()
