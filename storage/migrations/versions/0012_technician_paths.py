"""Technicians' paths: hand back, assistance, return visits, faults, presence

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('checkin_kind', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('follow_up_of_visit_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('return_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('fault_category', sa.String(length=60), nullable=True))
        batch_op.add_column(sa.Column('repair_method', sa.String(length=60), nullable=True))
        batch_op.add_column(sa.Column('late_minutes', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.drop_column('late_minutes')
        batch_op.drop_column('repair_method')
        batch_op.drop_column('fault_category')
        batch_op.drop_column('return_reason')
        batch_op.drop_column('follow_up_of_visit_id')
        batch_op.drop_column('checkin_kind')
