"""Exchange: the outbox row keeps the traceparent of the call that wrote it.

Revision ID: 0013_outbox_traceparent
Revises: 0012_custody_locations
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_outbox_traceparent"
down_revision = "0012_custody_locations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exchange_outbox") as batch:
        batch.add_column(
            sa.Column("traceparent", sa.String(length=55), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("exchange_outbox") as batch:
        batch.drop_column("traceparent")
