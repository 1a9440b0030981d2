"""vehicle capacity, cargo volume, crew size and crew, minimum gap after the predecessor, job priority

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('technicians', schema=None) as batch_op:
        batch_op.add_column(sa.Column('vehicle_capacity', sa.Integer(), nullable=True))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('volume_liters', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('priority', sa.String(length=10), server_default='normal', nullable=False))
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('crew_size', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('crew_ids', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('min_gap_minutes', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.drop_column('min_gap_minutes')
        batch_op.drop_column('crew_ids')
        batch_op.drop_column('crew_size')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('priority')
        batch_op.drop_column('volume_liters')
    with op.batch_alter_table('technicians', schema=None) as batch_op:
        batch_op.drop_column('vehicle_capacity')
