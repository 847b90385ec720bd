"""Small valid data sets for tests, from the demo generator (valid identifiers, known catalogs)."""

import csv
import datetime as dt
from pathlib import Path

import orjson

from app.demo import DemoPatron, demo_avisos, demo_patrones

HASTA = dt.date(2026, 11, 1)
TODAY = dt.date(2026, 11, 24)


def patrones(count: int = 2) -> list[DemoPatron]:
    return demo_patrones(count)


def avisos(count: int, patrones_: list[DemoPatron] | None = None, seed: int = 7) -> list[dict[str, str]]:
    return list(demo_avisos(patrones_ or patrones(), count, seed=seed, hasta=HASTA))


def write_patrones_csv(path: Path, patrones_: list[DemoPatron]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["rfc", "razon_social", "nrp"])
        for p in patrones_:
            for nrp in p.nrps:
                writer.writerow([p.rfc, p.razon_social, nrp])
    return path


def write_ndjson(path: Path, records: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def write_csv(path: Path, records: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    return path
