"""Exchange: the transactional outbox.

Revision ID: 0002_exchange_outbox
Revises: 0001_reports
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_exchange_outbox"
down_revision = "0001_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchange_outbox",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("message_type", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("subject_ref", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
    )
    op.create_index("ix_exchange_outbox_pending", "exchange_outbox", ["published_at", "seq"])


def downgrade() -> None:
    op.drop_table("exchange_outbox")
