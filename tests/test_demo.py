"""The synthetic data generator: deterministic, valid identifiers, the shape the loaders expect."""

import csv
import datetime as dt
import hashlib
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from app.demo import (
    CLASE_POR_TIPO_AVISO,
    _Trabajadores,
    demo_avisos,
    demo_patrones,
    inicio_periodo,
    write_demo_files,
)
from app.identifiers import (
    check_curp,
    check_folio,
    check_nrp,
    check_nss,
    check_numero_credito,
    check_rfc,
    rfc_warning,
)

HASTA = dt.date(2026, 3, 15)
KEYS = (
    "folio",
    "tipo_aviso",
    "rfc_patron",
    "nrp",
    "nss",
    "rfc_trabajador",
    "curp",
    "nombre_trabajador",
    "numero_credito",
    "tipo_credito",
    "estatus_credito",
    "tipo_descuento",
    "valor_descuento",
    "fecha_emision",
    "fecha_inicio_descuento",
)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def patrones():
    return demo_patrones(4, seed=2026)


@pytest.fixture(scope="module")
def avisos(patrones):
    return list(demo_avisos(patrones, 6000, seed=2026, hasta=HASTA))


def _digest(folder: Path) -> tuple[bytes, bytes]:
    return (folder / "patrones.csv").read_bytes(), (folder / "avisos.ndjson").read_bytes()


# ---------------------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes(tmp_path):
    a = write_demo_files(tmp_path / "a", avisos=2000, patrones=3, seed=7, hasta=HASTA)
    write_demo_files(tmp_path / "b", avisos=2000, patrones=3, seed=7, hasta=HASTA)
    assert [p.name for p in a] == ["patrones.csv", "avisos.ndjson"]
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def test_different_seed_different_files(tmp_path):
    write_demo_files(tmp_path / "a", avisos=500, patrones=3, seed=7, hasta=HASTA)
    write_demo_files(tmp_path / "b", avisos=500, patrones=3, seed=8, hasta=HASTA)
    patrones_a, avisos_a = _digest(tmp_path / "a")
    patrones_b, avisos_b = _digest(tmp_path / "b")
    assert patrones_a != patrones_b
    assert avisos_a != avisos_b


def test_deterministic_across_processes(tmp_path):
    # Guards against anything that depends on str hashing (set order), which changes per process.
    script = (
        "import datetime, hashlib, sys\n"
        "from pathlib import Path\n"
        "from app.demo import write_demo_files\n"
        "paths = write_demo_files(Path(sys.argv[1]), avisos=300, patrones=5, seed=11,"
        " hasta=datetime.date(2026, 3, 15))\n"
        "print(hashlib.sha256(b''.join(p.read_bytes() for p in paths)).hexdigest())\n"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / hash_seed)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        digests.add(out.stdout.strip())
    paths = write_demo_files(tmp_path / "here", avisos=300, patrones=5, seed=11, hasta=HASTA)
    digests.add(hashlib.sha256(b"".join(p.read_bytes() for p in paths)).hexdigest())
    assert len(digests) == 1


# ------------------------------------------------------------------------------------------- patrones


def test_first_patron_does_not_depend_on_count():
    first = demo_patrones(1, seed=2026)[0]
    assert demo_patrones(4, seed=2026)[0] == first
    assert demo_patrones(40, seed=2026)[0] == first
    assert demo_patrones(4, seed=2027)[0] != first


def test_patrones_are_valid_and_unique():
    patrones = demo_patrones(40, seed=2026)
    assert len(patrones) == 40
    assert len({p.rfc for p in patrones}) == 40
    assert len({p.razon_social for p in patrones}) == 40
    nrps = [nrp for p in patrones for nrp in p.nrps]
    assert len(nrps) == len(set(nrps))
    for p in patrones:
        assert len(p.rfc) == 12  # persona moral
        assert check_rfc(p.rfc) == p.rfc
        assert rfc_warning(p.rfc) is None
        assert 2 <= len(p.nrps) <= 4
        for nrp in p.nrps:
            assert check_nrp(nrp) == nrp
        assert re.fullmatch(r"[^,]+, S\.[^,]*", p.razon_social), p.razon_social
    # More patrones than names: the names repeat with a number.
    assert any(re.search(r" \d+, ", p.razon_social) for p in patrones)


def test_patrones_csv(tmp_path):
    patrones_csv, _ = write_demo_files(tmp_path, avisos=10, patrones=4, seed=2026, hasta=HASTA)
    with patrones_csv.open(encoding="utf-8", newline="") as f:
        assert f.readline() == "rfc,razon_social,nrp\n"
        f.seek(0)
        rows = list(csv.DictReader(f))
    expected = [(p.rfc, p.razon_social, nrp) for p in demo_patrones(4, seed=2026) for nrp in p.nrps]
    assert [(r["rfc"], r["razon_social"], r["nrp"]) for r in rows] == expected


# --------------------------------------------------------------------------------------------- avisos


def test_avisos_ndjson(tmp_path):
    _, avisos_ndjson = write_demo_files(tmp_path, avisos=250, patrones=2, seed=2026, hasta=HASTA)
    lines = avisos_ndjson.read_bytes().splitlines()
    assert len(lines) == 250
    first = orjson.loads(lines[0])
    assert tuple(first) == KEYS
    assert first == next(demo_avisos(demo_patrones(2, seed=2026), 250, seed=2026, hasta=HASTA))


