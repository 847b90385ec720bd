"""Portal sessions: the server side of the browser's HttpOnly cookie (backend for frontend)

Revision ID: 20261201_portal
Revises: 20261124_sandbox
Create Date: 2026-12-01 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '20261201_portal'
down_revision: str | None = '20261124_sandbox'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('sesion_portal',
    sa.Column('id', sa.LargeBinary(), nullable=False),
    sa.Column('rfc', sa.String(length=13), nullable=False),
    sa.Column('credencial_id', sa.Uuid(), nullable=False),
    sa.Column('creada_en', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ultimo_uso', sa.DateTime(timezone=True), nullable=False),
    sa.Column('vence_en', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['credencial_id'], ['credencial.id'], name=op.f('fk_sesion_portal_credencial_id_credencial'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sesion_portal'))
    )
    op.create_index('ix_sesion_portal_credencial', 'sesion_portal', ['credencial_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_sesion_portal_credencial', table_name='sesion_portal')
    op.drop_table('sesion_portal')
