"""Maintenance plan assignees and reviewers (issue 14 part 8)

Revision ID: 0032
Revises: 0031
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa


revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('maintenance_plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('team_ids', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('reviewed_through', sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('maintenance_plans', schema=None) as batch_op:
        batch_op.drop_column('reviewed_through')
        batch_op.drop_column('team_ids')
