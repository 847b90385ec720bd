"""Per-employer publication sequence (no database-wide horizon); aviso references checked per statement

Revision ID: 20261202_seq
Revises: 20261201_llaves
Create Date: 2026-12-02 01:00:00

Publication order becomes (rfc_patron, seq), assigned under a per-employer lock (app/publicacion.py), in
place of (publicacion_xid, id) read below the oldest running transaction. Existing rows keep their order.

The six row-level foreign-key triggers of `aviso` (~51 µs of PostgreSQL per row, 65 % of a load's INSERT)
become one statement-level trigger over the transition table that checks and locks (FOR KEY SHARE, as a
foreign key does) the distinct referenced keys of the whole statement, plus guards on the referenced tables
that refuse to delete, re-key or truncate a row an aviso still references.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261202_seq"
down_revision: str | None = "20261201_llaves"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (aviso column, referenced table, referenced key), as the dropped foreign keys were.
REFERENCES = (
    ("tipo_aviso", "tipo_aviso", "codigo"),
    ("rfc_patron", "patron", "rfc"),
    ("nrp", "nrp", "nrp"),
    ("tipo_credito", "tipo_credito", "codigo"),
    ("estatus_credito", "estatus_credito", "codigo"),
    ("tipo_descuento", "tipo_descuento", "codigo"),
)

_CHECK_FUNCTION = """
CREATE FUNCTION aviso_check_references() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ref record;
    keys text[];
    found bigint;
    missing text;
BEGIN
    FOR ref IN SELECT * FROM (VALUES {values}) AS r(col, tab, key) LOOP
        EXECUTE format('SELECT array_agg(DISTINCT %I) FROM nuevos', ref.col) INTO keys;
        CONTINUE WHEN keys IS NULL;
        -- FOR KEY SHARE, as a foreign key check: a concurrent delete of the row waits for this transaction.
        EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM %I WHERE %I = ANY($1) FOR KEY SHARE) AS x',
                       ref.tab, ref.key) INTO found USING keys;
        IF found < cardinality(keys) THEN
            EXECUTE format('SELECT v FROM unnest($1) AS v WHERE NOT EXISTS (SELECT 1 FROM %I WHERE %I = v) LIMIT 1',
                           ref.tab, ref.key) INTO missing USING keys;
            RAISE EXCEPTION 'insert or update on table "aviso" violates reference "%" (%)', ref.col, missing
                USING ERRCODE = 'foreign_key_violation',
                      DETAIL = format('Key (%s)=(%s) is not present in table "%s".', ref.col, missing, ref.tab);
        END IF;
    END LOOP;
    RETURN NULL;
END $$;
"""

_GUARD_FUNCTION = """
CREATE FUNCTION aviso_guard_referenced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    col text := TG_ARGV[0];
    key text := TG_ARGV[1];
    old_key text;
    used boolean;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        IF EXISTS (SELECT 1 FROM aviso) THEN
            RAISE EXCEPTION 'cannot truncate table "%": avisos reference it', TG_TABLE_NAME
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        RETURN NULL;
    END IF;
    old_key := to_jsonb(OLD) ->> key;
    IF TG_OP = 'UPDATE' AND old_key IS NOT DISTINCT FROM to_jsonb(NEW) ->> key THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM aviso WHERE %I = $1)', col) INTO used USING old_key;
    IF used THEN
        RAISE EXCEPTION 'update or delete on table "%" violates reference "%" from table "aviso"', TG_TABLE_NAME, col
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (%s)=(%s) is still referenced from table "aviso".', key, old_key);
    END IF;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    for table in ("aviso", "sandbox_aviso"):
        op.add_column(table, sa.Column("seq", sa.BigInteger(), nullable=True))
        # Existing rows keep the order readers saw: (publicacion_xid, id) within each employer.
        op.execute(
            f"""UPDATE {table} t SET seq = o.n FROM (
                    SELECT id, row_number() OVER (PARTITION BY rfc_patron ORDER BY publicacion_xid, id) AS n FROM {table}
                ) AS o WHERE o.id = t.id"""
        )
        op.alter_column(table, "seq", nullable=False)
        op.drop_column(table, "publicacion_xid")  # drops its index too
        op.create_index(f"uq_{table}_publicacion", table, ["rfc_patron", "seq"], unique=True)

    for column, referenced, _key in REFERENCES:
        op.drop_constraint(f"fk_aviso_{column}_{referenced}", "aviso", type_="foreignkey")
    values = ", ".join(f"('{c}', '{t}', '{k}')" for c, t, k in REFERENCES)
    op.execute(_CHECK_FUNCTION.format(values=values))
    op.execute(
        "CREATE TRIGGER aviso_references_insert AFTER INSERT ON aviso REFERENCING NEW TABLE AS nuevos "
        "FOR EACH STATEMENT EXECUTE FUNCTION aviso_check_references()"
    )
    op.execute(
        "CREATE TRIGGER aviso_references_update AFTER UPDATE ON aviso REFERENCING NEW TABLE AS nuevos "
        "FOR EACH STATEMENT EXECUTE FUNCTION aviso_check_references()"
    )
    op.execute(_GUARD_FUNCTION)
    for column, referenced, key in REFERENCES:
        op.execute(
            f"CREATE TRIGGER aviso_guard_{column} AFTER UPDATE OR DELETE ON {referenced} "
            f"FOR EACH ROW EXECUTE FUNCTION aviso_guard_referenced('{column}', '{key}')"
        )
    for referenced in sorted({t for _c, t, _k in REFERENCES}):
        op.execute(
            f"CREATE TRIGGER aviso_guard_truncate BEFORE TRUNCATE ON {referenced} "
            "FOR EACH STATEMENT EXECUTE FUNCTION aviso_guard_referenced('', '')"
        )


def downgrade() -> None:
    for referenced in sorted({t for _c, t, _k in REFERENCES}):
        op.execute(f"DROP TRIGGER aviso_guard_truncate ON {referenced}")
    for column, referenced, _key in REFERENCES:
        op.execute(f"DROP TRIGGER aviso_guard_{column} ON {referenced}")
    op.execute("DROP TRIGGER aviso_references_insert ON aviso")
    op.execute("DROP TRIGGER aviso_references_update ON aviso")
    op.execute("DROP FUNCTION aviso_check_references()")
    op.execute("DROP FUNCTION aviso_guard_referenced()")
    for column, referenced, key in REFERENCES:
        op.create_foreign_key(f"fk_aviso_{column}_{referenced}", "aviso", referenced, [column], [key])

    for table, first in (("aviso", "rfc_patron"), ("sandbox_aviso", "certificacion_id")):
        op.drop_index(f"uq_{table}_publicacion", table_name=table)
        # Every existing row gets this transaction's id; order then falls back to id (insertion order).
        op.execute(f"ALTER TABLE {table} ADD COLUMN publicacion_xid xid8 NOT NULL DEFAULT pg_current_xact_id()")
        op.drop_column(table, "seq")
        op.create_index(f"ix_{table}_publicacion", table, [first, "publicacion_xid", "id"])
