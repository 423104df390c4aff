"""Custody: storage locations as resources, and the receivers' signed acceptances.

Items already stored keep their location names: every location an item or inventory names
becomes a location row (kind OTHER, unit "unassigned"), secure when it already holds cash,
drugs or a firearm, so that existing data keeps moving under the new rules.

Revision ID: 0012_custody_locations
Revises: 0011_outbox_resource
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0012_custody_locations"
down_revision = "0011_outbox_resource"
branch_labels = None
depends_on = None


def upgrade() -> None:
    locations = op.create_table(
        "custody_location",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("barcode", sa.String(length=128), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("unit", sa.String(length=128), nullable=False),
        sa.Column("secure", sa.Boolean(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("barcode"),
    )
    op.create_table(
        "custody_acceptance",
        sa.Column("item_id", sa.String(length=24), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("receiver", sa.String(length=128), nullable=False),
        sa.Column("signed_xml", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("item_id", "sequence"),
    )
    connection = op.get_bind()
    strict = sa.text(
        "SELECT location, MAX(CASE WHEN category IN ('CASH', 'DRUGS', 'FIREARM') THEN 1 ELSE 0"
        " END) FROM custody_item WHERE location LIKE 'locations/%' GROUP BY location"
    )
    named: dict[str, int] = {str(name): int(secure) for name, secure in connection.execute(strict)}
    counted = sa.text("SELECT DISTINCT location FROM custody_inventory WHERE location <> ''")
    for (location,) in connection.execute(counted).all():
        named.setdefault(location, 0)
    now = datetime.now(UTC)
    rows = []
    for name, secure in sorted(named.items()):
        location_id = name.removeprefix("locations/")
        rows.append(
            {
                "id": location_id,
                "barcode": location_id,
                "display_name": location_id,
                "kind": "OTHER",
                "unit": "unassigned",
                "secure": bool(secure),
                "capacity": 0,
                "create_time": now,
                "created_by": "migration-0012",
            }
        )
    if rows:
        op.bulk_insert(locations, rows)


def downgrade() -> None:
    op.drop_table("custody_acceptance")
    op.drop_table("custody_location")
