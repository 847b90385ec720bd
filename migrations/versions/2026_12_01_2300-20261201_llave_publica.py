"""Public halves of every replica's signing keys, shared through the database

Revision ID: 20261201_llaves
Revises: 20261201_portal
Create Date: 2026-12-01 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '20261201_llaves'
down_revision: str | None = '20261201_portal'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('llave_publica',
    sa.Column('kid', sa.Text(), nullable=False),
    sa.Column('anillo', sa.String(length=10), nullable=False),
    sa.Column('x', sa.Text(), nullable=False),
    sa.Column('y', sa.Text(), nullable=False),
    sa.Column('creada_en', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reemplazada_en', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("anillo IN ('tokens', 'sellos')", name=op.f('ck_llave_publica_anillo')),
    sa.PrimaryKeyConstraint('kid', name=op.f('pk_llave_publica'))
    )


def downgrade() -> None:
    op.drop_table('llave_publica')
