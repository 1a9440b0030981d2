"""Price lists, bills and payments (issue 14 part 6)

Revision ID: 0029
Revises: 0028
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa
import storage.tables


revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'price_list_entries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('service_kind', sa.String(length=30), nullable=False),
        sa.Column('product_category', sa.String(length=100), nullable=False),
        sa.Column('region', sa.String(length=100), nullable=False),
        sa.Column('urgency', sa.String(length=10), nullable=False),
        sa.Column('pricing', sa.String(length=20), nullable=False),
        sa.Column('unit_price_minor', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('hour_step_minutes', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('updated_at', storage.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_price_list_entries')),
        sa.UniqueConstraint('service_kind', 'product_category', 'region', 'urgency', name='uq_price_list_entries_key'),
    )
    op.create_table(
        'bills',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('visit_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('total_minor', sa.BigInteger(), nullable=False),
        sa.Column('paid_minor', sa.BigInteger(), nullable=False),
        sa.Column('price_entry_id', sa.Integer(), nullable=True),
        sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
        sa.Column('updated_at', storage.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_bills_job_id_jobs')),
        sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_bills_visit_id_visits')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_bills')),
        sa.UniqueConstraint('visit_id', name=op.f('uq_bills_visit_id')),
    )
    op.create_index(op.f('ix_bills_job_id'), 'bills', ['job_id'], unique=False)
    op.create_table(
        'bill_lines',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('bill_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('description', sa.String(length=200), nullable=False),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('unit', sa.String(length=20), nullable=False),
        sa.Column('unit_price_minor', sa.BigInteger(), nullable=False),
        sa.Column('amount_minor', sa.BigInteger(), nullable=False),
        sa.Column('part_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['bill_id'], ['bills.id'], name=op.f('fk_bill_lines_bill_id_bills')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_bill_lines')),
    )
    op.create_index(op.f('ix_bill_lines_bill_id'), 'bill_lines', ['bill_id'], unique=False)
    op.create_table(
        'payments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('bill_id', sa.Integer(), nullable=False),
        sa.Column('amount_minor', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('method', sa.String(length=10), nullable=False),
        sa.Column('reference', sa.String(length=100), nullable=True),
        sa.Column('recorded_by', sa.String(length=100), nullable=False),
        sa.Column('recorded_at', storage.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['bill_id'], ['bills.id'], name=op.f('fk_payments_bill_id_bills')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    )
    op.create_index(op.f('ix_payments_bill_id'), 'payments', ['bill_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_payments_bill_id'), table_name='payments')
    op.drop_table('payments')
    op.drop_index(op.f('ix_bill_lines_bill_id'), table_name='bill_lines')
    op.drop_table('bill_lines')
    op.drop_index(op.f('ix_bills_job_id'), table_name='bills')
    op.drop_table('bills')
    op.drop_table('price_list_entries')
