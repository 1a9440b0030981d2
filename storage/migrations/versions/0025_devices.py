"""Devices, QR codes and repair requests (issue 14 parts 1-3)

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa
import storage.tables


revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'device_sites',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('address_text', sa.String(length=500), nullable=False),
        sa.Column('address_key', sa.String(length=500), nullable=False),
        sa.Column('lat', sa.Float(), nullable=False),
        sa.Column('lon', sa.Float(), nullable=False),
        sa.Column('region', sa.String(length=100), nullable=False),
        sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_device_sites_customer_id_customers')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_device_sites')),
        sa.UniqueConstraint('customer_id', 'address_key', 'name', name='uq_device_sites_place'),
    )
    op.create_table(
        'devices',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('site_id', sa.Integer(), nullable=False),
        sa.Column('product_category', sa.String(length=100), nullable=False),
        sa.Column('product_name', sa.String(length=200), nullable=False),
        sa.Column('brand', sa.String(length=200), nullable=True),
        sa.Column('model', sa.String(length=200), nullable=True),
        sa.Column('serial', sa.String(length=200), nullable=True),
        sa.Column('installed_on', sa.Date(), nullable=True),
        sa.Column('warranty_until', sa.Date(), nullable=True),
        sa.Column('location', sa.String(length=200), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('source_visit_id', sa.Integer(), nullable=True),
        sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_devices_customer_id_customers')),
        sa.ForeignKeyConstraint(['site_id'], ['device_sites.id'], name=op.f('fk_devices_site_id_device_sites')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_devices')),
        sa.UniqueConstraint('brand', 'serial', name='uq_devices_brand_serial'),
        sa.UniqueConstraint('source_visit_id', name=op.f('uq_devices_source_visit_id')),
    )
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_devices_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_devices_site_id'), ['site_id'], unique=False)
    op.create_table(
        'device_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('device_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=30), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=True),
        sa.Column('visit_id', sa.Integer(), nullable=True),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.Column('occurred_at', storage.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_events_device_id_devices')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_device_events')),
    )
    with op.batch_alter_table('device_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_events_device_id'), ['device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_device_events_job_id'), ['job_id'], unique=False)


def downgrade() -> None:
    op.drop_table('device_events')
    op.drop_table('devices')
    op.drop_table('device_sites')
