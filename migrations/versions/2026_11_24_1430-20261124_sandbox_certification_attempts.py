"""Certification attempts: their sandbox employer and avisos, and the request log the scenarios are judged from

Revision ID: 20261124_sandbox
Revises: 20261124_trust
Create Date: 2026-11-24 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

class _Xid8(sa.types.UserDefinedType):
    cache_ok = True

    def get_col_spec(self, **_kw) -> str:
        return "xid8"


revision: str = '20261124_sandbox'
down_revision: str | None = '20261124_trust'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('sandbox_aviso',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('certificacion_id', sa.Uuid(), nullable=False),
    sa.Column('lote', sa.SmallInteger(), nullable=False),
    sa.Column('folio', sa.String(length=14), nullable=False),
    sa.Column('tipo_aviso', sa.String(length=2), nullable=False),
    sa.Column('clase', sa.String(length=12), nullable=False),
    sa.Column('rfc_patron', sa.String(length=13), nullable=False),
    sa.Column('nrp', sa.String(length=11), nullable=False),
    sa.Column('nss', sa.String(length=11), nullable=False),
    sa.Column('rfc_trabajador', sa.String(length=13), nullable=False),
    sa.Column('curp', sa.String(length=18), nullable=False),
    sa.Column('nombre_trabajador', sa.Text(), nullable=False),
    sa.Column('numero_credito', sa.String(length=10), nullable=False),
    sa.Column('tipo_credito', sa.String(length=3), nullable=False),
    sa.Column('estatus_credito', sa.String(length=3), nullable=False),
    sa.Column('tipo_descuento', sa.String(length=2), nullable=False),
    sa.Column('valor_descuento', sa.Numeric(precision=12, scale=4), nullable=False),
    sa.Column('fecha_emision', sa.Date(), nullable=False),
    sa.Column('fecha_inicio_descuento', sa.Date(), nullable=False),
    sa.Column('publicado_en', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('publicacion_xid', _Xid8(), server_default=sa.text('pg_current_xact_id()'), nullable=False),
    sa.ForeignKeyConstraint(['certificacion_id'], ['certificacion.id'], name=op.f('fk_sandbox_aviso_certificacion_id_certificacion'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sandbox_aviso'))
    )
    op.create_index('ix_sandbox_aviso_publicacion', 'sandbox_aviso', ['certificacion_id', 'publicacion_xid', 'id'], unique=False)
    op.create_index('uq_sandbox_aviso_folio', 'sandbox_aviso', ['certificacion_id', 'folio'], unique=True)
    op.create_table('sandbox_solicitud',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('certificacion_id', sa.Uuid(), nullable=False),
    sa.Column('recibida_en', sa.DateTime(timezone=True), nullable=False),
    sa.Column('estado_http', sa.SmallInteger(), nullable=False),
    sa.Column('despues_de', sa.String(length=14), nullable=True),
    sa.Column('parametros', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('entregados', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['certificacion_id'], ['certificacion.id'], name=op.f('fk_sandbox_solicitud_certificacion_id_certificacion'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sandbox_solicitud'))
    )
    op.create_index('ix_sandbox_solicitud_certificacion', 'sandbox_solicitud', ['certificacion_id', 'id'], unique=False)
    op.add_column('certificacion', sa.Column('expira_en', sa.DateTime(timezone=True), nullable=True))
    op.add_column('certificacion', sa.Column('sandbox_rfc', sa.String(length=13), nullable=True))
    op.add_column('certificacion', sa.Column('sandbox_nrps', postgresql.ARRAY(sa.String(length=11)), nullable=True))
    op.add_column('certificacion', sa.Column('escenarios', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False))
    op.add_column('certificacion', sa.Column('folio_acuse', sa.String(length=24), nullable=True))
    op.create_foreign_key(op.f('fk_certificacion_folio_acuse_acuse'), 'certificacion', 'acuse', ['folio_acuse'], ['folio'])


def downgrade() -> None:
    op.drop_constraint(op.f('fk_certificacion_folio_acuse_acuse'), 'certificacion', type_='foreignkey')
    op.drop_column('certificacion', 'folio_acuse')
    op.drop_column('certificacion', 'escenarios')
    op.drop_column('certificacion', 'sandbox_nrps')
    op.drop_column('certificacion', 'sandbox_rfc')
    op.drop_column('certificacion', 'expira_en')
    op.drop_index('ix_sandbox_solicitud_certificacion', table_name='sandbox_solicitud')
    op.drop_table('sandbox_solicitud')
    op.drop_index('uq_sandbox_aviso_folio', table_name='sandbox_aviso')
    op.drop_index('ix_sandbox_aviso_publicacion', table_name='sandbox_aviso')
    op.drop_table('sandbox_aviso')
