"""Identity: e.firma challenges, credentials, token throttling, acuses

Revision ID: 20261124_identity
Revises: 20261124_foundation
Create Date: 2026-11-24 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '20261124_identity'
down_revision: str | None = '20261124_foundation'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('bloqueo_token',
    sa.Column('rfc', sa.String(length=13), nullable=False),
    sa.Column('fallos', sa.Integer(), nullable=False),
    sa.Column('primer_fallo', sa.DateTime(timezone=True), nullable=False),
    sa.Column('bloqueado_hasta', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('rfc', name=op.f('pk_bloqueo_token'))
    )
    op.create_table('credencial',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('rfc', sa.String(length=13), nullable=False),
    sa.Column('correo', sa.Text(), nullable=False),
    sa.Column('nombre', sa.Text(), nullable=True),
    sa.Column('hash_contrasena', sa.Text(), nullable=False),
    sa.Column('totp_cifrado', sa.LargeBinary(), nullable=False),
    sa.Column('totp_ultimo_paso', sa.BigInteger(), nullable=True),
    sa.Column('estado', sa.String(length=10), nullable=False),
    sa.Column('certificado_numero', sa.String(length=40), nullable=False),
    sa.Column('creada_en', sa.DateTime(timezone=True), nullable=False),
    sa.Column('terminada_en', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("estado IN ('activa', 'renovada', 'cancelada')", name=op.f('ck_credencial_estado')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credencial'))
    )
    op.create_index('uq_credencial_rfc_activa', 'credencial', ['rfc'], unique=True, postgresql_where=sa.text("estado = 'activa'"))
    op.create_table('reto',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('rfc', sa.String(length=13), nullable=False),
    sa.Column('reto', sa.LargeBinary(), nullable=False),
    sa.Column('creado_en', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expira_en', sa.DateTime(timezone=True), nullable=False),
    sa.Column('usado_en', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reto'))
    )
    op.create_table('acuse',
    sa.Column('folio', sa.String(length=24), nullable=False),
    sa.Column('tipo', sa.String(length=40), nullable=False),
    sa.Column('emitido_en', sa.DateTime(timezone=True), nullable=False),
    sa.Column('partes', postgresql.ARRAY(sa.String(length=13)), nullable=False),
    sa.Column('datos', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('cadena_original', sa.Text(), nullable=False),
    sa.Column('sello', sa.Text(), nullable=False),
    sa.Column('credencial_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['credencial_id'], ['credencial.id'], name=op.f('fk_acuse_credencial_id_credencial')),
    sa.PrimaryKeyConstraint('folio', name=op.f('pk_acuse'))
    )
    op.create_index('ix_acuse_partes', 'acuse', ['partes'], unique=False, postgresql_using='gin')


def downgrade() -> None:
    op.drop_index('ix_acuse_partes', table_name='acuse', postgresql_using='gin')
    op.drop_table('acuse')
    op.drop_table('reto')
    op.drop_index('uq_credencial_rfc_activa', table_name='credencial', postgresql_where=sa.text("estado = 'activa'"))
    op.drop_table('credencial')
    op.drop_table('bloqueo_token')
