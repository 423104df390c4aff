"""Migrations 0011, 0012 and 0015 on a database that already holds custody data: the outbox
rows get their resource, every location name in use becomes a location, secure where cash,
drugs or firearms already rest, so stored items keep moving under the new rules; and each
item's JSON description is split into its columns, down to the decimal's last digit."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import create_engine, text

from justice.platform.db import alembic_config, migrate, sync_url

_ITEM = (
    "INSERT INTO custody_item (id, seizure_id, case_number, category, state, seal, location,"
    " custodian, pending_receiver, resume_state, parent_id, on_hold, holds, outcome,"
    " checked_out_to, spec, chain_length, chain_head, create_time, update_time, revision)"
    " VALUES (:id, :id, 'C/1', :category, 'IN_STORAGE', :id, :location, 'custodian-2001', '',"
    " 'IN_STORAGE', '', false, '[]', '', '', :spec, 1, '', :now, :now, 1)"
)
_OUTBOX = (
    "INSERT INTO exchange_outbox (id, recipient, message_type, subject, subject_ref, payload,"
    " created_at, in_reply_to, attempt) VALUES (:id, 'p', 'custody_event', 's', :ref, :payload,"
    " :now, '', 1)"
)


def test_existing_locations_and_outbox_rows_are_carried_over(database_url: str) -> None:
    migrate(database_url, "0010_fines")
    engine = create_engine(sync_url(database_url))
    now = datetime.now(UTC)
    with engine.begin() as connection:
        for item, category, location in (
            ("a" * 24, "DRUGS", "locations/old.vault"),
            ("b" * 24, "DOCUMENT", "locations/old.vault"),
            ("c" * 24, "DOCUMENT", "locations/old.shelf"),
        ):
            connection.execute(
                text(_ITEM),
                {
                    "id": item,
                    "category": category,
                    "location": location,
                    "now": now,
                    "spec": "{}",
                },
            )
        for message, ref in (("m1", f"items/{'a' * 24}@1:ff"), ("m2", "seizures/x")):
            connection.execute(
                text(_OUTBOX), {"id": message, "ref": ref, "payload": b"{}", "now": now}
            )
    migrate(database_url)
    with engine.connect() as connection:
        locations = connection.execute(
            text("SELECT id, barcode, secure, kind FROM custody_location ORDER BY id")
        ).all()
        resources = connection.execute(
            text("SELECT id, resource FROM exchange_outbox ORDER BY id")
        ).all()
    engine.dispose()
    assert [(r[0], r[1], bool(r[2]), r[3]) for r in locations] == [
        ("old.shelf", "old.shelf", False, "OTHER"),
        ("old.vault", "old.vault", True, "OTHER"),
    ]
    assert [tuple(r) for r in resources] == [("m1", f"items/{'a' * 24}"), ("m2", "seizures/x")]


_DRUGS = {
    "description": "pills, bag \u00e9",
    "value": ["1234.50", "EUR"],
    "photos": ["evidence/p1", "evidence/p2"],
    "count": 3,
    "details": {"substance": "MDMA", "net_weight": "12.340", "unit": "g"},
}
_DOCUMENT = {"description": "letter", "value": None, "photos": [], "count": 1, "details": None}
_MINE = {"d": "d" * 24, "e": "e" * 24}
_SPLIT = (
    "SELECT id, description, value_amount, value_currency, photos, count, details"
    " FROM custody_item WHERE id IN (:d, :e) ORDER BY id"
)


def test_item_descriptions_move_from_json_into_columns_and_back(database_url: str) -> None:
    # The module's database may already be at head: back to the revision before 0015.
    migrate(database_url, "0014_outbox_claims")
    command.downgrade(alembic_config(database_url), "0014_outbox_claims")
    engine = create_engine(sync_url(database_url))
    now = datetime.now(UTC)
    with engine.begin() as connection:
        for item, category, spec in (
            ("d" * 24, "DRUGS", _DRUGS),
            ("e" * 24, "DOCUMENT", _DOCUMENT),
        ):
            connection.execute(
                text(_ITEM),
                {
                    "id": item,
                    "category": category,
                    "location": "",
                    "now": now,
                    "spec": json.dumps(spec, ensure_ascii=False),
                },
            )
    migrate(database_url, "0015_custody_item_spec_columns")
    with engine.connect() as connection:
        drugs, document = connection.execute(text(_SPLIT), _MINE).all()
    assert drugs[:4] == ("d" * 24, "pills, bag \u00e9", "1234.50", "EUR")
    assert json.loads(drugs[4]) == _DRUGS["photos"]
    assert drugs[5] == 3
    assert json.loads(drugs[6]) == _DRUGS["details"]
    assert tuple(document) == ("e" * 24, "letter", None, None, "[]", 1, None)
    command.downgrade(alembic_config(database_url), "0014_outbox_claims")
    with engine.connect() as connection:
        mine = "SELECT spec FROM custody_item WHERE id IN (:d, :e) ORDER BY id"
        specs = connection.execute(text(mine), _MINE).scalars()
        assert [json.loads(s) for s in specs] == [_DRUGS, _DOCUMENT]
    engine.dispose()
