"""Signatures captured on the technician's phone (issue 12 part 6)

The single-use pad links a technician asks for (signature_requests), the signatures saved through them or the reason
the customer could not sign (signatures), and the order sources that set their own signature policy (signature_sources).

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa
import storage.tables


revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'signature_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('visit_id', sa.Integer(), nullable=False),
        sa.Column('technician_id', sa.Integer(), nullable=False),
        sa.Column('stage', sa.String(length=20), nullable=False),
        sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
        sa.Column('expires_at', storage.tables.UTCDateTime(), nullable=False),
        sa.Column('used_at', storage.tables.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['technician_id'], ['technicians.id']),
        sa.ForeignKeyConstraint(['visit_id'], ['visits.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_signature_requests_visit_id'), 'signature_requests', ['visit_id'], unique=False)
    op.create_table(
        'signatures',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('visit_id', sa.Integer(), nullable=False),
        sa.Column('request_id', sa.Integer(), nullable=True),
        sa.Column('technician_id', sa.Integer(), nullable=False),
        sa.Column('stage', sa.String(length=20), nullable=False),
        sa.Column('png', sa.LargeBinary(), nullable=True),
        sa.Column('width', sa.Integer(), nullable=True),
        sa.Column('height', sa.Integer(), nullable=True),
        sa.Column('skip_reason', sa.String(length=500), nullable=True),
        sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['request_id'], ['signature_requests.id']),
        sa.ForeignKeyConstraint(['technician_id'], ['technicians.id']),
        sa.ForeignKeyConstraint(['visit_id'], ['visits.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('request_id'),
    )
    op.create_index(op.f('ix_signatures_visit_id'), 'signatures', ['visit_id'], unique=False)
    op.create_table(
        'signature_sources',
        sa.Column('source', sa.String(length=100), nullable=False),
        sa.Column('policy', sa.String(length=200), nullable=False),
        sa.Column('updated_at', storage.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('source'),
    )


def downgrade() -> None:
    op.drop_table('signature_sources')
    op.drop_index(op.f('ix_signatures_visit_id'), table_name='signatures')
    op.drop_table('signatures')
    op.drop_index(op.f('ix_signature_requests_visit_id'), table_name='signature_requests')
    op.drop_table('signature_requests')
