"""Evidence to people and relay threads

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa
import storage.tables


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'relay_threads',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('origin', sa.String(length=20), nullable=False),
        sa.Column('origin_id', sa.Integer(), nullable=False),
        sa.Column('platform', sa.String(length=20), nullable=False),
        sa.Column('bot', sa.String(length=20), nullable=False),
        sa.Column('chat_id', sa.String(length=100), nullable=False),
        sa.Column('audience', sa.String(length=20), nullable=False),
        sa.Column('topic', sa.String(length=20), nullable=False),
        sa.Column('region', sa.String(length=100), nullable=True),
        sa.Column('job_id', sa.Integer(), nullable=True),
        sa.Column('visit_id', sa.Integer(), nullable=True),
        sa.Column('technician_id', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
        sa.Column('updated_at', storage.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id']),
        sa.ForeignKeyConstraint(['technician_id'], ['technicians.id']),
        sa.ForeignKeyConstraint(['visit_id'], ['visits.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_relay_threads_chat', 'relay_threads', ['platform', 'bot', 'chat_id', 'status'], unique=False)
    op.create_index('ix_relay_threads_job_id', 'relay_threads', ['job_id'], unique=False)
    op.create_table(
        'relay_messages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('thread_id', sa.Integer(), nullable=False),
        sa.Column('author', sa.String(length=20), nullable=False),
        sa.Column('author_id', sa.Integer(), nullable=True),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('photo_id', sa.Integer(), nullable=True),
        sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['photo_id'], ['photos.id']),
        sa.ForeignKeyConstraint(['thread_id'], ['relay_threads.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_relay_messages_thread_id', 'relay_messages', ['thread_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_relay_messages_thread_id', table_name='relay_messages')
    op.drop_table('relay_messages')
    op.drop_index('ix_relay_threads_job_id', table_name='relay_threads')
    op.drop_index('ix_relay_threads_chat', table_name='relay_threads')
    op.drop_table('relay_threads')
