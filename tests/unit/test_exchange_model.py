"""Partner records, delivery states and the generated NATS authorization."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from justice.devstack.pki import DevPki
from justice.exchange.bus import INBOX_STREAM
from justice.exchange.inbound import Dispatcher, InboundMessage
from justice.exchange.model import Delivery, DeliveryState, PartnerKind, check_partner
from justice.exchange.nats_config import (
    PLATFORM_USER,
    derive_password,
    partner_permissions,
    render_authorization,
)
from justice.platform.errors import FailedPrecondition, InvalidArgument
from tests.exchange_env import partner_record

NOW = datetime(2026, 4, 26, tzinfo=UTC)


def test_partner_certificate_must_name_the_partner(pki: DevPki) -> None:
    good = partner_record(pki, "court-brussels", kind=PartnerKind.COURT)
    assert check_partner(good).subject.rfc4514_string()
    stolen = partner_record(pki, "court-brussels")
    stolen.id = "fines-agency"
    with pytest.raises(InvalidArgument) as error:
        check_partner(stolen)
    assert [v.field for v in error.value.violations] == ["partner.signing_certificate_pem"]


def test_receipts_are_always_allowed_everything_else_granted(pki: DevPki) -> None:
    partner = partner_record(pki, "prosecutor-antwerp")
    assert partner.may_send("receipt")
    assert partner.may_receive("receipt")
    assert partner.may_send("report_acknowledged")
    assert not partner.may_send("fine_paid")
    assert not partner.may_receive("vehicle_lookup")


@pytest.mark.parametrize("state", [DeliveryState.REJECTED, DeliveryState.EXPIRED])
def test_redeliver_resets_a_bad_settlement(state: DeliveryState) -> None:
    delivery = Delivery("id", "p", "t", "r", state, NOW, reason="X", receipt="r1")
    delivery.redeliver()
    assert (delivery.state, delivery.attempts, delivery.reason) == (DeliveryState.PENDING, 2, "")


@pytest.mark.parametrize(
    "state", [DeliveryState.PENDING, DeliveryState.PUBLISHED, DeliveryState.DELIVERED]
)
def test_redeliver_refuses_open_or_good_deliveries(state: DeliveryState) -> None:
    with pytest.raises(FailedPrecondition):
        Delivery("id", "p", "t", "r", state, NOW).redeliver()


def test_partner_permissions_cover_only_its_own_subjects() -> None:
    permissions = partner_permissions("court-brussels")
    assert all("court-brussels" in s for s in permissions["publish"] + permissions["subscribe"])
    assert (
        f"$JS.API.CONSUMER.MSG.NEXT.{INBOX_STREAM}.partner-court-brussels"
        in (permissions["publish"])
    )
    assert not any(s in (">", "$JS.API.>") for s in permissions["publish"])


def test_authorization_block_lists_platform_and_partners() -> None:
    text = render_authorization(["b", "a", "a"], b"secret")
    assert text.count("user:") == 3
    assert text.index('"partner-a"') < text.index('"partner-b"')
    assert derive_password(b"secret", PLATFORM_USER) in text
    assert derive_password(b"other", PLATFORM_USER) not in text


async def test_dispatcher_refuses_double_registration() -> None:
    dispatcher = Dispatcher()

    async def handler(message: InboundMessage) -> None:
        return None

    dispatcher.register("report_acknowledged", handler)
    with pytest.raises(ValueError, match="exists already"):
        dispatcher.register("report_acknowledged", handler)
    with pytest.raises(ValueError, match="exists already"):
        dispatcher.register("receipt", handler)
    assert dispatcher.message_types == {"report_acknowledged"}
