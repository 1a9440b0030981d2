"""Price increases and discounts on bills (issue 14 part 6)

Revision ID: 0030
Revises: 0029
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa
import storage.tables


revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'price_changes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('visit_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('open_visit_id', sa.Integer(), nullable=True),
        sa.Column('amount_minor', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('photo_ids', sa.JSON(), nullable=False),
        sa.Column('technician_id', sa.Integer(), nullable=True),
        sa.Column('requested_by', sa.String(length=100), nullable=False),
        sa.Column('dispatcher_by', sa.String(length=100), nullable=True),
        sa.Column('dispatcher_at', storage.tables.UTCDateTime(), nullable=True),
        sa.Column('manager_by', sa.String(length=100), nullable=True),
        sa.Column('manager_at', storage.tables.UTCDateTime(), nullable=True),
        sa.Column('customer_at', storage.tables.UTCDateTime(), nullable=True),
        sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
        sa.Column('updated_at', storage.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_price_changes_job_id_jobs')),
        sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_price_changes_visit_id_visits')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_price_changes')),
        sa.UniqueConstraint('open_visit_id', name=op.f('uq_price_changes_open_visit_id')),
    )
    op.create_index(op.f('ix_price_changes_job_id'), 'price_changes', ['job_id'], unique=False)
    op.create_index(op.f('ix_price_changes_visit_id'), 'price_changes', ['visit_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_price_changes_visit_id'), table_name='price_changes')
    op.drop_index(op.f('ix_price_changes_job_id'), table_name='price_changes')
    op.drop_table('price_changes')
