"""live tracking

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa
import storage.tables


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('technicians', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_lat', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('last_lon', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('last_seen_at', storage.tables.UTCDateTime(), nullable=True))

    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('eta_minutes', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('close_notified', sa.Boolean(), server_default=sa.false(), nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.drop_column('close_notified')
        batch_op.drop_column('eta_minutes')

    with op.batch_alter_table('technicians', schema=None) as batch_op:
        batch_op.drop_column('last_seen_at')
        batch_op.drop_column('last_lon')
        batch_op.drop_column('last_lat')

