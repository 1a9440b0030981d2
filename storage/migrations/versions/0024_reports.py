"""KPIs and the daily report (issue 12 part 4)

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa
import storage.tables


revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a dispatch group is for alerts (dispatch) or is the managers' group that gets the daily report (reports)
    with op.batch_alter_table('dispatch_groups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purpose', sa.String(length=20), server_default='dispatch', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('dispatch_groups', schema=None) as batch_op:
        batch_op.drop_column('purpose')
