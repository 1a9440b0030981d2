"""Preventive maintenance plans and the inspections they create (issue 14 part 8)

Revision ID: 0028
Revises: 0027
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa
import storage.tables


revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'maintenance_plans',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('site_id', sa.Integer(), nullable=False),
        sa.Column('device_ids', sa.JSON(), nullable=False),
        sa.Column('rule', sa.String(length=200), nullable=False),
        sa.Column('starts_on', sa.Date(), nullable=False),
        sa.Column('lead_days', sa.Integer(), nullable=False),
        sa.Column('duration_minutes', sa.Integer(), nullable=True),
        sa.Column('technician_id', sa.Integer(), nullable=True),
        sa.Column('reviewer_dispatcher_id', sa.Integer(), nullable=True),
        sa.Column('created_through', sa.Date(), nullable=True),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['site_id'], ['device_sites.id'], name=op.f('fk_maintenance_plans_site_id_device_sites')),
        sa.ForeignKeyConstraint(['technician_id'], ['technicians.id'], name=op.f('fk_maintenance_plans_technician_id_technicians')),
        sa.ForeignKeyConstraint(['reviewer_dispatcher_id'], ['dispatchers.id'], name=op.f('fk_maintenance_plans_reviewer_dispatcher_id_dispatchers')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_maintenance_plans')),
    )
    op.create_index(op.f('ix_maintenance_plans_site_id'), 'maintenance_plans', ['site_id'], unique=False)
    op.create_table(
        'maintenance_inspections',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('plan_id', sa.Integer(), nullable=False),
        sa.Column('occurs_on', sa.Date(), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('visit_id', sa.Integer(), nullable=False),
        sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['plan_id'], ['maintenance_plans.id'], name=op.f('fk_maintenance_inspections_plan_id_maintenance_plans')),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_maintenance_inspections_job_id_jobs')),
        sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_maintenance_inspections_visit_id_visits')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_maintenance_inspections')),
        sa.UniqueConstraint('plan_id', 'occurs_on', name='uq_maintenance_inspections_day'),
    )


def downgrade() -> None:
    op.drop_table('maintenance_inspections')
    op.drop_index(op.f('ix_maintenance_plans_site_id'), table_name='maintenance_plans')
    op.drop_table('maintenance_plans')
