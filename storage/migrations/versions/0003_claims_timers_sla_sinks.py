"""outbox claims, undeliverable chats, timers, SLA policies, alert sinks

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa
import storage.tables


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alert_sinks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('region', sa.String(length=100), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('secret', sa.Text(), nullable=True),
    sa.Column('keyword', sa.String(length=100), nullable=True),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_sinks')),
    sa.UniqueConstraint('name', name=op.f('uq_alert_sinks_name'))
    )
    op.create_table('sla_policies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('region', sa.String(length=100), nullable=True),
    sa.Column('service_kind', sa.String(length=20), nullable=True),
    sa.Column('stage', sa.String(length=20), nullable=False),
    sa.Column('minutes', sa.Integer(), nullable=False),
    sa.Column('tiers', sa.JSON(), nullable=False),
    sa.Column('auto_reassign', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sla_policies')),
    sa.UniqueConstraint('region', 'service_kind', 'stage', name='uq_sla_policies_scope')
    )
    op.create_table('timers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=True),
    sa.Column('technician_id', sa.Integer(), nullable=True),
    sa.Column('due_at', storage.tables.UTCDateTime(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
    sa.Column('fired_at', storage.tables.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['technician_id'], ['technicians.id'], name=op.f('fk_timers_technician_id_technicians')),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_timers_visit_id_visits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_timers')),
    sa.UniqueConstraint('key', name=op.f('uq_timers_key'))
    )
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.create_index('ix_timers_due', ['status', 'due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_timers_visit_id'), ['visit_id'], unique=False)

    with op.batch_alter_table('chat_bindings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('undeliverable_since', storage.tables.UTCDateTime(), nullable=True))

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('claimed_until', storage.tables.UTCDateTime(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('claimed_by')

    with op.batch_alter_table('chat_bindings', schema=None) as batch_op:
        batch_op.drop_column('undeliverable_since')

    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_timers_visit_id'))
        batch_op.drop_index('ix_timers_due')

    op.drop_table('timers')
    op.drop_table('sla_policies')
    op.drop_table('alert_sinks')
