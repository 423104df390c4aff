"""Reports: one row per report version.

Revision ID: 0001_reports
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_reports"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_version",
        sa.Column("report_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("amends_version", sa.Integer(), nullable=False),
        sa.Column("latest", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("case_number", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("written_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sign_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signed_xml", sa.LargeBinary(), nullable=True),
        sa.Column("signed_sha256", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("report_id", "version"),
    )
    op.create_index("ix_report_version_author", "report_version", ["author"])
    op.create_index("ix_report_version_case_number", "report_version", ["case_number"])
    op.create_index("ix_report_version_state", "report_version", ["state"])
    op.create_index("ix_report_version_latest", "report_version", ["latest", "report_id"])
    op.create_index(
        "ix_report_version_request", "report_version", ["author", "request_id"], unique=True
    )


def downgrade() -> None:
    op.drop_table("report_version")
