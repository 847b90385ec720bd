from pathlib import Path

import orjson
import pytest
from sqlalchemy import text

from app import loaders, publicacion
from app.catalogs import catalog_codes
from tests import factories as f


async def _load_registry(connection, tmp_path: Path, patrones=None):
    patrones = patrones or f.patrones()
    return await loaders.load_patrones(connection, f.write_patrones_csv(tmp_path / "patrones.csv", patrones))


async def _snapshot(connection) -> list[tuple]:
    rows = await connection.execute(text("SELECT id, folio, valor_descuento, publicado_en FROM aviso ORDER BY id"))
    return rows.all()


def _bad(records: list[dict], index: int, **changes) -> list[dict]:
    records = [dict(r) for r in records]
    records[index].update(changes)
    return records


# ------------------------------------------------------------------ patrones


async def test_patrones_load_and_reload_changes_nothing(connection, tmp_path):
    patrones = f.patrones(3)
    first = await _load_registry(connection, tmp_path, patrones)
    n_nrps = sum(len(p.nrps) for p in patrones)
    assert (first.nuevos, first.patrones_nuevos, first.existentes) == (n_nrps, 3, 0)
    second = await _load_registry(connection, tmp_path, patrones)
    assert (second.nuevos, second.patrones_nuevos, second.actualizados, second.existentes) == (
        0,
        0,
        0,
        n_nrps,
    )
    assert await connection.scalar(text("SELECT count(*) FROM nrp")) == n_nrps


async def test_patrones_razon_social_is_updated(connection, tmp_path):
    patrones = f.patrones(1)
    await _load_registry(connection, tmp_path, patrones)
    renamed = [patrones[0].__class__(patrones[0].rfc, "Nuevo Nombre, S.A. de C.V.", patrones[0].nrps)]
    report = await _load_registry(connection, tmp_path, renamed)
    assert report.actualizados == 1
    assert await connection.scalar(text("SELECT razon_social FROM patron")) == "Nuevo Nombre, S.A. de C.V."


async def test_patrones_nrp_never_moves_to_another_employer(connection, tmp_path):
    a, b = f.patrones(2)
    await _load_registry(connection, tmp_path, [a])
    stolen = b.__class__(b.rfc, b.razon_social, (a.nrps[0],))
    with pytest.raises(loaders.LoadRejected) as rejected:
        await _load_registry(connection, tmp_path, [stolen])
    [issue] = rejected.value.report.errores
    assert (issue.linea, issue.campo) == (2, "nrp") and a.rfc in issue.motivo


