"""Outbox claims: the relay that holds a row and until when, so two relays never publish the
same row at once and a dead relay's rows are taken over when its lease ends.

Revision ID: 0014_outbox_claims
Revises: 0013_outbox_traceparent
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_outbox_claims"
down_revision = "0013_outbox_traceparent"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exchange_outbox") as table:
        table.add_column(sa.Column("claimed_by", sa.String(length=36), nullable=True))
        table.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("exchange_outbox") as table:
        table.drop_column("claimed_until")
        table.drop_column("claimed_by")
