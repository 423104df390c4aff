"""Pure security pieces: the rule decision, four-eyes requests, dev tokens, the identity cache."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from justice.access.model import Grant, roles_in_force
from justice.platform.errors import FailedPrecondition, PermissionDenied, Unauthenticated
from justice.security.approvals import ApprovalRequest, ApprovalState
from justice.security.identity import CachedDirectory
from justice.security.principal import Principal, Role, Standing
from justice.security.rules import RULES, Condition, decide
from justice.security.tokens import DevTokens

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GET = "/justice.reports.v1.ReportService/GetReport"


def who(id_: str, *roles: Role) -> Principal:
    return Principal(id_, "Agency", "unit", roles=frozenset(roles))


def test_unknown_method_is_denied_by_default() -> None:
    with pytest.raises(PermissionDenied) as caught:
        decide(RULES, "/justice.x.v1.Nope/Do", who("a", *Role))
    assert caught.value.reason == "NO_RULE"


def test_role_decides_and_conditions_travel_with_the_access() -> None:
    with pytest.raises(PermissionDenied):
        decide(RULES, GET, who("a", Role.AUDITOR))
    prosecutor = decide(RULES, GET, who("p", Role.PROSECUTOR))
    assert prosecutor.conditions == frozenset({Condition.SUBMITTED_TO_OFFICE})
    both = decide(RULES, GET, who("b", Role.PROSECUTOR, Role.REPORT_WRITER))
    assert both.conditions == frozenset({Condition.SUBMITTED_TO_OFFICE, Condition.OWN_UNIT})


def request(**overrides: object) -> ApprovalRequest:
    values: dict[str, object] = {
        "id": "a" * 24,
        "action": "access.grant_role",
        "resource": "users/u",
        "summary": "grant",
        "payload": {},
        "requested_by": "admin-1",
        "beneficiary": "u",
        "approver_roles": frozenset({Role.ACCESS_ADMIN}),
        "create_time": NOW,
        "expire_time": NOW + timedelta(hours=1),
    }
    values.update(overrides)
    return ApprovalRequest(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("approver", ["admin-1", "u"])
def test_requester_and_beneficiary_cannot_approve(approver: str) -> None:
    with pytest.raises(PermissionDenied) as caught:
        request().decide(who(approver, Role.ACCESS_ADMIN), True, NOW)
    assert caught.value.reason == "SELF_APPROVAL"


def test_approver_needs_an_approver_role_and_a_live_request() -> None:
    with pytest.raises(PermissionDenied):
        request().decide(who("admin-2", Role.AUDITOR), True, NOW)
    late = request()
    with pytest.raises(FailedPrecondition) as caught:
        late.decide(who("admin-2", Role.ACCESS_ADMIN), True, NOW + timedelta(hours=2))
    assert caught.value.reason == "APPROVAL_EXPIRED"
    ok = request()
    ok.decide(who("admin-2", Role.ACCESS_ADMIN), True, NOW)
    assert (ok.state, ok.decided_by) == (ApprovalState.APPROVED, "admin-2")


def test_tokens_verify_expire_and_refuse_forgery() -> None:
    tokens = DevTokens(b"k" * 32, timedelta(minutes=15))
    token = tokens.mint("officer-1", timedelta(minutes=5), NOW)
    assert tokens.verify(token, NOW + timedelta(minutes=1)) == ("officer-1", NOW)
    with pytest.raises(Unauthenticated):
        tokens.verify(token, NOW + timedelta(minutes=6))
    with pytest.raises(Unauthenticated):
        DevTokens(b"x" * 32, timedelta(minutes=15)).verify(token, NOW)


class CountingDirectory:
    def __init__(self) -> None:
        self.calls = 0

    async def standing(self, subject: str) -> Standing | None:
        self.calls += 1
        return Standing(who(subject), active=True)

    async def revoked_serials(self) -> frozenset[str]:
        return frozenset()


async def test_identity_cache_lives_at_most_its_ttl_and_dies_on_change() -> None:
    clock = [0.0]
    source = CountingDirectory()
    cache = CachedDirectory(source, 1.0, monotonic=lambda: clock[0])
    await cache.standing("a")
    await cache.standing("a")
    assert source.calls == 1
    clock[0] = 1.0
    await cache.standing("a")
    assert source.calls == 2
    cache.invalidate()
    await cache.standing("a")
    assert source.calls == 3
    with pytest.raises(ValueError, match="TTL"):
        CachedDirectory(source, 5.0)


class SlowDirectory(CountingDirectory):
    """Answers when released, so that callers can pile up behind one lookup."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def standing(self, subject: str) -> Standing | None:
        self.calls += 1
        await self.release.wait()
        return Standing(who(subject), active=True)


async def _settle() -> None:
    """Let every task started so far run up to its first real wait."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_callers_that_miss_together_share_one_lookup_of_their_generation() -> None:
    source = SlowDirectory()
    cache = CachedDirectory(source, 1.0)
    together = [asyncio.create_task(cache.standing("a")) for _ in range(20)]
    await _settle()
    assert source.calls == 1
    # A change while that lookup runs: a caller from now on must not get its answer.
    cache.invalidate()
    after = asyncio.create_task(cache.standing("a"))
    await _settle()
    assert source.calls == 2
    source.release.set()
    answers = await asyncio.gather(*together)
    assert len({id(answer) for answer in answers}) == 1
    fresh = await after
    assert fresh is not None
    assert fresh is not answers[0]


def test_a_temporary_grant_lapses_on_its_own() -> None:
    grant = Grant(
        id="g1",
        user="officer-1",
        role=Role.AUDITOR,
        unit="",
        granted_by="access-admin-1",
        create_time=NOW,
        expire_time=NOW + timedelta(hours=8),
    )
    assert roles_in_force([grant], NOW + timedelta(hours=7, minutes=59)) == {Role.AUDITOR}
    assert roles_in_force([grant], NOW + timedelta(hours=8)) == frozenset()
    grant.revoke("access-admin-2", NOW + timedelta(hours=1))
    assert roles_in_force([grant], NOW + timedelta(hours=2)) == frozenset()
