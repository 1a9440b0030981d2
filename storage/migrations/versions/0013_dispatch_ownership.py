"""Nothing unowned: chasing, dispatcher actions, closing jobs

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa

import storage.tables


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # who acknowledged an alert and when: a second press names them instead of acting again
    with op.batch_alter_table('problem_reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('acknowledged_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_at', storage.tables.UTCDateTime(), nullable=True))
    with op.batch_alter_table('ratings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('acknowledged_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_at', storage.tables.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ratings', schema=None) as batch_op:
        batch_op.drop_column('acknowledged_at')
        batch_op.drop_column('acknowledged_by')
    with op.batch_alter_table('problem_reports', schema=None) as batch_op:
        batch_op.drop_column('acknowledged_at')
        batch_op.drop_column('acknowledged_by')
