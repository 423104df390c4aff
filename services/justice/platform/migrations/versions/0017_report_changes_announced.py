"""Report versions announce their changes: every statement that writes `report_version`
NOTIFYs `justice_reports`, whoever runs it (a worker, the inbound process, an operator), so
that processes holding versions they read (reports/store.SqlReportReads.view) stop showing
them. PostgreSQL only: SQLite has no such channel, and nothing is held there.

Revision ID: 0017_report_changes_announced
Revises: 0016_dead_letter_resource
"""

from alembic import op

revision = "0017_report_changes_announced"
down_revision = "0016_dead_letter_resource"
branch_labels = None
depends_on = None

# One NOTIFY per statement; PostgreSQL folds repeats within a transaction into one.
_FUNCTION = """
CREATE FUNCTION report_version_announce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('justice_reports', '');
    RETURN NULL;
END
$$
"""
_TRIGGER = """
CREATE TRIGGER report_version_announce
AFTER INSERT OR UPDATE OR DELETE ON report_version
FOR EACH STATEMENT EXECUTE FUNCTION report_version_announce()
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION)
        op.execute(_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS report_version_announce ON report_version")
        op.execute("DROP FUNCTION IF EXISTS report_version_announce()")
