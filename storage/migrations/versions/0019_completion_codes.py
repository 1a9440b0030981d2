"""Delivered-item checks and completion codes (issue 13 part 6)

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa

from storage.tables import UTCDateTime  # the type the tables declare (aware datetimes stored as UTC)


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "completion_codes",
        sa.Column("visit_id", sa.Integer(), sa.ForeignKey("visits.id", name="fk_completion_codes_visit_id_visits"), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("salt", sa.String(32), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("wrong_tries", sa.Integer(), nullable=False),
        sa.Column("resends", sa.Integer(), nullable=False),
        sa.Column("locked_at", UTCDateTime(), nullable=True),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(20), nullable=True),
        sa.PrimaryKeyConstraint("visit_id", name="pk_completion_codes"),
    )
    op.create_table(
        "completion_code_tries",
        sa.Column("technician_id", sa.Integer(), sa.ForeignKey("technicians.id", name="fk_completion_code_tries_technician_id_technicians"),
                  nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("wrong", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("technician_id", "day", name="pk_completion_code_tries"),
    )
    op.create_table(
        "completion_code_sources",
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("policy", sa.String(200), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_completion_code_sources"),
    )
    op.create_table(
        "delivered_item_checks",
        sa.Column("visit_id", sa.Integer(), sa.ForeignKey("visits.id", name="fk_delivered_item_checks_visit_id_visits"), nullable=False),
        sa.Column("marks", sa.JSON(), nullable=False),
        sa.Column("report_id", sa.Integer(),
                  sa.ForeignKey("problem_reports.id", name="fk_delivered_item_checks_report_id_problem_reports"), nullable=True),
        sa.Column("checked_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("visit_id", name="pk_delivered_item_checks"),
    )


def downgrade() -> None:
    op.drop_table("delivered_item_checks")
    op.drop_table("completion_code_sources")
    op.drop_table("completion_code_tries")
    op.drop_table("completion_codes")
