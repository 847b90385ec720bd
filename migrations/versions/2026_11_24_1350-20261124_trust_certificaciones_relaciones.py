"""Trust: developer certifications, trust relationships, audit rows that name a relationship

Revision ID: 20261124_trust
Revises: 20261124_identity
Create Date: 2026-11-24 13:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '20261124_trust'
down_revision: str | None = '20261124_identity'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('certificacion',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('rfc', sa.String(length=13), nullable=False),
    sa.Column('estado', sa.String(length=10), nullable=False),
    sa.Column('creada_en', sa.DateTime(timezone=True), nullable=False),
    sa.Column('aprobada_en', sa.DateTime(timezone=True), nullable=True),
    sa.Column('vigente_hasta', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelada_en', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("estado IN ('en_curso', 'aprobada', 'cancelada', 'vencida')", name=op.f('ck_certificacion_estado')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificacion'))
    )
    op.create_index('ix_certificacion_rfc', 'certificacion', ['rfc', 'estado', 'vigente_hasta'], unique=False)
    op.create_table('relacion_confianza',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('rfc_patron', sa.String(length=13), nullable=False),
    sa.Column('rfc_desarrollador', sa.String(length=13), nullable=False),
    sa.Column('nrps', postgresql.ARRAY(sa.String(length=11)), nullable=True),
    sa.Column('vigencia_inicio', sa.DateTime(timezone=True), nullable=False),
    sa.Column('vigencia_fin', sa.DateTime(timezone=True), nullable=False),
    sa.Column('creada_en', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revocada_en', sa.DateTime(timezone=True), nullable=True),
    sa.Column('folio_acuse', sa.String(length=24), nullable=False),
    sa.Column('folio_acuse_revocacion', sa.String(length=24), nullable=True),
    sa.CheckConstraint('vigencia_fin > vigencia_inicio', name=op.f('ck_relacion_confianza_vigencia')),
    sa.ForeignKeyConstraint(['folio_acuse'], ['acuse.folio'], name=op.f('fk_relacion_confianza_folio_acuse_acuse')),
    sa.ForeignKeyConstraint(['folio_acuse_revocacion'], ['acuse.folio'], name=op.f('fk_relacion_confianza_folio_acuse_revocacion_acuse')),
    sa.ForeignKeyConstraint(['rfc_patron'], ['patron.rfc'], name=op.f('fk_relacion_confianza_rfc_patron_patron')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_relacion_confianza'))
    )
    op.create_index('ix_relacion_confianza_desarrollador', 'relacion_confianza', ['rfc_desarrollador'], unique=False)
    op.create_index('ix_relacion_confianza_par', 'relacion_confianza', ['rfc_patron', 'rfc_desarrollador'], unique=False)
    op.add_column('evento_auditoria', sa.Column('relacion_id', sa.Uuid(), nullable=True))
    op.create_foreign_key(op.f('fk_evento_auditoria_relacion_id_relacion_confianza'), 'evento_auditoria', 'relacion_confianza', ['relacion_id'], ['id'])


def downgrade() -> None:
    op.drop_constraint(op.f('fk_evento_auditoria_relacion_id_relacion_confianza'), 'evento_auditoria', type_='foreignkey')
    op.drop_column('evento_auditoria', 'relacion_id')
    op.drop_index('ix_relacion_confianza_par', table_name='relacion_confianza')
    op.drop_index('ix_relacion_confianza_desarrollador', table_name='relacion_confianza')
    op.drop_table('relacion_confianza')
    op.drop_index('ix_certificacion_rfc', table_name='certificacion')
    op.drop_table('certificacion')
