"""WhatsApp channel: session windows and message statuses (issue 13 part 2)

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa

from storage.tables import UTCDateTime


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # when each person last wrote to each business number: free-form messages only within 24 h of it
    op.create_table(
        'whatsapp_chats',
        sa.Column('bot', sa.String(length=20), nullable=False),
        sa.Column('chat_id', sa.String(length=64), nullable=False),
        sa.Column('last_inbound_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('bot', 'chat_id', name=op.f('pk_whatsapp_chats')),
    )
    # each message sent and its furthest status
    op.create_table(
        'whatsapp_messages',
        sa.Column('wamid', sa.String(length=200), nullable=False),
        sa.Column('bot', sa.String(length=20), nullable=False),
        sa.Column('chat_id', sa.String(length=64), nullable=False),
        sa.Column('purpose', sa.String(length=20), nullable=False),
        sa.Column('template', sa.String(length=512), nullable=True),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('status_rank', sa.Integer(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('updated_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('wamid', name=op.f('pk_whatsapp_messages')),
    )


def downgrade() -> None:
    op.drop_table('whatsapp_messages')
    op.drop_table('whatsapp_chats')
