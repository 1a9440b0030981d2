"""Cards edited in place

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the card a message shows, so a later message of the same card in the chat edits it in place
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('card', sa.String(length=80), nullable=True))
        batch_op.create_index('ix_outbox_card', ['platform', 'bot', 'chat_id', 'card'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_card')
        batch_op.drop_column('card')
