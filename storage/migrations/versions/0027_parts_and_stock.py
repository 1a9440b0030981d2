"""Parts, stock per location and repair completions (issue 14 parts 4 and 5)

Revision ID: 0027
Revises: 0026
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa
import storage.tables


revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'parts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=60), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('unit', sa.String(length=20), nullable=False),
        sa.Column('price_minor', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('category', sa.String(length=100), nullable=False),
        sa.Column('compatible', sa.JSON(), nullable=False),
        sa.Column('min_stock', sa.Integer(), nullable=False),
        sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
        sa.Column('updated_at', storage.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_parts')),
        sa.UniqueConstraint('code', name=op.f('uq_parts_code')),
    )
    op.create_table(
        'stock_levels',
        sa.Column('part_id', sa.Integer(), nullable=False),
        sa.Column('location', sa.String(length=40), nullable=False),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('updated_at', storage.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['part_id'], ['parts.id'], name=op.f('fk_stock_levels_part_id_parts')),
        sa.PrimaryKeyConstraint('part_id', 'location', name=op.f('pk_stock_levels')),
    )
    op.create_table(
        'stock_movements',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('part_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('source', sa.String(length=40), nullable=True),
        sa.Column('target', sa.String(length=40), nullable=True),
        sa.Column('job_id', sa.Integer(), nullable=True),
        sa.Column('visit_id', sa.Integer(), nullable=True),
        sa.Column('request_id', sa.Integer(), nullable=True),
        sa.Column('actor', sa.String(length=100), nullable=False),
        sa.Column('note', sa.String(length=500), nullable=False),
        sa.Column('occurred_at', storage.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['part_id'], ['parts.id'], name=op.f('fk_stock_movements_part_id_parts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_stock_movements')),
    )
    with op.batch_alter_table('stock_movements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stock_movements_part_id'), ['part_id'], unique=False)
    op.create_table(
        'part_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('part_id', sa.Integer(), nullable=False),
        sa.Column('technician_id', sa.Integer(), nullable=False),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('note', sa.String(length=500), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('dispatcher_id', sa.Integer(), nullable=True),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
        sa.Column('decided_at', storage.tables.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['part_id'], ['parts.id'], name=op.f('fk_part_requests_part_id_parts')),
        sa.ForeignKeyConstraint(['technician_id'], ['technicians.id'], name=op.f('fk_part_requests_technician_id_technicians')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_part_requests')),
    )
    with op.batch_alter_table('part_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_part_requests_technician_id'), ['technician_id'], unique=False)
    op.create_table(
        'fault_trees',
        sa.Column('product_category', sa.String(length=100), nullable=False),
        sa.Column('tree', sa.JSON(), nullable=False),
        sa.Column('updated_at', storage.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('product_category', name=op.f('pk_fault_trees')),
    )
    op.create_table(
        'repair_completions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('visit_id', sa.Integer(), nullable=False),
        sa.Column('technician_id', sa.Integer(), nullable=False),
        sa.Column('cause', sa.String(length=30), nullable=False),
        sa.Column('fault', sa.String(length=30), nullable=False),
        sa.Column('method', sa.String(length=30), nullable=False),
        sa.Column('outcome', sa.String(length=20), nullable=False),
        sa.Column('parts', sa.JSON(), nullable=False),
        sa.Column('note', sa.String(length=1000), nullable=False),
        sa.Column('recorded_at', storage.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_repair_completions_visit_id_visits')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_repair_completions')),
        sa.UniqueConstraint('visit_id', name=op.f('uq_repair_completions_visit_id')),
    )


def downgrade() -> None:
    op.drop_table('repair_completions')
    op.drop_table('fault_trees')
    with op.batch_alter_table('part_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_part_requests_technician_id'))
    op.drop_table('part_requests')
    with op.batch_alter_table('stock_movements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stock_movements_part_id'))
    op.drop_table('stock_movements')
    op.drop_table('stock_levels')
    op.drop_table('parts')
