"""Reading what S3 servers answer: endpoints, times and retention as each server writes them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from justice.platform.blobs import BlobLock, _parse_retention, parse_time, s3_address

_RETENTION = (
    b'<?xml version="1.0" encoding="UTF-8"?><Retention{ns}><Mode>COMPLIANCE</Mode>'
    b"<RetainUntilDate>{until}</RetainUntilDate></Retention>"
)


def _retention(until: str, ns: str = "") -> bytes:
    return _RETENTION.replace(b"{ns}", ns.encode()).replace(b"{until}", until.encode())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # radosgw 16.2: nanoseconds (minio-py 7.2 raises ValueError on these).
        ("2036-11-28T17:17:43.000000000Z", datetime(2036, 11, 28, 17, 17, 43, tzinfo=UTC)),
        ("2036-11-28T17:17:43.123456789Z", datetime(2036, 11, 28, 17, 17, 43, 123456, tzinfo=UTC)),
        # SeaweedFS, AWS: seconds or milliseconds.
        ("2036-11-28T17:17:43Z", datetime(2036, 11, 28, 17, 17, 43, tzinfo=UTC)),
        ("2036-11-28T17:17:43.5Z", datetime(2036, 11, 28, 17, 17, 43, 500000, tzinfo=UTC)),
    ],
)
def test_s3_times_are_cut_to_microseconds(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


def test_a_time_that_is_not_iso_8601_utc_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_time("next tuesday")


def test_retention_xml_with_or_without_the_s3_namespace() -> None:
    lock = BlobLock("COMPLIANCE", datetime(2036, 11, 28, 17, 17, 43, tzinfo=UTC))
    assert _parse_retention(_retention("2036-11-28T17:17:43.000000000Z")) == lock
    namespaced = _retention(
        "2036-11-28T17:17:43.000Z", ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
    )
    assert _parse_retention(namespaced) == lock
    assert _parse_retention(b"<Retention></Retention>") is None
    with pytest.raises(ValueError, match="mode"):
        _parse_retention(_retention("2036-11-28T17:17:43Z").replace(b"COMPLIANCE", b"FOREVER"))


@pytest.mark.parametrize(
    ("endpoint", "secure", "expected"),
    [
        ("127.0.0.1:9000", False, ("127.0.0.1:9000", False)),
        ("s3.example.org", True, ("s3.example.org", True)),
        ("http://127.0.0.1:9000", True, ("127.0.0.1:9000", False)),
        ("https://s3.example.org", False, ("s3.example.org", True)),
        ("https://s3.example.org:8443/", False, ("s3.example.org:8443", True)),
    ],
)
def test_the_endpoint_is_a_url_or_host_port(
    endpoint: str, secure: bool, expected: tuple[str, bool]
) -> None:
    assert s3_address(endpoint, secure) == expected


@pytest.mark.parametrize(
    "endpoint", ["http://host:9000/bucket", "ftp://host", "https://user@host", "http://"]
)
def test_an_endpoint_with_a_path_or_another_scheme_is_refused(endpoint: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        s3_address(endpoint, False)
