"""Domain errors. Pure Python: domains raise these; one interceptor maps them to gRPC."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class JusticeError(Exception):
    """A failure the caller can act on. `reason` is UPPER_SNAKE and stable."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        violations: Sequence[FieldViolation] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.violations = tuple(violations)
        self.metadata = dict(metadata or {})


class InvalidArgument(JusticeError):
    """A field is malformed."""

    @classmethod
    def of(cls, violations: Sequence[FieldViolation]) -> InvalidArgument:
        fields = ", ".join(v.field for v in violations)
        return cls("INVALID_FIELDS", f"invalid fields: {fields}", violations=violations)


class NotFound(JusticeError):
    """No resource has that name."""


class AlreadyExists(JusticeError):
    """The resource exists already."""


class FailedPrecondition(JusticeError):
    """The resource is not in a state that allows this."""


class PermissionDenied(JusticeError):
    """The caller may not do this."""


class Unauthenticated(JusticeError):
    """No identity, or one we do not accept."""


class DataLoss(JusticeError):
    """Stored or sent bytes do not match their hash."""


class ResourceExhausted(JusticeError):
    """Too big or too many."""


class Aborted(JusticeError):
    """A concurrent change won; retry with fresh state."""


class Unavailable(JusticeError):
    """A dependency is down; retrying later may work."""
