"""SLA policies: the arrival stage needs no minutes (it runs to the end of the booked window)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sla_policies', schema=None) as batch_op:
        batch_op.alter_column('minutes', existing_type=sa.Integer(), nullable=True)
    # 0 stood in for "no allowance" while the column could not be empty
    op.execute("UPDATE sla_policies SET minutes = NULL WHERE minutes = 0")


def downgrade() -> None:
    op.execute("UPDATE sla_policies SET minutes = 0 WHERE minutes IS NULL")
    with op.batch_alter_table('sla_policies', schema=None) as batch_op:
        batch_op.alter_column('minutes', existing_type=sa.Integer(), nullable=False)
