"""Migrations 0011 and 0012 on a database that already holds custody data: the outbox rows
get their resource, and every location name in use becomes a location, secure where cash,
drugs or firearms already rest, so stored items keep moving under the new rules."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine, text

from justice.platform.db import migrate, sync_url

_ITEM = (
    "INSERT INTO custody_item (id, seizure_id, case_number, category, state, seal, location,"
    " custodian, pending_receiver, resume_state, parent_id, on_hold, holds, outcome,"
    " checked_out_to, spec, chain_length, chain_head, create_time, update_time, revision)"
    " VALUES (:id, :id, 'C/1', :category, 'IN_STORAGE', :id, :location, 'custodian-2001', '',"
    " 'IN_STORAGE', '', false, '[]', '', '', '{}', 1, '', :now, :now, 1)"
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
                text(_ITEM), {"id": item, "category": category, "location": location, "now": now}
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
