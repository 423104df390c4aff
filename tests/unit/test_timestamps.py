"""timestamp() by datetime arithmetic gives what protobuf's own FromDatetime gives, to the
microsecond, across the whole range, before the epoch, in other zones and for naive times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from justice.platform.timestamps import timestamp


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 3, 1, 9, 30, 0, 1, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2026, 3, 1, 9, 30),  # naive: the machine's local time, as before
    ],
)
def test_timestamp_equals_protobufs_own_conversion(when: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(when.astimezone(UTC))
    assert timestamp(when) == expected


def test_none_stays_unset_and_a_time_comes_back_whole() -> None:
    assert timestamp(None) is None
    when = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
    stamp = timestamp(when)
    assert stamp is not None
    assert stamp.ToDatetime(tzinfo=UTC) == when
