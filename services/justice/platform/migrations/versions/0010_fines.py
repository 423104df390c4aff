"""Cross-border fines: the fine, its owner lookups, its payments, its letters.

Revision ID: 0010_fines
Revises: 0006_audit
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_fines"
down_revision = "0009_custody"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fine",
        sa.Column("fine_id", sa.String(length=64), primary_key=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("offence", sa.String(length=48), nullable=False),
        sa.Column("offence_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offence_country", sa.String(length=2), nullable=False),
        sa.Column("registration_country", sa.String(length=2), nullable=False),
        sa.Column("plate", sa.String(length=64), nullable=False),
        sa.Column("detection", sa.Text(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.String(length=16), nullable=False),
        sa.Column("surcharge", sa.String(length=16), nullable=False),
        sa.Column("paid", sa.String(length=16), nullable=False),
        sa.Column("payment_reference", sa.String(length=24), nullable=False),
        sa.Column("due_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("step_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("close_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("vehicle", sa.Text(), nullable=False),
        sa.Column("persons", sa.Text(), nullable=False),
        sa.Column("notice_language", sa.String(length=8), nullable=False),
        sa.Column("notices_sent", sa.Integer(), nullable=False),
        sa.Column("lookups_sent", sa.Integer(), nullable=False),
        sa.Column("lookup_failed", sa.Boolean(), nullable=False),
        sa.Column("executing_partner", sa.String(length=64), nullable=False),
        sa.Column("contested_from", sa.String(length=24), nullable=False),
        sa.Column("erased", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
    )
    op.create_index("ix_fine_request", "fine", ["request_id"], unique=True)
    op.create_index("ix_fine_reference", "fine", ["payment_reference"], unique=True)
    op.create_index("ix_fine_state", "fine", ["state", "fine_id"])
    op.create_index("ix_fine_plate", "fine", ["plate"])
    op.create_index("ix_fine_registration_country", "fine", ["registration_country"])
    op.create_table(
        "fine_lookup",
        sa.Column("lookup_id", sa.String(length=80), primary_key=True),
        sa.Column("fine_id", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_fine_lookup_fine_id", "fine_lookup", ["fine_id"])
    op.create_index("ix_fine_lookup_due", "fine_lookup", ["phase", "deadline"])
    op.create_table(
        "fine_payment",
        sa.Column("payment_id", sa.String(length=128), primary_key=True),
        sa.Column("reference", sa.String(length=24), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.String(length=16), nullable=False),
        sa.Column("refund", sa.String(length=16), nullable=False),
        sa.Column("paid_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fine_id", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
    )
    op.create_index("ix_fine_payment_reference", "fine_payment", ["reference"])
    op.create_index("ix_fine_payment_fine_id", "fine_payment", ["fine_id"])
    op.create_table(
        "fine_letter",
        sa.Column("fine_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.Column("signed_xml", sa.LargeBinary(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("fine_id", "seq"),
    )


def downgrade() -> None:
    op.drop_table("fine_letter")
    op.drop_table("fine_payment")
    op.drop_table("fine_lookup")
    op.drop_table("fine")
