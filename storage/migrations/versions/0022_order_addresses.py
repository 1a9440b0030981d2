"""Orders: visits grouped by address and work type (issue 13 part 4)

An order with lines at several addresses becomes one job per address (jobs.part, jobs.part_address; the order's
identity source + external_ref + part), and a grouped visit keeps the product categories of its own lines
(visits.categories) so that only technicians skilled in all of them are offered it.

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa
import storage.tables


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('part', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('part_address', sa.String(length=500), nullable=True))
        batch_op.drop_constraint('uq_jobs_source_ref', type_='unique')
        batch_op.create_unique_constraint('uq_jobs_source_ref_part', ['source', 'external_ref', 'part'])
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('categories', sa.JSON(), server_default='[]', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.drop_column('categories')
    # a downgrade keeps one job per order: the other addresses' jobs must be gone first (the constraint says so)
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint('uq_jobs_source_ref_part', type_='unique')
        batch_op.create_unique_constraint('uq_jobs_source_ref', ['source', 'external_ref'])
        batch_op.drop_column('part_address')
        batch_op.drop_column('part')
