"""Audit: the hash-chained access log, consumer cursors, detection baselines and alerts.

Revision ID: 0006_audit
Revises: 0005_access
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_audit"
down_revision = "0005_access"
branch_labels = None
depends_on = None

# Append-only in the database too: tampering then needs the rights to drop a trigger,
# and the hash chain still shows it.
_PG_FUNCTION = """
CREATE FUNCTION audit_record_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'audit records are append-only';
END;
$$ LANGUAGE plpgsql
"""
_PG_TRIGGER = (
    "CREATE TRIGGER audit_record_append_only BEFORE UPDATE OR DELETE ON audit_record "
    "FOR EACH ROW EXECUTE FUNCTION audit_record_append_only()"
)
_SQLITE_TRIGGERS = [
    f"CREATE TRIGGER audit_record_no_{action.lower()} BEFORE {action} ON audit_record "
    "BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END"
    for action in ("UPDATE", "DELETE")
]


def upgrade() -> None:
    op.create_table(
        "audit_record",
        sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("principal", sa.String(length=128), nullable=False),
        sa.Column("agency", sa.String(length=128), nullable=False),
        sa.Column("unit", sa.String(length=128), nullable=False),
        sa.Column("service", sa.String(length=128), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("resource", sa.String(length=255), nullable=False),
        sa.Column("resources", sa.Text(), nullable=False),
        sa.Column("purpose", sa.String(length=255), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("peer", sa.String(length=128), nullable=False),
        sa.Column("previous_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("sequence"),
    )
    op.create_index("ix_audit_record_principal", "audit_record", ["principal", "time"])
    op.create_index("ix_audit_record_resource", "audit_record", ["resource", "time"])
    op.create_index("ix_audit_record_time", "audit_record", ["time"])
    op.create_table(
        "audit_cursor",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "audit_baseline",
        sa.Column("principal", sa.String(length=128), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("history", sa.Text(), nullable=False),
        sa.Column("lookups", sa.Text(), nullable=False),
        sa.Column("denials", sa.Integer(), nullable=False),
        sa.Column("first_sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("principal"),
    )
    op.create_table(
        "audit_alert",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("principal", sa.String(length=128), nullable=False),
        sa.Column("agency", sa.String(length=128), nullable=False),
        sa.Column("unit", sa.String(length=128), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_sequence", sa.BigInteger(), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_alert_created", "audit_alert", ["create_time", "id"])
    op.create_index("ix_audit_alert_principal", "audit_alert", ["principal"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_record_append_only ON audit_record")
        op.execute("DROP FUNCTION IF EXISTS audit_record_append_only()")
    op.drop_table("audit_alert")
    op.drop_table("audit_baseline")
    op.drop_table("audit_cursor")
    op.drop_table("audit_record")
