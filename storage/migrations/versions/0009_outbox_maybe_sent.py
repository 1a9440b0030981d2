"""outbox sends in flight: when a send started, and how many started sends were never recorded (maybe sent twice)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa
import storage.tables


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sending_since', storage.tables.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('maybe_sent', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('maybe_sent')
        batch_op.drop_column('sending_since')
