"""Custody: seizures, items (with the partial unique index on active seals), the per-item
event chain, and inventories.

Revision ID: 0007_custody
Revises: 0006_audit
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_custody"
down_revision = "0008_trust_audit_tree"
branch_labels = None
depends_on = None

_ACTIVE = sa.text("state <> 'DISPOSED'")


def upgrade() -> None:
    op.create_table(
        "custody_seizure",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("case_number", sa.String(length=64), nullable=False),
        sa.Column("report", sa.String(length=512), nullable=False),
        sa.Column("place", sa.String(length=512), nullable=False),
        sa.Column("seize_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seizing_officer", sa.String(length=128), nullable=False),
        sa.Column("seized_from", sa.Text(), nullable=True),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("legal_ground", sa.String(length=512), nullable=False),
        sa.Column("goods_waived", sa.Boolean(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("items", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_custody_seizure_case_number", "custody_seizure", ["case_number"])
    op.create_index(
        "ix_custody_seizure_request",
        "custody_seizure",
        ["seizing_officer", "request_id"],
        unique=True,
    )
    op.create_table(
        "custody_item",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("seizure_id", sa.String(length=24), nullable=False),
        sa.Column("case_number", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("seal", sa.String(length=64), nullable=False),
        sa.Column("location", sa.String(length=160), nullable=False),
        sa.Column("custodian", sa.String(length=128), nullable=False),
        sa.Column("pending_receiver", sa.String(length=128), nullable=False),
        sa.Column("resume_state", sa.String(length=24), nullable=False),
        sa.Column("parent_id", sa.String(length=24), nullable=False),
        sa.Column("on_hold", sa.Boolean(), nullable=False),
        sa.Column("holds", sa.Text(), nullable=False),
        sa.Column("decision", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("due_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_out_to", sa.String(length=256), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("chain_length", sa.Integer(), nullable=False),
        sa.Column("chain_head", sa.String(length=64), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    for name, columns in (
        ("ix_custody_item_case", ["case_number", "id"]),
        ("ix_custody_item_location", ["location", "id"]),
        ("ix_custody_item_custodian", ["custodian", "id"]),
        ("ix_custody_item_state", ["state", "id"]),
        ("ix_custody_item_due", ["state", "due_time"]),
    ):
        op.create_index(name, "custody_item", columns)
    op.create_index(
        "ux_custody_item_active_seal",
        "custody_item",
        ["seal"],
        unique=True,
        postgresql_where=_ACTIVE,
        sqlite_where=_ACTIVE,
    )
    op.create_table(
        "custody_event",
        sa.Column("item_id", sa.String(length=24), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("previous_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("item_id", "sequence"),
    )
    op.create_table(
        "custody_inventory",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("location", sa.String(length=160), nullable=False),
        sa.Column("started_by", sa.String(length=128), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("submitted_by", sa.String(length=128), nullable=False),
        sa.Column("expected", sa.Text(), nullable=False),
        sa.Column("found", sa.Text(), nullable=False),
        sa.Column("missing", sa.Text(), nullable=False),
        sa.Column("unexpected", sa.Text(), nullable=False),
        sa.Column("signed_report", sa.LargeBinary(), nullable=False),
        sa.Column("report_sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("custody_inventory")
    op.drop_table("custody_event")
    op.drop_index("ux_custody_item_active_seal", table_name="custody_item")
    op.drop_table("custody_item")
    op.drop_table("custody_seizure")
