"""Each aviso's JSON, rendered once when it is written: a STORED generated column

Revision ID: 20261203_json
Revises: 20261202_seq
Create Date: 2026-12-03 01:00:00

Avisos are immutable, so the JSON the API serves for one is rendered once, by PostgreSQL, when the row is
written, and a page relays those bytes (app/avisos/stream.py) instead of formatting every row on every read.
A generated column, not a value the publisher computes: every writer (loader, sandbox, bench, an UPDATE in
SQL) keeps it equal to the columns, with no code path that can forget it.

The bytes are exactly what the API served before: keys in API order, no spaces, every field a JSON string;
text escaped by to_json (the same escapes orjson writes: \\" \\\\ \\b \\f \\n \\r \\t and \\u00XX for other
control characters; non-ASCII, U+2028 included, as UTF-8); amounts as numeric's exact text; dates and the
publication instant through to_char with explicit formats, in UTC. Nothing depends on the session's
DateStyle, TimeZone or locale, which is what lets the function be IMMUTABLE; a format with a
locale-dependent part would not be, and would have to be rendered by the publisher instead.

ADD COLUMN ... STORED rewrites each table, filling the existing rows, under an ACCESS EXCLUSIVE lock
(minutes on 10M avisos; ~480 bytes more per row, which pglz does not compress).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261203_json"
down_revision: str | None = "20261202_seq"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The fields in API order (app/models/aviso.py CAMPOS_AVISO), frozen here as this revision renders them.
_TEXT = (
    "folio",
    "tipo_aviso",
    "clase",
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
)
_RENDERED = {
    "valor_descuento": ("numeric", "'\"' || valor_descuento::text || '\"'"),
    "fecha_emision": ("date", "'\"' || to_char(fecha_emision, 'YYYY-MM-DD') || '\"'"),
    "fecha_inicio_descuento": ("date", "'\"' || to_char(fecha_inicio_descuento, 'YYYY-MM-DD') || '\"'"),
    "publicado_en": (
        "timestamptz",
        "'\"' || to_char(publicado_en AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') || '\"'",
    ),
}
_FIELDS = (*_TEXT, *_RENDERED)
_ARGUMENTS = ", ".join([f"{c} text" for c in _TEXT] + [f"{c} {t}" for c, (t, _) in _RENDERED.items()])
_BODY = " || ',' || ".join(
    f"'\"{c}\":' || " + (f"to_json({c})::text" if c in _TEXT else _RENDERED[c][1]) for c in _FIELDS
)
_FUNCTION = f"""
CREATE FUNCTION aviso_json({_ARGUMENTS}) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT '{{' || {_BODY} || '}}' $$
"""
_CALL = f"aviso_json({', '.join(_FIELDS)})"


def upgrade() -> None:
    op.execute(_FUNCTION)
    for table in ("aviso", "sandbox_aviso"):
        op.execute(f"ALTER TABLE {table} ADD COLUMN json text GENERATED ALWAYS AS ({_CALL}) STORED NOT NULL")


def downgrade() -> None:
    for table in ("aviso", "sandbox_aviso"):
        op.drop_column(table, "json")
    op.execute(f"DROP FUNCTION aviso_json({_ARGUMENTS})")
