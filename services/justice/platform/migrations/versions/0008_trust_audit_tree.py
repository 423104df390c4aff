"""Audit: the witnessed log's Merkle tree nodes, signed checkpoints and cosignatures.

Revision ID: 0008_trust_audit_tree
Revises: 0007_trust_receipts
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_trust_audit_tree"
down_revision = "0007_trust_receipts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_tree_node",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "audit_checkpoint",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("size"),
    )
    op.create_table(
        "audit_cosignature",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("witness", sa.String(length=64), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("size", "witness"),
    )


def downgrade() -> None:
    op.drop_table("audit_cosignature")
    op.drop_table("audit_checkpoint")
    op.drop_table("audit_tree_node")
