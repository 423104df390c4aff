"""Custody: an item's description in columns instead of one JSON text.

ListItems parsed that JSON for every row it listed; with 1,000,000 items the parse was a
large part of a page's cost beside the query itself. Now description, estimated value
(amount as decimal text, currency), photos, count and category details are columns; only
photos (when there are any) and details (VEHICLE, CASH, DRUGS, FIREARM, ELECTRONICS) stay
JSON. Rows already stored are carried over by the database's own JSON functions.

Revision ID: 0015_custody_item_spec_columns
Revises: 0014_outbox_claims
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_custody_item_spec_columns"
down_revision = "0014_outbox_claims"
branch_labels = None
depends_on = None

_COLUMNS = ("description", "value_amount", "value_currency", "photos", "count", "details")

# One statement per backend: PostgreSQL's json operators, SQLite's json_extract.
_SPLIT = {
    "postgresql": """
        UPDATE custody_item SET
            description = COALESCE(spec::json->>'description', ''),
            value_amount = spec::json->'value'->>0,
            value_currency = spec::json->'value'->>1,
            photos = COALESCE((spec::json->'photos')::text, '[]'),
            count = COALESCE((spec::json->>'count')::integer, 1),
            details = NULLIF((spec::json->'details')::text, 'null')
    """,
    "sqlite": """
        UPDATE custody_item SET
            description = COALESCE(json_extract(spec, '$.description'), ''),
            value_amount = json_extract(spec, '$.value[0]'),
            value_currency = json_extract(spec, '$.value[1]'),
            photos = COALESCE(json_extract(spec, '$.photos'), '[]'),
            count = COALESCE(json_extract(spec, '$.count'), 1),
            details = json_extract(spec, '$.details')
    """,
}
_JOIN = {
    "postgresql": """
        UPDATE custody_item SET spec = json_build_object(
            'description', description,
            'value', CASE WHEN value_amount IS NULL THEN NULL
                ELSE json_build_array(value_amount, value_currency) END,
            'photos', photos::json, 'count', count, 'details', details::json)::text
    """,
    "sqlite": """
        UPDATE custody_item SET spec = json_object(
            'description', description,
            'value', CASE WHEN value_amount IS NULL THEN NULL
                ELSE json_array(value_amount, value_currency) END,
            'photos', json(photos), 'count', count, 'details', json(details))
    """,
}


def upgrade() -> None:
    op.add_column(
        "custody_item", sa.Column("description", sa.Text(), nullable=False, server_default="")
    )
    op.add_column("custody_item", sa.Column("value_amount", sa.String(length=40), nullable=True))
    op.add_column("custody_item", sa.Column("value_currency", sa.String(length=3), nullable=True))
    op.add_column(
        "custody_item", sa.Column("photos", sa.Text(), nullable=False, server_default="[]")
    )
    op.add_column(
        "custody_item", sa.Column("count", sa.Integer(), nullable=False, server_default="1")
    )
    op.add_column("custody_item", sa.Column("details", sa.Text(), nullable=True))
    op.execute(_SPLIT[op.get_bind().dialect.name])
    op.drop_column("custody_item", "spec")


def downgrade() -> None:
    op.add_column("custody_item", sa.Column("spec", sa.Text(), nullable=False, server_default="{}"))
    op.execute(_JOIN[op.get_bind().dialect.name])
    for column in reversed(_COLUMNS):
        op.drop_column("custody_item", column)
