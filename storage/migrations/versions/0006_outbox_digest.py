"""outbox digest: rows held back by a busy group channel, and rows sent inside a digest

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa
import storage.tables


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held_since', storage.tables.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('digest_of', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('digest_of')
        batch_op.drop_column('held_since')
