"""Indexes for the back office's job list: its filters by region, status and customer, and visits by their booked time
(issue 12 part 3). A filter by source uses the unique (source, external_ref, part) index already there.

Revision ID: 0026
Revises: 0025
Create Date: 2026-11-28
"""
from alembic import op


revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_jobs_region_status', 'jobs', ['region', 'status'], unique=False)
    op.create_index('ix_jobs_status', 'jobs', ['status'], unique=False)
    op.create_index('ix_jobs_customer_id', 'jobs', ['customer_id'], unique=False)
    op.create_index('ix_visits_slot_start', 'visits', ['slot_start'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_visits_slot_start', table_name='visits')
    op.drop_index('ix_jobs_customer_id', table_name='jobs')
    op.drop_index('ix_jobs_status', table_name='jobs')
    op.drop_index('ix_jobs_region_status', table_name='jobs')
