"""Foundation: employer registry, catalogs, avisos, audit log.

Revision ID: 20261124_foundation
Revises:
Create Date: 2026-11-24 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261124_foundation"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

class _Xid8(sa.types.UserDefinedType):
    cache_ok = True

    def get_col_spec(self, **_kw) -> str:
        return "xid8"


CLASES = "clase IN ('retencion', 'modificacion', 'suspension')"
CATALOGS = {"tipo_aviso": 2, "tipo_descuento": 2, "tipo_credito": 3, "estatus_credito": 3}


def upgrade() -> None:
    op.create_table(
        "patron",
        sa.Column("rfc", sa.String(13), primary_key=True),
        sa.Column("razon_social", sa.Text(), nullable=False),
        sa.Column("registrado_en", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("rfc", name=op.f("pk_patron")),
    )
    op.create_table(
        "nrp",
        sa.Column("nrp", sa.String(11), nullable=False),
        sa.Column("rfc_patron", sa.String(13), nullable=False),
        sa.Column("registrado_en", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("nrp", name=op.f("pk_nrp")),
        sa.ForeignKeyConstraint(["rfc_patron"], ["patron.rfc"], name=op.f("fk_nrp_rfc_patron_patron")),
    )
    op.create_index(op.f("ix_nrp_rfc_patron"), "nrp", ["rfc_patron"])

    for table, width in CATALOGS.items():
        columns = [
            sa.Column("codigo", sa.String(width), nullable=False),
            sa.Column("descripcion", sa.Text(), nullable=False),
            sa.Column("provisional", sa.Boolean(), nullable=False),
        ]
        constraints = [sa.PrimaryKeyConstraint("codigo", name=op.f(f"pk_{table}"))]
        if table == "tipo_aviso":
            columns.append(sa.Column("clase", sa.String(12), nullable=False))
            constraints.append(sa.CheckConstraint(CLASES, name=op.f("ck_tipo_aviso_clase")))
        op.create_table(table, *columns, *constraints)

    op.create_table(
        "aviso",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("folio", sa.String(14), nullable=False),
        sa.Column("tipo_aviso", sa.String(2), nullable=False),
        sa.Column("clase", sa.String(12), nullable=False),
        sa.Column("rfc_patron", sa.String(13), nullable=False),
        sa.Column("nrp", sa.String(11), nullable=False),
        sa.Column("nss", sa.String(11), nullable=False),
        sa.Column("rfc_trabajador", sa.String(13), nullable=False),
        sa.Column("curp", sa.String(18), nullable=False),
        sa.Column("nombre_trabajador", sa.Text(), nullable=False),
        sa.Column("numero_credito", sa.String(10), nullable=False),
        sa.Column("tipo_credito", sa.String(3), nullable=False),
        sa.Column("estatus_credito", sa.String(3), nullable=False),
        sa.Column("tipo_descuento", sa.String(2), nullable=False),
        sa.Column("valor_descuento", sa.Numeric(12, 4), nullable=False),
        sa.Column("fecha_emision", sa.Date(), nullable=False),
        sa.Column("fecha_inicio_descuento", sa.Date(), nullable=False),
        sa.Column("publicado_en", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column(
            "publicacion_xid",
            _Xid8(),
            server_default=sa.text("pg_current_xact_id()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aviso")),
        sa.UniqueConstraint("folio", name=op.f("uq_aviso_folio")),
        sa.CheckConstraint(CLASES, name=op.f("ck_aviso_clase")),
        sa.CheckConstraint("valor_descuento >= 0", name=op.f("ck_aviso_valor_descuento_no_negativo")),
        sa.ForeignKeyConstraint(["tipo_aviso"], ["tipo_aviso.codigo"], name=op.f("fk_aviso_tipo_aviso_tipo_aviso")),
        sa.ForeignKeyConstraint(["rfc_patron"], ["patron.rfc"], name=op.f("fk_aviso_rfc_patron_patron")),
        sa.ForeignKeyConstraint(["nrp"], ["nrp.nrp"], name=op.f("fk_aviso_nrp_nrp")),
        sa.ForeignKeyConstraint(
            ["tipo_credito"], ["tipo_credito.codigo"], name=op.f("fk_aviso_tipo_credito_tipo_credito")
        ),
        sa.ForeignKeyConstraint(
            ["estatus_credito"], ["estatus_credito.codigo"], name=op.f("fk_aviso_estatus_credito_estatus_credito")
        ),
        sa.ForeignKeyConstraint(
            ["tipo_descuento"], ["tipo_descuento.codigo"], name=op.f("fk_aviso_tipo_descuento_tipo_descuento")
        ),
    )
    op.create_index("ix_aviso_publicacion", "aviso", ["rfc_patron", "publicacion_xid", "id"])
    op.create_index("ix_aviso_nss", "aviso", ["nss"])

    op.create_table(
        "evento_auditoria",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("ocurrido_en", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("accion", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.Column("rfc_patron", sa.String(13), nullable=True),
        sa.Column("nrps", postgresql.ARRAY(sa.String(11)), nullable=True),
        sa.Column("cantidad", sa.Integer(), nullable=True),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("detalle", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evento_auditoria")),
    )
    op.create_index("ix_evento_auditoria_patron", "evento_auditoria", ["rfc_patron", "ocurrido_en"])


def downgrade() -> None:
    op.drop_table("evento_auditoria")
    op.drop_table("aviso")
    for table in reversed(CATALOGS):
        op.drop_table(table)
    op.drop_table("nrp")
    op.drop_table("patron")
