"""The short form of one `make chaos` scenario (bench/chaos.py): a load killed with -9 while it checks or
publishes, then run again, ends with exactly the file's rows, none twice; the killed load's backend does not
block the re-run for long. The rest of the suite runs minutes and stays out of `make test`."""

import datetime as dt

import pytest

from app.demo import write_demo_files
from bench import chaos


@pytest.fixture
def registered(new_database, tmp_path) -> str:
    """A database with the demo employer registered, as `make run` leaves it, and nothing else."""
    url = new_database()
    patrones, _ = write_demo_files(tmp_path / "demo", avisos=1, patrones=4, hasta=dt.date.today())
    assert chaos.sia_load(url, tmp_path, patrones, "patrones").wait(120) == 0
    return url


@pytest.mark.slow
@pytest.mark.parametrize(("phase", "pattern"), [("comprobando", chaos.CHECKING), ("publicando", chaos.PUBLISHING)])
def test_a_load_killed_with_minus_9_then_run_again_leaves_the_files_rows_once(registered, tmp_path, phase, pattern):
    row = chaos.kill_load(registered, tmp_path, 25_000, phase, pattern, seed=43)
    assert row.ok, row.figures
    assert "fase vista" in row.figures and "0 duplicadas" in row.figures
