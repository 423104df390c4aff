"""utc_time: a time column read through a plain driver, as the ORM's UtcDateTime gives it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from justice.platform.db import DriverConnection, utc_time


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        # SQLite keeps SQLAlchemy's text form, which is UTC without saying so.
        ("2026-12-01 17:58:18.123456", datetime(2026, 12, 1, 17, 58, 18, 123456, tzinfo=UTC)),
        ("2026-12-01 17:58:18", datetime(2026, 12, 1, 17, 58, 18, tzinfo=UTC)),
        # A text with its own offset keeps the instant it names.
        ("2026-12-01T17:58:18+02:00", datetime(2026, 12, 1, 15, 58, 18, tzinfo=UTC)),
        # psycopg hands back datetimes, aware in the session's zone.
        (
            datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
            datetime(2026, 1, 1, tzinfo=UTC),
        ),
        (datetime(2026, 1, 1), datetime(2026, 1, 1, tzinfo=UTC)),
    ],
)
def test_every_stored_form_reads_back_as_an_aware_utc_time(
    stored: str | datetime, expected: datetime
) -> None:
    read = utc_time(stored)
    assert read == expected
    assert read is not None
    assert read.utcoffset() == timedelta(0)


def test_what_a_driver_connection_writes_on_sqlite_reads_back_unchanged() -> None:
    moment = datetime(2026, 12, 3, 2, 30, 1, 999, tzinfo=timezone(timedelta(hours=-5)))
    written = DriverConnection(None, "sqlite").time(moment)
    assert utc_time(written) == moment
    assert utc_time(None) is None
