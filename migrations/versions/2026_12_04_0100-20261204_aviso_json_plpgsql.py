"""aviso_json in PL/pgSQL: the same expression, a third of the cost per row written

Revision ID: 20261204_json_plpgsql
Revises: 20261203_json
Create Date: 2026-12-04 01:00:00

The SQL-language aviso_json (20261203_json) is never inlined: its body uses to_json and to_char, which are
STABLE, inside a function declared IMMUTABLE. So every aviso written ran it through the SQL-function
executor, ~3/4 of the cost of inserting a row (a load's INSERT: ~73 µs per row against ~17 µs for the same
INSERT into a table without the column, on a busy 2-core machine). PL/pgSQL evaluates the same expression
through its cached simple-expression path: ~3.3× cheaper per call.

Only the language changes: the expression is read back from the catalog, so it stays defined in one place
(20261203_json), and its output is byte for byte the same, which is why the stored column needs no rewrite.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261204_json_plpgsql"
down_revision: str | None = "20261203_json"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTION = "SELECT prosrc, pg_get_function_arguments(oid) FROM pg_proc WHERE proname = 'aviso_json'"
_ATTRIBUTES = "RETURNS text IMMUTABLE STRICT PARALLEL SAFE"


def _replace(language: str, wrap: str, unwrap: str) -> None:
    bind = op.get_bind()
    source, arguments = bind.execute(sa.text(_FUNCTION)).one()
    expression = bind.execute(sa.text(f"SELECT {unwrap}"), {"s": source}).scalar_one()
    if expression is None:  # not the body this revision expects: stop rather than write a broken function
        raise RuntimeError(f"aviso_json has an unexpected body: {source!r}")
    body = wrap.format(expression=expression)
    # Dollar-quoted: the body is full of quotes; it cannot contain $f$ (its own text has no dollar sign).
    op.execute(f"CREATE OR REPLACE FUNCTION aviso_json({arguments}) {_ATTRIBUTES} LANGUAGE {language} AS $f${body}$f$")


def upgrade() -> None:
    _replace("plpgsql", "BEGIN RETURN {expression}; END", r"substring(:s from '^\s*SELECT\s+(.*\S)\s*$')")


def downgrade() -> None:
    _replace("sql", " SELECT {expression} ", r"substring(:s from '^\s*BEGIN\s+RETURN\s+(.*\S)\s*;\s*END\s*$')")
