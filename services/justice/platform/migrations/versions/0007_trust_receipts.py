"""Exchange: partners' signed receipts kept as received (envelope bytes and certificate).

Revision ID: 0007_trust_receipts
Revises: 0006_audit
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_trust_receipts"
down_revision = "0006_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchange_receipt",
        sa.Column("partner", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("receive_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("partner", "id"),
    )


def downgrade() -> None:
    op.drop_table("exchange_receipt")
