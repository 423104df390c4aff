"""Dead letters: the resource a refused inbound message was about (the resource of the
message it replies to), indexed, so a domain erasing a resource's personal data also blanks
the refused messages about it. Letters refused before this revision have none.

Revision ID: 0016_dead_letter_resource
Revises: 0015_custody_item_spec_columns
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_dead_letter_resource"
down_revision = "0015_custody_item_spec_columns"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exchange_dead_letter") as batch:
        batch.add_column(
            sa.Column("resource", sa.String(length=255), nullable=False, server_default="")
        )
    op.create_index("ix_exchange_dead_letter_resource", "exchange_dead_letter", ["resource"])


def downgrade() -> None:
    op.drop_index("ix_exchange_dead_letter_resource", table_name="exchange_dead_letter")
    with op.batch_alter_table("exchange_dead_letter") as batch:
        batch.drop_column("resource")
