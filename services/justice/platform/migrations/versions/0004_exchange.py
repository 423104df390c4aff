"""Exchange: partner registry, delivery tracking, dead letters, processed ids.

Also what reports record about the exchange: the recipient and its rejection reason.

Revision ID: 0004_exchange
Revises: 0003_evidence
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_exchange"
down_revision = "0003_evidence"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exchange_outbox") as batch:
        batch.add_column(sa.Column("links", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("in_reply_to", sa.String(length=36), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
    with op.batch_alter_table("report_version") as batch:
        batch.add_column(
            sa.Column("recipient", sa.String(length=64), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("rejection_reason", sa.String(length=600), nullable=False, server_default="")
        )
    op.create_table(
        "exchange_delivery",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("message_type", sa.String(length=64), nullable=False),
        sa.Column("subject_ref", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.String(length=1024), nullable=False),
        sa.Column("receipt", sa.String(length=36), nullable=False),
        sa.Column("expects_receipt", sa.Boolean(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("publish_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settle_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_exchange_delivery_recipient", "exchange_delivery", ["recipient", "id"])
    op.create_index("ix_exchange_delivery_state", "exchange_delivery", ["state", "deadline"])
    op.create_table(
        "exchange_partner",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("send_types", sa.Text(), nullable=False),
        sa.Column("receive_types", sa.Text(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "exchange_dead_letter",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("envelope_id", sa.String(length=64), nullable=False),
        sa.Column("partner", sa.String(length=64), nullable=False),
        sa.Column("message_type", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.String(length=1024), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolve_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_exchange_dead_letter_envelope_id", "exchange_dead_letter", ["envelope_id"])
    op.create_index("ix_exchange_dead_letter_partner", "exchange_dead_letter", ["partner", "id"])
    op.create_table(
        "exchange_processed",
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key"),
    )


def downgrade() -> None:
    op.drop_table("exchange_processed")
    op.drop_table("exchange_dead_letter")
    op.drop_table("exchange_partner")
    op.drop_table("exchange_delivery")
    with op.batch_alter_table("report_version") as batch:
        batch.drop_column("rejection_reason")
        batch.drop_column("recipient")
    with op.batch_alter_table("exchange_outbox") as batch:
        batch.drop_column("attempt")
        batch.drop_column("in_reply_to")
        batch.drop_column("links")
