"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa
import storage.tables


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chat_bindings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('bot', sa.String(length=20), nullable=False),
    sa.Column('chat_id', sa.String(length=64), nullable=False),
    sa.Column('subject_kind', sa.String(length=20), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=True),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_bindings')),
    sa.UniqueConstraint('platform', 'bot', 'chat_id', 'subject_kind', name='uq_chat_bindings_chat')
    )
    with op.batch_alter_table('chat_bindings', schema=None) as batch_op:
        batch_op.create_index('ix_chat_bindings_subject', ['subject_kind', 'subject_id'], unique=False)
        batch_op.create_index('ix_chat_bindings_user', ['platform', 'bot', 'user_id'], unique=False)

    op.create_table('checklist_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_kind', sa.String(length=20), nullable=False),
    sa.Column('product_category', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('steps', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checklist_templates')),
    sa.UniqueConstraint('service_kind', 'product_category', name='uq_checklist_templates_kind_category')
    )
    op.create_table('conversations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('bot', sa.String(length=20), nullable=False),
    sa.Column('chat_id', sa.String(length=64), nullable=False),
    sa.Column('flow', sa.String(length=20), nullable=False),
    sa.Column('state', sa.String(length=60), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', storage.tables.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conversations')),
    sa.UniqueConstraint('platform', 'bot', 'chat_id', name='uq_conversations_chat')
    )
    op.create_table('customers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('phone', sa.String(length=40), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers'))
    )
    op.create_table('dispatch_groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('region', sa.String(length=100), nullable=True),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatch_groups'))
    )
    op.create_table('dispatchers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatchers'))
    )
    op.create_table('domain_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=True),
    sa.Column('type', sa.String(length=60), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('occurred_at', storage.tables.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_domain_events'))
    )
    with op.batch_alter_table('domain_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_domain_events_job_id'), ['job_id'], unique=False)

    op.create_table('inbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('bot', sa.String(length=20), nullable=False),
    sa.Column('update_id', sa.String(length=200), nullable=False),
    sa.Column('chat_id', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('received_at', storage.tables.UTCDateTime(), nullable=False),
    sa.Column('processed_at', storage.tables.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox')),
    sa.UniqueConstraint('platform', 'bot', 'update_id', name='uq_inbox_update')
    )
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_status', ['status', 'id'], unique=False)

    op.create_table('link_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=False),
    sa.Column('expires_at', storage.tables.UTCDateTime(), nullable=False),
    sa.Column('used_at', storage.tables.UTCDateTime(), nullable=True),
    sa.Column('used_by', sa.String(length=140), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_link_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_link_tokens_token_hash'))
    )
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('bot', sa.String(length=20), nullable=False),
    sa.Column('chat_id', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('dedup_key', sa.String(length=400), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', storage.tables.UTCDateTime(), nullable=False),
    sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
    sa.Column('sent_at', storage.tables.UTCDateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('platform_message_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('dedup_key', name=op.f('uq_outbox_dedup_key'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_chat', ['platform', 'bot', 'chat_id', 'id'], unique=False)
        batch_op.create_index('ix_outbox_pending', ['status', 'next_attempt_at'], unique=False)

    op.create_table('technicians',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('phone', sa.String(length=40), nullable=False),
    sa.Column('roles', sa.JSON(), nullable=False),
    sa.Column('skills', sa.JSON(), nullable=False),
    sa.Column('regions', sa.JSON(), nullable=False),
    sa.Column('working_hours', sa.JSON(), nullable=False),
    sa.Column('home_lat', sa.Float(), nullable=True),
    sa.Column('home_lon', sa.Float(), nullable=True),
    sa.Column('on_duty', sa.Boolean(), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_technicians'))
    )
    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=60), nullable=False),
    sa.Column('external_ref', sa.String(length=120), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('address_text', sa.String(length=500), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('region', sa.String(length=100), nullable=False),
    sa.Column('product_category', sa.String(length=100), nullable=False),
    sa.Column('product_name', sa.String(length=200), nullable=False),
    sa.Column('brand', sa.String(length=100), nullable=True),
    sa.Column('items', sa.JSON(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_jobs_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sa.UniqueConstraint('source', 'external_ref', name='uq_jobs_source_ref')
    )
    op.create_table('visits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('depends_on_visit_id', sa.Integer(), nullable=True),
    sa.Column('technician_id', sa.Integer(), nullable=True),
    sa.Column('slot_start', storage.tables.UTCDateTime(), nullable=True),
    sa.Column('slot_end', storage.tables.UTCDateTime(), nullable=True),
    sa.Column('declined_by', sa.JSON(), nullable=False),
    sa.Column('checkin_distance_m', sa.Float(), nullable=True),
    sa.Column('checkin_reason', sa.Text(), nullable=True),
    sa.Column('held_from', sa.String(length=20), nullable=True),
    sa.Column('checklist_position', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['depends_on_visit_id'], ['visits.id'], name=op.f('fk_visits_depends_on_visit_id_visits')),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_visits_job_id_jobs')),
    sa.ForeignKeyConstraint(['technician_id'], ['technicians.id'], name=op.f('fk_visits_technician_id_technicians')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visits'))
    )
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visits_job_id'), ['job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_visits_technician_id'), ['technician_id'], unique=False)

    op.create_table('photos',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=True),
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('file_id', sa.String(length=200), nullable=False),
    sa.Column('path', sa.String(length=500), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_photos_visit_id_visits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_photos'))
    )
    op.create_table('problem_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=False),
    sa.Column('technician_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=40), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('photo_ids', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('resolution', sa.String(length=40), nullable=True),
    sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['technician_id'], ['technicians.id'], name=op.f('fk_problem_reports_technician_id_technicians')),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_problem_reports_visit_id_visits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_problem_reports'))
    )
    with op.batch_alter_table('problem_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_problem_reports_visit_id'), ['visit_id'], unique=False)

    op.create_table('ratings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=True),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_ratings_customer_id_customers')),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_ratings_job_id_jobs')),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_ratings_visit_id_visits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ratings')),
    sa.UniqueConstraint('visit_id', name=op.f('uq_ratings_visit_id'))
    )
    op.create_table('checklist_answers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=False),
    sa.Column('step_key', sa.String(length=100), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('photo_id', sa.Integer(), nullable=True),
    sa.Column('answered_at', storage.tables.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['photo_id'], ['photos.id'], name=op.f('fk_checklist_answers_photo_id_photos')),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_checklist_answers_visit_id_visits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checklist_answers')),
    sa.UniqueConstraint('visit_id', 'step_key', name='uq_checklist_answers_visit_step')
    )


def downgrade() -> None:
    op.drop_table('checklist_answers')
    op.drop_table('ratings')
    with op.batch_alter_table('problem_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_problem_reports_visit_id'))

    op.drop_table('problem_reports')
    op.drop_table('photos')
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visits_technician_id'))
        batch_op.drop_index(batch_op.f('ix_visits_job_id'))

    op.drop_table('visits')
    op.drop_table('jobs')
    op.drop_table('technicians')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_pending')
        batch_op.drop_index('ix_outbox_chat')

    op.drop_table('outbox')
    op.drop_table('link_tokens')
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_status')

    op.drop_table('inbox')
    with op.batch_alter_table('domain_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_domain_events_job_id'))

    op.drop_table('domain_events')
    op.drop_table('dispatchers')
    op.drop_table('dispatch_groups')
    op.drop_table('customers')
    op.drop_table('conversations')
    op.drop_table('checklist_templates')
    with op.batch_alter_table('chat_bindings', schema=None) as batch_op:
        batch_op.drop_index('ix_chat_bindings_user')
        batch_op.drop_index('ix_chat_bindings_subject')

    op.drop_table('chat_bindings')
