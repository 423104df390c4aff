"""The case number: what every domain files its records under (a report, an evidence item, a
seizure), with one syntax everywhere, so a case found in one is found in the others."""

from __future__ import annotations

import re

from justice.platform.errors import FieldViolation

_CASE_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9./_-]{0,63}$")


def case_number_violations(field: str, case_number: str) -> list[FieldViolation]:
    """Nothing for a well-formed case number; else the violation, named `field`."""
    if _CASE_NUMBER.match(case_number):
        return []
    return [FieldViolation(field, "1-64 of letters, digits and . / _ -")]
