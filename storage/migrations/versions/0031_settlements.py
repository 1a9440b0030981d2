"""Review periods, frozen fees and settlement statements (issue 14 part 7)

Revision ID: 0031
Revises: 0030
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa
import storage.tables


revision = '0031'
down_revision = '0030'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('technicians', schema=None) as batch_op:
        batch_op.add_column(sa.Column('settlement_cycle', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('payout_share_percent', sa.Integer(), nullable=True))
    op.create_table(
        'settlement_statements',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('number', sa.String(length=40), nullable=False),
        sa.Column('technician_id', sa.Integer(), nullable=False),
        sa.Column('period', sa.String(length=7), nullable=False),
        sa.Column('cycle', sa.String(length=10), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('total_minor', sa.BigInteger(), nullable=False),
        sa.Column('line_count', sa.Integer(), nullable=False),
        sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['technician_id'], ['technicians.id'], name=op.f('fk_settlement_statements_technician_id_technicians')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_settlement_statements')),
        sa.UniqueConstraint('number', name=op.f('uq_settlement_statements_number')),
    )
    op.create_index(op.f('ix_settlement_statements_technician_id'), 'settlement_statements', ['technician_id'], unique=False)
    op.create_index(op.f('ix_settlement_statements_period'), 'settlement_statements', ['period'], unique=False)
    op.create_table(
        'settlement_items',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('visit_id', sa.Integer(), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('technician_id', sa.Integer(), nullable=False),
        sa.Column('bill_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('bill_total_minor', sa.BigInteger(), nullable=False),
        sa.Column('base_minor', sa.BigInteger(), nullable=False),
        sa.Column('share_percent', sa.Integer(), nullable=False),
        sa.Column('earned_minor', sa.BigInteger(), nullable=False),
        sa.Column('amount_minor', sa.BigInteger(), nullable=False),
        sa.Column('confirmed_at', storage.tables.UTCDateTime(), nullable=False),
        sa.Column('review_ends_at', storage.tables.UTCDateTime(), nullable=False),
        sa.Column('freeze_reason', sa.String(length=20), nullable=True),
        sa.Column('freeze_ref', sa.Integer(), nullable=True),
        sa.Column('frozen_at', storage.tables.UTCDateTime(), nullable=True),
        sa.Column('released_by', sa.String(length=100), nullable=True),
        sa.Column('released_at', storage.tables.UTCDateTime(), nullable=True),
        sa.Column('adjusted_by', sa.String(length=100), nullable=True),
        sa.Column('adjust_reason', sa.String(length=500), nullable=True),
        sa.Column('adjusted_at', storage.tables.UTCDateTime(), nullable=True),
        sa.Column('ready_at', storage.tables.UTCDateTime(), nullable=True),
        sa.Column('period', sa.String(length=7), nullable=True),
        sa.Column('statement_id', sa.Integer(), nullable=True),
        sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
        sa.Column('updated_at', storage.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['bill_id'], ['bills.id'], name=op.f('fk_settlement_items_bill_id_bills')),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_settlement_items_job_id_jobs')),
        sa.ForeignKeyConstraint(['statement_id'], ['settlement_statements.id'], name=op.f('fk_settlement_items_statement_id_settlement_statements')),
        sa.ForeignKeyConstraint(['technician_id'], ['technicians.id'], name=op.f('fk_settlement_items_technician_id_technicians')),
        sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_settlement_items_visit_id_visits')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_settlement_items')),
        sa.UniqueConstraint('visit_id', name=op.f('uq_settlement_items_visit_id')),
    )
    op.create_index(op.f('ix_settlement_items_job_id'), 'settlement_items', ['job_id'], unique=False)
    op.create_index(op.f('ix_settlement_items_technician_id'), 'settlement_items', ['technician_id'], unique=False)
    op.create_index(op.f('ix_settlement_items_period'), 'settlement_items', ['period'], unique=False)
    op.create_index(op.f('ix_settlement_items_statement_id'), 'settlement_items', ['statement_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_settlement_items_statement_id'), table_name='settlement_items')
    op.drop_index(op.f('ix_settlement_items_period'), table_name='settlement_items')
    op.drop_index(op.f('ix_settlement_items_technician_id'), table_name='settlement_items')
    op.drop_index(op.f('ix_settlement_items_job_id'), table_name='settlement_items')
    op.drop_table('settlement_items')
    op.drop_index(op.f('ix_settlement_statements_period'), table_name='settlement_statements')
    op.drop_index(op.f('ix_settlement_statements_technician_id'), table_name='settlement_statements')
    op.drop_table('settlement_statements')
    with op.batch_alter_table('technicians', schema=None) as batch_op:
        batch_op.drop_column('payout_share_percent')
        batch_op.drop_column('settlement_cycle')
