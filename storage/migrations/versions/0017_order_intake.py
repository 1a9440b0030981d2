"""Order intake: items, updates, review, coverage, sources (issue 13 part 4)

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa

import storage.tables


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'order_sources',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=60), nullable=False),
        sa.Column('mapping', sa.JSON(), nullable=True),
        sa.Column('table_mapping', sa.JSON(), nullable=True),
        sa.Column('review_required', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('coverage_policy', sa.String(length=10), server_default='flag', nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=True),
        sa.Column('poll_url', sa.String(length=500), nullable=True),
        sa.Column('poll_interval_seconds', sa.Integer(), nullable=True),
        sa.Column('poll_cursor_param', sa.String(length=60), nullable=True),
        sa.Column('poll_auth_header', sa.Text(), nullable=True),
        sa.Column('poll_cursor', sa.Text(), nullable=True),
        sa.Column('poll_last_at', storage.tables.UTCDateTime(), nullable=True),
        sa.Column('poll_last_error', sa.Text(), nullable=True),
        sa.Column('updated_at', storage.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name', name='uq_order_sources_name'),
    )
    op.create_table(
        'order_intakes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('source', sa.String(length=60), nullable=False),
        sa.Column('external_ref', sa.String(length=120), nullable=False),
        sa.Column('content_hash', sa.String(length=64), nullable=False),
        sa.Column('content', sa.JSON(), nullable=False),
        sa.Column('state', sa.String(length=20), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=True),
        sa.Column('price_minor', sa.Integer(), nullable=True),
        sa.Column('currency', sa.String(length=3), nullable=True),
        sa.Column('coverage_gap', sa.JSON(), nullable=True),
        sa.Column('review_note', sa.Text(), nullable=True),
        sa.Column('received_at', storage.tables.UTCDateTime(), nullable=False),
        sa.Column('updated_at', storage.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('source', 'external_ref', name='uq_order_intakes_source_ref'),
    )
    op.create_index('ix_order_intakes_job_id', 'order_intakes', ['job_id'], unique=False)
    op.create_index('ix_order_intakes_queue', 'order_intakes', ['source', 'state'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_order_intakes_queue', table_name='order_intakes')
    op.drop_index('ix_order_intakes_job_id', table_name='order_intakes')
    op.drop_table('order_intakes')
    op.drop_table('order_sources')