def test_aviso_shape(avisos):
    assert len(avisos) == 6000
    for a in avisos:
        assert tuple(a) == KEYS
        assert all(type(v) is str for v in a.values())


def test_identifiers_are_valid(avisos, patrones):
    registry = {nrp: p.rfc for p in patrones for nrp in p.nrps}
    for a in avisos:
        assert check_folio(a["folio"])
        assert check_nss(a["nss"])
        assert check_curp(a["curp"])
        assert check_numero_credito(a["numero_credito"])
        assert check_nrp(a["nrp"])
        for field in ("rfc_patron", "rfc_trabajador"):
            assert check_rfc(a[field])
            assert rfc_warning(a[field]) is None, a[field]
        assert len(a["rfc_trabajador"]) == 13  # persona física
        assert registry[a["nrp"]] == a["rfc_patron"]


def test_worker_identity_is_consistent(avisos):
    by_nss: dict[str, tuple[str, ...]] = {}
    for a in avisos:
        worker = (a["rfc_trabajador"], a["curp"], a["nombre_trabajador"], a["numero_credito"])
        assert by_nss.setdefault(a["nss"], worker) == worker
        rfc, curp = a["rfc_trabajador"], a["curp"]
        assert curp[4:10] == rfc[4:10]  # same birth date
        assert curp[10] in "HM"
        assert curp[0] == rfc[0]
        assert re.fullmatch(r"[A-ZÑ]+( [A-ZÑ]+){2,}", a["nombre_trabajador"])
    assert len({a["curp"] for a in avisos}) == len(by_nss)
    assert len(by_nss) < len(avisos)  # workers get several avisos


def test_offensive_prefixes_are_replaced():
    workers = _Trabajadores(2026, HASTA)
    drawn = [workers.nuevo() for _ in range(20_000)]
    # Where the SAT and RENAPO put their X differently, the RFC and CURP prefixes differ.
    replaced = [(rfc, curp) for _, rfc, curp, *_ in drawn if rfc[:4] != curp[:4]]
    assert replaced
    for rfc, curp in replaced:
        assert check_rfc(rfc) and rfc_warning(rfc) is None
        assert check_curp(curp)


def test_folios_unique_and_dated(avisos):
    folios = [a["folio"] for a in avisos]
    assert len(set(folios)) == len(folios)
    assert folios == sorted(folios)
    for a in avisos:
        assert a["folio"][:4] == a["fecha_emision"][:4]


@pytest.mark.parametrize("count", [3, 6000])
def test_every_clase_present(patrones, count):
    tipos = Counter(a["tipo_aviso"] for a in demo_avisos(patrones, count, seed=2026, hasta=HASTA))
    assert set(tipos) <= set(CLASE_POR_TIPO_AVISO)
    assert {CLASE_POR_TIPO_AVISO[t] for t in tipos} == {"retencion", "modificacion", "suspension"}
    assert "10" in tipos


def test_mix(avisos, patrones):
    clases = Counter(CLASE_POR_TIPO_AVISO[a["tipo_aviso"]] for a in avisos)
    assert clases["retencion"] > clases["modificacion"] > clases["suspension"]
    assert set(Counter(a["tipo_aviso"] for a in avisos)) == set(CLASE_POR_TIPO_AVISO)
    assert {a["tipo_credito"] for a in avisos} == {"01", "02", "03", "04", "05"}
    estatus = Counter(a["estatus_credito"] for a in avisos)
    assert set(estatus) == {"VIG", "LIQ", "CAN", "PRO"}
    assert estatus["VIG"] > len(avisos) / 2
    share = sum(a["rfc_patron"] == patrones[0].rfc for a in avisos) / len(avisos)
    assert 0.35 < share < 0.45
    assert {a["nrp"] for a in avisos} == {nrp for p in patrones for nrp in p.nrps}


def test_valor_descuento(avisos):
    limits = {"1": (5, 30), "2": (200, 5000), "3": (5, 40)}
    assert {a["tipo_descuento"] for a in avisos} == set(limits)
    for a in avisos:
        assert re.fullmatch(r"[0-9]+\.[0-9]{4}", a["valor_descuento"]), a["valor_descuento"]
        low, high = limits[a["tipo_descuento"]]
        assert low <= float(a["valor_descuento"]) <= high


@pytest.mark.parametrize(
    ("hasta", "desde"),
    [
        (dt.date(2026, 3, 15), dt.date(2025, 5, 1)),
        (dt.date(2026, 1, 1), dt.date(2025, 3, 1)),
        (dt.date(2025, 12, 31), dt.date(2025, 1, 1)),
        (dt.date(2026, 2, 28), dt.date(2025, 3, 1)),
    ],
)
def test_dates_cover_the_six_bimesters_up_to_hasta(patrones, hasta, desde):
    assert inicio_periodo(hasta) == desde
    avisos = list(demo_avisos(patrones, 1200, seed=2026, hasta=hasta))
    bimestres = set()
    for a in avisos:
        emision = dt.date.fromisoformat(a["fecha_emision"])
        assert desde <= emision <= hasta
        assert dt.date.fromisoformat(a["fecha_inicio_descuento"]) == emision + dt.timedelta(days=1)
        bimestres.add((emision.year, (emision.month + 1) // 2))
    assert len(bimestres) == 6
    fechas = [a["fecha_emision"] for a in avisos]
    assert fechas == sorted(fechas)
    assert fechas[0] == desde.isoformat()
