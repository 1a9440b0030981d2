"""Robot alerts that act: single-use action links (issue 13 part 3)

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa
import storage.tables


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'robot_action_links',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('route', sa.String(length=120), nullable=False),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('label', sa.String(length=200), nullable=False),
        sa.Column('alert_text', sa.Text(), nullable=False),
        sa.Column('alert_digest', sa.String(length=64), nullable=False),
        sa.Column('language', sa.String(length=8), nullable=False),
        sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
        sa.Column('expires_at', storage.tables.UTCDateTime(), nullable=False),
        sa.Column('used_at', storage.tables.UTCDateTime(), nullable=True),
        sa.Column('used_by', sa.String(length=200), nullable=True),
        sa.Column('outcome', sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_robot_action_links')),
    )
    with op.batch_alter_table('robot_action_links', schema=None) as batch_op:
        batch_op.create_index('ix_robot_action_links_alert', ['route', 'alert_digest', 'action'], unique=False)
    op.create_table(
        'robot_link_actors',
        sa.Column('route', sa.String(length=120), nullable=False),
        sa.Column('dispatcher_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['dispatcher_id'], ['dispatchers.id'], name=op.f('fk_robot_link_actors_dispatcher_id_dispatchers')),
        sa.PrimaryKeyConstraint('route', name=op.f('pk_robot_link_actors')),
    )


def downgrade() -> None:
    op.drop_table('robot_link_actors')
    with op.batch_alter_table('robot_action_links', schema=None) as batch_op:
        batch_op.drop_index('ix_robot_action_links_alert')
    op.drop_table('robot_action_links')
