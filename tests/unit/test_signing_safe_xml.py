"""parse_untrusted: the single entry point for outside XML."""

from __future__ import annotations

import time

import pytest

from justice.signing.safe_xml import UnsafeXml, XmlTooLarge, parse_untrusted
from tests.xml_attacks import STATIC_ATTACKS, XmlAttack

LIMIT = 5 * 1024 * 1024
_DTD_ATTACKS = [a for a in STATIC_ATTACKS if b"<!DOCTYPE" in a.data and a.name != "utf16-doctype"]


def test_parses_ordinary_documents_with_comments_and_cdata() -> None:
    root = parse_untrusted(
        b'<r a="1"><!-- note --><t><![CDATA[<b>]]> &amp; &#233;</t></r>', max_bytes=LIMIT
    )
    assert root.tag == "r"
    assert root.findtext("t") == "<b> & \u00e9"


@pytest.mark.parametrize(
    "attack", [a for a in STATIC_ATTACKS if "UNSAFE_XML" in a.reasons], ids=repr
)
def test_hostile_input_raises_unsafe_xml(attack: XmlAttack) -> None:
    with pytest.raises(UnsafeXml) as caught:
        parse_untrusted(attack.data, max_bytes=LIMIT)
    assert caught.value.reason


@pytest.mark.parametrize("attack", _DTD_ATTACKS, ids=repr)
def test_dtd_attacks_are_caught_by_the_parser_guard_not_only_the_byte_scan(
    attack: XmlAttack,
) -> None:
    # Re-encoded as UTF-16 the byte-level pre-check cannot see "<!DOCTYPE"; libxml2 parses the
    # DTD (without expanding or fetching anything) and the docinfo check has to refuse it.
    text = attack.data.decode("utf-8").replace('<?xml version="1.0"?>', "")
    data = ('<?xml version="1.0" encoding="UTF-16"?>' + text).encode("utf-16")
    assert b"<!DOCTYPE" not in data
    started = time.perf_counter()
    with pytest.raises(UnsafeXml):
        parse_untrusted(data, max_bytes=LIMIT)
    assert time.perf_counter() - started < 1.0


def test_size_limit_is_checked_before_parsing() -> None:
    with pytest.raises(XmlTooLarge):
        parse_untrusted(b"<r>" + b"x" * 100 + b"</r>", max_bytes=50)


def test_non_bytes_input_is_refused() -> None:
    with pytest.raises(UnsafeXml):
        parse_untrusted("<r/>", max_bytes=LIMIT)  # type: ignore[arg-type]