async def test_patrones_bad_rows(connection, tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(
        "rfc,razon_social,nrp\nEKU9003173C9,Escuela Kemper,Y5412345109\nEKU9003173C9,Otra Razón,Y5412345110\n"
        "EKU900317,X,Y5412345111\nSAT970701NN3,,12\n",
        encoding="utf-8",
    )
    with pytest.raises(loaders.LoadRejected) as rejected:
        await loaders.load_patrones(connection, path)
    issues = {(i.linea, i.campo) for i in rejected.value.report.errores}
    assert issues == {(3, "razon_social"), (4, "rfc"), (5, "razon_social"), (5, "nrp")}
    assert await connection.scalar(text("SELECT count(*) FROM patron")) == 0


# ------------------------------------------------------------------ avisos


def _by_employer(records: list[dict]) -> list[dict]:
    """The publication order of a file's avisos: by employer, each one's in file order (the sort is stable)."""
    return sorted(records, key=lambda r: r["rfc_patron"])


async def test_avisos_load_derives_clase_and_reload_changes_nothing(connection, tmp_path):
    await _load_registry(connection, tmp_path)
    records = f.avisos(200)
    path = f.write_ndjson(tmp_path / "avisos.ndjson", records)
    first = await loaders.load_avisos(connection, path, today=f.TODAY)
    assert (first.leidos, first.nuevos, first.existentes, first.errores) == (200, 200, 0, [])
    wrong = await connection.scalar(
        text("SELECT count(*) FROM aviso a JOIN tipo_aviso t ON t.codigo = a.tipo_aviso WHERE t.clase <> a.clase")
    )
    assert wrong == 0
    stored = await connection.execute(
        text("SELECT folio, valor_descuento::text, fecha_emision::text FROM aviso ORDER BY rfc_patron, seq")
    )
    assert [tuple(r) for r in stored] == [
        (r["folio"], r["valor_descuento"], r["fecha_emision"]) for r in _by_employer(records)
    ], "each employer's in file order, values exact"
    before = await _snapshot(connection)
    second = await loaders.load_avisos(connection, path, today=f.TODAY)
    assert (second.nuevos, second.existentes) == (0, 200)
    assert await _snapshot(connection) == before


async def test_csv_and_ndjson_load_the_same(connection, tmp_path):
    await _load_registry(connection, tmp_path)
    records = f.avisos(30)
    report = await loaders.load_avisos(connection, f.write_csv(tmp_path / "a.csv", records), today=f.TODAY)
    assert report.nuevos == 30
    again = await loaders.load_avisos(connection, f.write_ndjson(tmp_path / "a.ndjson", records), today=f.TODAY)
    assert (again.nuevos, again.existentes, again.errores) == (0, 30, [])


async def test_one_bad_nss_stops_the_load_at_its_line_and_names_it(connection, tmp_path):
    await _load_registry(connection, tmp_path)
    records = f.avisos(100)
    nss = records[49]["nss"]
    bad_nss = nss[:10] + str((int(nss[10]) + 1) % 10)
    path = f.write_ndjson(tmp_path / "a.ndjson", _bad(records, 49, nss=bad_nss))
    with pytest.raises(loaders.LoadRejected) as rejected:
        await loaders.load_avisos(connection, path, today=f.TODAY)
    report = rejected.value.report
    [issue] = report.errores
    assert (issue.linea, issue.campo) == (50, "nss")
    assert nss[10] in issue.motivo, "the reason names the expected check digit"
    published = await connection.scalars(text("SELECT folio FROM aviso ORDER BY rfc_patron, seq"))
    assert list(published) == [r["folio"] for r in _by_employer(records[:49])], "the lines before the bad one only"
    assert (report.detenida_en, report.nuevos) == (50, 49)
    fixed = f.write_ndjson(tmp_path / "b.ndjson", records)
    again = await loaders.load_avisos(connection, fixed, today=f.TODAY)
    assert (again.nuevos, again.existentes, again.detenida_en) == (51, 49, None), "the fixed file loads the rest"


async def test_a_bad_row_in_a_later_chunk_stops_there_and_every_bad_row_is_still_reported(
    connection, tmp_path, monkeypatch
):
    monkeypatch.setattr(publicacion, "CHUNK_ROWS", 10)
    await _load_registry(connection, tmp_path)
    records = f.avisos(40)
    records = _bad(records, 14, curp="XXXX")  # line 15, in the second chunk
    records = _bad(records, 36, nss="123")  # line 37, in the fourth
    records = _bad(records, 37, nrp="Y9912345109")  # line 38: a check made in the database
    path = f.write_ndjson(tmp_path / "a.ndjson", records)
    with pytest.raises(loaders.LoadRejected) as rejected:
        await loaders.load_avisos(connection, path, today=f.TODAY)
    report = rejected.value.report
    assert [(e.linea, e.campo) for e in report.errores] == [(15, "curp"), (37, "nss"), (38, "nrp")]
    assert (report.detenida_en, report.nuevos, report.leidos) == (15, 14, 40)
    assert await connection.scalar(text("SELECT count(*) FROM aviso")) == 14


async def test_skip_invalid_loads_good_rows_and_writes_rejects(connection, tmp_path):
    await _load_registry(connection, tmp_path)
    records = _bad(f.avisos(20), 4, curp="XXXX")
    path = f.write_csv(tmp_path / "a.csv", records)
    report = await loaders.load_avisos(connection, path, skip_invalid=True, today=f.TODAY)
    assert (report.nuevos, report.lineas_rechazadas) == (19, {6})  # line 1 is the header
    assert report.segundos_validacion > 0 and report.segundos_base_de_datos > 0, "both parts are timed"
    rejects = tmp_path / "rechazos.csv"
    assert loaders.write_rejects(path, report.lineas_rechazadas, rejects) == 1
    lines = rejects.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("folio,") and records[4]["folio"] in lines[1] and len(lines) == 2


async def test_published_folio_with_other_content_is_refused(connection, tmp_path):
    await _load_registry(connection, tmp_path)
    records = f.avisos(10)
    await loaders.load_avisos(connection, f.write_ndjson(tmp_path / "a.ndjson", records), today=f.TODAY)
    changed = _bad(records, 3, valor_descuento="99.1234")
    with pytest.raises(loaders.LoadRejected) as rejected:
        await loaders.load_avisos(connection, f.write_ndjson(tmp_path / "b.ndjson", changed), today=f.TODAY)
    [issue] = rejected.value.report.errores
    assert issue.linea == 4 and "valor_descuento" in issue.motivo and "folio nuevo" in issue.motivo
    stored = await connection.scalar(
        text("SELECT valor_descuento::text FROM aviso WHERE folio = :f"), {"f": records[3]["folio"]}
    )
    assert stored == records[3]["valor_descuento"]


async def test_same_folio_twice_in_a_file(connection, tmp_path):
    await _load_registry(connection, tmp_path)
    records = f.avisos(5)
    identical = [*records, records[0]]
    report = await loaders.load_avisos(connection, f.write_ndjson(tmp_path / "a.ndjson", identical), today=f.TODAY)
    assert (report.nuevos, report.errores) == (5, [])
    differing = [*records, {**records[1], "nombre_trabajador": "OTRO NOMBRE"}]
    await connection.execute(text("DELETE FROM aviso"))
    with pytest.raises(loaders.LoadRejected) as rejected:
        await loaders.load_avisos(connection, f.write_ndjson(tmp_path / "b.ndjson", differing), today=f.TODAY)
    assert rejected.value.report.lineas_rechazadas == {2, 6}


async def test_a_folio_repeated_in_a_later_chunk_finds_itself_published(connection, tmp_path, monkeypatch):
    """Chunks are checked one at a time: the same folio again in a later chunk is what the file already
    published, skipped when its content is the same and refused when it differs."""
    monkeypatch.setattr(publicacion, "CHUNK_ROWS", 3)
    await _load_registry(connection, tmp_path)
    records = f.avisos(5)
    same = [*records, records[0]]
    report = await loaders.load_avisos(connection, f.write_ndjson(tmp_path / "a.ndjson", same), today=f.TODAY)
    assert (report.nuevos, report.existentes, report.errores) == (5, 1, [])
    await connection.execute(text("DELETE FROM aviso"))
    differing = [*records, {**records[0], "nombre_trabajador": "OTRO NOMBRE"}]
    with pytest.raises(loaders.LoadRejected) as rejected:
        await loaders.load_avisos(connection, f.write_ndjson(tmp_path / "b.ndjson", differing), today=f.TODAY)
    [issue] = rejected.value.report.errores
    assert (issue.linea, issue.campo) == (6, "folio") and "ya está publicado con otro contenido" in issue.motivo
    assert await connection.scalar(text("SELECT count(*) FROM aviso")) == 5


async def test_after_a_stop_a_folio_repeated_with_other_content_in_a_later_chunk_is_still_reported(
    connection, tmp_path, monkeypatch
):
    monkeypatch.setattr(publicacion, "CHUNK_ROWS", 3)
    await _load_registry(connection, tmp_path)
    records = _bad(f.avisos(9), 1, nss="123")  # line 2: the load stops there
    records[6] = {**records[3], "nombre_trabajador": "OTRO NOMBRE"}  # line 7 repeats line 4's folio, in chunk 3
    path = f.write_ndjson(tmp_path / "a.ndjson", records)
    with pytest.raises(loaders.LoadRejected) as rejected:
        await loaders.load_avisos(connection, path, today=f.TODAY)
    report = rejected.value.report
    assert [(e.linea, e.campo) for e in report.errores] == [(2, "nss"), (7, "folio")]
    assert "aparece con contenido distinto en las líneas [4, 7]" in report.errores[1].motivo
    assert (report.detenida_en, report.nuevos) == (2, 1)


async def test_nrp_must_be_registered_and_belong_to_the_employer(connection, tmp_path):
    a, b = f.patrones(2)
    await _load_registry(connection, tmp_path, [a, b])
    records = f.avisos(4, [a])
    records = _bad(records, 0, nrp="Y9912345109")
    records = _bad(records, 1, nrp=b.nrps[0])
    with pytest.raises(loaders.LoadRejected) as rejected:
        await loaders.load_avisos(connection, f.write_ndjson(tmp_path / "a.ndjson", records), today=f.TODAY)
    motivos = {i.linea: i.motivo for i in rejected.value.report.errores}
    assert "no está en el padrón" in motivos[1]
    assert f"pertenece al patrón {b.rfc}" in motivos[2]


async def test_every_bad_field_of_a_row_is_reported(connection, tmp_path):
    await _load_registry(connection, tmp_path)
    [record] = f.avisos(1)
    record.update(
        tipo_aviso="99",
        valor_descuento="20.5",
        fecha_emision="2026-02-30",
        tipo_descuento="9",
        rfc_trabajador="abc",
    )
    record["valor_descuento"] = 20.5  # a JSON number: amounts must be exact strings
    with pytest.raises(loaders.LoadRejected) as rejected:
        await loaders.load_avisos(connection, f.write_ndjson(tmp_path / "a.ndjson", [record]), today=f.TODAY)
    campos = {i.campo for i in rejected.value.report.errores}
    assert campos == {"valor_descuento"}, "type errors are reported before field checks"
    record["valor_descuento"] = "20.5"
    with pytest.raises(loaders.LoadRejected) as rejected:
        await loaders.load_avisos(connection, f.write_ndjson(tmp_path / "a.ndjson", [record]), today=f.TODAY)
    campos = {i.campo for i in rejected.value.report.errores}
    assert campos == {"tipo_aviso", "fecha_emision", "tipo_descuento", "rfc_trabajador"}


async def test_future_and_unparseable_lines(connection, tmp_path):
    await _load_registry(connection, tmp_path)
    records = _bad(f.avisos(2), 0, fecha_emision="2026-12-01")
    path = f.write_ndjson(tmp_path / "a.ndjson", records)
    with path.open("ab") as out:
        out.write(b"{not json\n[1,2]\n" + b'{"folio": "X"}\n')
    with pytest.raises(loaders.LoadRejected) as rejected:
        await loaders.load_avisos(connection, path, today=f.TODAY)
    by_line = {}
    for issue in rejected.value.report.errores:
        by_line.setdefault(issue.linea, []).append(issue)
    assert by_line[1][0].campo == "fecha_emision"
    assert "JSON" in by_line[3][0].motivo and "objeto" in by_line[4][0].motivo
    assert {i.campo for i in by_line[5]} >= {"nss", "curp"} and all("falta" in i.motivo for i in by_line[5])


async def test_wrong_header_or_extension_refuses_the_file(connection, tmp_path):
    bad_header = tmp_path / "a.csv"
    bad_header.write_text("folio,nss\n1,2\n", encoding="utf-8")
    with pytest.raises(loaders.FileFormatError, match="faltan: tipo_aviso"):
        await loaders.load_avisos(connection, bad_header, today=f.TODAY)
    with pytest.raises(loaders.FileFormatError, match="formato desconocido"):
        await loaders.load_avisos(connection, tmp_path / "a.xlsx", today=f.TODAY)


async def test_load_writes_an_audit_event(connection, tmp_path):
    await _load_registry(connection, tmp_path)
    await loaders.load_avisos(connection, f.write_ndjson(tmp_path / "a.ndjson", f.avisos(3)), today=f.TODAY)
    row = (
        await connection.execute(
            text("SELECT actor, cantidad, detalle FROM evento_auditoria WHERE accion = 'carga.avisos'")
        )
    ).one()
    assert row.actor == "operador" and row.cantidad == 3 and row.detalle["archivo"] == "a.ndjson"
    assert row.detalle["detenida_en_linea"] is None


async def test_a_stopped_load_is_audited_with_what_it_published(connection, tmp_path):
    await _load_registry(connection, tmp_path)
    path = f.write_ndjson(tmp_path / "a.ndjson", _bad(f.avisos(5), 2, nss="123"))
    with pytest.raises(loaders.LoadRejected):
        await loaders.load_avisos(connection, path, today=f.TODAY)
    row = (
        await connection.execute(text("SELECT cantidad, detalle FROM evento_auditoria WHERE accion = 'carga.avisos'"))
    ).one()
    assert (row.cantidad, row.detalle["detenida_en_linea"], row.detalle["rechazados"]) == (2, 3, 1)


async def test_names_with_backslashes_load_as_they_are(connection, tmp_path):
    """Avisos reach the table by COPY's text format, where a backslash escapes: a name may hold one (a control
    character it may not), and `\\N` would be NULL."""
    await _load_registry(connection, tmp_path)
    names = ["PÉREZ \\ MUÑOZ", "\\N", "\\", "O\\'BRIEN \\t \\n \\\\"]
    records = [dict(r, nombre_trabajador=n) for r, n in zip(f.avisos(len(names)), names, strict=True)]
    report = await loaders.load_avisos(connection, f.write_ndjson(tmp_path / "a.ndjson", records), today=f.TODAY)
    assert report.nuevos == len(names)
    stored = dict((await connection.execute(text("SELECT folio, nombre_trabajador FROM aviso"))).all())
    assert [stored[r["folio"]] for r in records] == names


async def test_registry_issues_keep_their_place_after_a_lines_field_issues(connection, tmp_path):
    """The NRP is checked against the padrón once per chunk, after the per-row checks; its issues still come in
    line order, after the same line's field issues, and rows with field issues are checked too."""
    a, b = f.patrones(2)
    await _load_registry(connection, tmp_path, [a, b])
    records = f.avisos(5, [a])
    records = _bad(records, 1, nrp="Y9912345109", tipo_aviso="99")
    records = _bad(records, 3, nrp=b.nrps[0])
    records = _bad(records, 4, tipo_aviso="99")
    with pytest.raises(loaders.LoadRejected) as rejected:
        await loaders.load_avisos(connection, f.write_ndjson(tmp_path / "a.ndjson", records), today=f.TODAY)
    issues = rejected.value.report.errores
    assert [(i.linea, i.campo) for i in issues] == [(2, "tipo_aviso"), (2, "nrp"), (4, "nrp"), (5, "tipo_aviso")]
    assert "no está en el padrón" in issues[1].motivo and f"pertenece al patrón {b.rfc}" in issues[2].motivo


# ------------------------------------------------------------------ the common path and its explanation

_ONE_FIELD_WRONG = [
    {"folio": "abc"},
    {"nss": "1234567890"},
    {"curp": "gode561231hdfrrn09"},
    {"numero_credito": "12"},
    {"nrp": "Y0402345109"},
    {"rfc_patron": "abc"},
    {"rfc_trabajador": "GODE561331AB1"},
    {"tipo_aviso": "99"},
    {"tipo_credito": "99"},
    {"estatus_credito": "99"},
    {"tipo_descuento": "9"},
    {"fecha_emision": "2026-02-30"},
    {"fecha_emision": "2026-11-25"},
    {"fecha_inicio_descuento": "1971-12-31"},
    {"valor_descuento": "20.12345"},
    {"valor_descuento": "1e3"},
    {"valor_descuento": "-1"},
    {"valor_descuento": "٢٠.٥"},  # Arabic-Indic digits: Python reads 20.5, PostgreSQL refuses them
    {"fecha_emision": "٢٠٢٦-٠١-٠١"},
    {"tipo_descuento": "1", "valor_descuento": "100.0001"},
    {"nombre_trabajador": ""},
    {"nombre_trabajador": " "},
    {"nombre_trabajador": "\u00a0"},
    {"nombre_trabajador": "X" * (loaders.MAX_NOMBRE + 1)},
    {"nombre_trabajador": "A\nB"},
]


async def test_the_common_path_accepts_only_what_the_detailed_checks_accept(connection):
    """_validate_aviso takes a quick path through the checks that every row passes and leaves the failures to
    _explain_aviso; each check is tried here with one field wrong, after the record's good values were seen (the
    identifier checks remember the values that passed), and must give exactly the detailed answer."""
    ctx = loaders._Context(f.TODAY, await catalog_codes(connection))
    good = f.avisos(20)
    for record in good:
        assert loaders._validate_aviso(record, ctx) == loaders._explain_aviso(record, ctx) == ([], [])
    nss, curp = good[0]["nss"], good[0]["curp"]
    wrong_digits = [
        {"nss": nss[:10] + str((int(nss[10]) + 1) % 10)},
        {"curp": curp[:17] + str((int(curp[17]) + 1) % 10)},
    ]
    for changes in _ONE_FIELD_WRONG + wrong_digits:
        record = {**good[1], **changes}
        errors, warnings = loaders._validate_aviso(record, ctx)
        assert errors, f"{changes} accepted"
        assert (errors, warnings) == loaders._explain_aviso(record, ctx), changes
    rfc = good[1]["rfc_trabajador"]
    warned = {**good[1], "rfc_trabajador": rfc[:-1] + ("0" if rfc[-1] != "0" else "1")}
    errors, warnings = loaders._validate_aviso(warned, ctx)
    assert not errors and [c for c, _ in warnings] == ["rfc_trabajador"]
    assert (errors, warnings) == loaders._explain_aviso(warned, ctx)


async def test_ndjson_lines_read_as_bytes_keep_their_text_answers(connection, tmp_path):
    """Lines are parsed from their bytes; a BOM, a blank line (Unicode spaces included) and undecodable bytes still
    get the answers they got as text."""
    await _load_registry(connection, tmp_path)
    first, second = (orjson.dumps(r) for r in f.avisos(2))
    undecodable = second.replace(b'"nombre_trabajador":"', b'"nombre_trabajador":"\xff')
    path = tmp_path / "a.ndjson"
    path.write_bytes(b"\xef\xbb\xbf" + first + b"\n\n \xc2\xa0\n" + undecodable + b"\n{not json\n")
    with pytest.raises(loaders.LoadRejected) as rejected:
        await loaders.load_avisos(connection, path, today=f.TODAY)
    report = rejected.value.report
    assert report.leidos == 3
    assert [(i.linea, i.campo, i.motivo) for i in report.errores] == [
        (4, "nombre_trabajador", "el texto no está en UTF-8 válido"),
        (5, "*", "la línea no es JSON válido"),
    ]
