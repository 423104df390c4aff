"""Evidence: records (with the uploader and its unit), uploads in progress, shares.

Revision ID: 0003_evidence
Revises: 0002_exchange_outbox
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_evidence"
down_revision = "0002_exchange_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evidence",
        sa.Column("evidence_id", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("case_number", sa.String(length=64), nullable=False),
        sa.Column("report", sa.String(length=80), nullable=False),
        sa.Column("media_type", sa.String(length=160), nullable=False),
        sa.Column("original_filename", sa.String(length=255), nullable=False),
        sa.Column("capture_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("capture_device", sa.String(length=256), nullable=False),
        sa.Column("uploader", sa.String(length=128), nullable=False),
        sa.Column("unit", sa.String(length=128), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.String(length=63), nullable=False),
        sa.Column("object_key", sa.String(length=200), nullable=False),
        sa.Column("version_id", sa.String(length=200), nullable=False),
        sa.Column("retention_mode", sa.String(length=16), nullable=False),
        sa.Column("retain_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("legal_hold", sa.Boolean(), nullable=False),
        sa.Column("integrity", sa.String(length=16), nullable=False),
        sa.Column("verify_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("evidence_id"),
    )
    op.create_index("ix_evidence_request", "evidence", ["uploader", "request_id"], unique=True)
    op.create_index("ix_evidence_object", "evidence", ["bucket", "object_key", "version_id"])
    op.create_index("ix_evidence_unit", "evidence", ["unit"])
    op.create_index("ix_evidence_case_number", "evidence", ["case_number"])
    op.create_index("ix_evidence_report", "evidence", ["report"])
    op.create_index("ix_evidence_media_type", "evidence", ["media_type"])
    op.create_index("ix_evidence_sha256", "evidence", ["sha256"])

    op.create_table(
        "evidence_upload",
        sa.Column("upload_id", sa.String(length=64), nullable=False),
        sa.Column("uploader", sa.String(length=128), nullable=False),
        sa.Column("unit", sa.String(length=128), nullable=False),
        sa.Column("metadata_json", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.String(length=63), nullable=False),
        sa.Column("object_key", sa.String(length=200), nullable=False),
        sa.Column("s3_upload_id", sa.String(length=512), nullable=False),
        sa.Column("committed_offset", sa.BigInteger(), nullable=False),
        sa.Column("parts_json", sa.Text(), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("upload_id"),
    )
    op.create_index("ix_evidence_upload_expire_time", "evidence_upload", ["expire_time"])

    op.create_table(
        "evidence_share",
        sa.Column("share_id", sa.String(length=64), nullable=False),
        sa.Column("evidence_id", sa.String(length=64), nullable=False),
        sa.Column("sharer", sa.String(length=128), nullable=False),
        sa.Column("partner", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=512), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("share_id"),
    )
    op.create_index("ix_evidence_share_evidence_id", "evidence_share", ["evidence_id"])


def downgrade() -> None:
    op.drop_table("evidence_share")
    op.drop_table("evidence_upload")
    op.drop_table("evidence")
