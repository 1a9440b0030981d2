"""dispatch rules and grab offers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa
import storage.tables


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dispatch_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('region', sa.String(length=100), nullable=True),
    sa.Column('service_kind', sa.String(length=20), nullable=True),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('grab_top_n', sa.Integer(), nullable=False),
    sa.Column('grab_minutes', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatch_rules')),
    sa.UniqueConstraint('region', 'service_kind', name='uq_dispatch_rules_region_kind')
    )
    op.create_table('offers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=False),
    sa.Column('technician_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
    sa.Column('expires_at', storage.tables.UTCDateTime(), nullable=True),
    sa.Column('closed_at', storage.tables.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['technician_id'], ['technicians.id'], name=op.f('fk_offers_technician_id_technicians')),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_offers_visit_id_visits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_offers')),
    sa.UniqueConstraint('visit_id', 'technician_id', name='uq_offers_visit_technician')
    )
    with op.batch_alter_table('offers', schema=None) as batch_op:
        batch_op.create_index('ix_offers_open', ['status', 'expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_offers_visit_id'), ['visit_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('offers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_offers_visit_id'))
        batch_op.drop_index('ix_offers_open')

    op.drop_table('offers')
    op.drop_table('dispatch_rules')
