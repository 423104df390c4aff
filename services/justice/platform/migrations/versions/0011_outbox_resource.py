"""Outbox: the resource a message is about as its own indexed column, so the newest message
about one resource (custody's chain anchor) is an index probe instead of a LIKE scan.
Existing rows are backfilled from subject_ref (up to its first @).

Revision ID: 0011_outbox_resource
Revises: 0010_fines
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_outbox_resource"
down_revision = "0010_fines"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exchange_outbox") as batch:
        batch.add_column(
            sa.Column("resource", sa.String(length=255), nullable=False, server_default="")
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE exchange_outbox SET resource = split_part(subject_ref, '@', 1)")
    else:
        op.execute(
            "UPDATE exchange_outbox SET resource = CASE WHEN instr(subject_ref, '@') > 0 "
            "THEN substr(subject_ref, 1, instr(subject_ref, '@') - 1) ELSE subject_ref END"
        )
    op.create_index("ix_exchange_outbox_resource", "exchange_outbox", ["resource", "seq"])


def downgrade() -> None:
    op.drop_index("ix_exchange_outbox_resource", table_name="exchange_outbox")
    with op.batch_alter_table("exchange_outbox") as batch:
        batch.drop_column("resource")
