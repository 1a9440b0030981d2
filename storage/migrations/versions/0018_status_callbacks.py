"""Signed status callbacks to order sources (issue 13 part 5)

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa
import storage.tables


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # where each order source hears about its jobs; the callbacks themselves are outbox rows (platform "callback")
    op.create_table(
        'callback_endpoints',
        sa.Column('source', sa.String(length=60), nullable=False),
        sa.Column('url', sa.String(length=2000), nullable=False),
        sa.Column('secret', sa.Text(), nullable=False),
        sa.Column('updated_at', storage.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('source'),
    )


def downgrade() -> None:
    op.drop_table('callback_endpoints')
