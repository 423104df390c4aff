"""AIP-158 page tokens and the AIP-160 subset of filters every List method accepts."""

from __future__ import annotations

import pytest

from justice.platform.errors import InvalidArgument
from justice.platform.listing import MAX_PAGE_SIZE, next_token, page, parse_filter

FIELDS = {"case_number": str, "size": int}


def test_terms_quoted_and_bare() -> None:
    assert parse_filter('case_number = "A \\"1\\"" AND size = 3', FIELDS) == {
        "case_number": 'A "1"',
        "size": 3,
    }


@pytest.mark.parametrize(
    "text", ["case_number", "narrative = x", 'case_number = "a" OR size = 1', "size = big"]
)
def test_bad_filters_name_the_filter_field(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_filter(text, FIELDS)
    assert [v.field for v in caught.value.violations] == ["filter"]


def test_page_tokens_round_trip_and_sizes_are_capped() -> None:
    assert page(0, next_token("k-17")).after == "k-17"
    assert page(10_000, "").size == MAX_PAGE_SIZE
    assert next_token(None) == ""
    with pytest.raises(InvalidArgument):
        page(-1, "")
    with pytest.raises(InvalidArgument):
        page(10, "%%%not-base64")
