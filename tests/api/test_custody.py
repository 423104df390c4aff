"""CustodyService over mTLS: bad input statuses, who may accept, four eyes, holds, alerts."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from google.type import date_pb2
from lxml import etree
from sqlalchemy.exc import NoResultFound

from justice.app import Application
from justice.audit.service import AccessQuery
from justice.custody.v1 import custody_pb2 as pb
from justice.custody.v1 import custody_pb2_grpc
from justice.devstack.pki import DevPki
from justice.platform.listing import Page
from justice.security.principal import Role
from justice.signing.identity import signer_id_of
from justice.type.money_pb2 import Money
from tests.api.conftest import ChannelFactory, Enrol, outbox_message
from tests.api.rich_status import rich_error
from tests.custody_builders import (
    PURPOSE,
    cash,
    document,
    drugs,
    ensure_location,
    location,
    new_location,
    register,
    seal,
)
from tests.eventually import eventually
from tests.signed_documents import pdf_text, pdfsig_report, xmlsec1_verify

Stub = custody_pb2_grpc.CustodyServiceStub
DS = "http://www.w3.org/2000/09/xmldsig#"


async def _stub(factory: ChannelFactory, principal: str) -> AsyncIterator[Stub]:
    async with factory(principal=principal) as channel:
        yield Stub(channel)


@pytest.fixture(scope="module")
async def officer(grpc_create_channel: ChannelFactory) -> AsyncIterator[Stub]:
    async for stub in _stub(grpc_create_channel, "officer-1001"):
        yield stub


@pytest.fixture(scope="module")
async def custodian(grpc_create_channel: ChannelFactory) -> AsyncIterator[Stub]:
    async for stub in _stub(grpc_create_channel, "custodian-2001"):
        yield stub


@pytest.fixture(scope="module")
async def other_custodian(grpc_create_channel: ChannelFactory, enrol: Enrol) -> AsyncIterator[Stub]:
    await enrol("custodian-2002", frozenset({Role.CUSTODIAN}))
    async for stub in _stub(grpc_create_channel, "custodian-2002"):
        yield stub


@pytest.fixture(scope="module")
async def supervisor(grpc_create_channel: ChannelFactory) -> AsyncIterator[Stub]:
    async for stub in _stub(grpc_create_channel, "custody-supervisor-2101"):
        yield stub


@pytest.fixture(scope="module", autouse=True)
async def storage(supervisor: Stub) -> None:
    await ensure_location(supervisor, location())


@pytest.fixture(scope="module")
async def prosecutor(grpc_create_channel: ChannelFactory) -> AsyncIterator[Stub]:
    async for stub in _stub(grpc_create_channel, "prosecutor-antwerp"):
        yield stub


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


@pytest.mark.parametrize(
    ("item", "field"),
    [
        (drugs(weight="-3"), "items[0].drugs.net_weight"),
        (drugs(weight="1e2"), "items[0].drugs.net_weight"),
        (drugs(weight="12.5", value="NaN"), "items[0].estimated_value.amount"),
        (
            pb.Item(
                category=pb.OTHER,
                description="x",
                seal="S-1",
                estimated_value=Money(amount="10", currency="EURO"),
            ),
            "items[0].estimated_value.currency",
        ),
        (
            pb.Item(category=pb.Category.ValueType(99), description="x", seal="S-2"),
            "items[0].category",
        ),
        (
            pb.Item(category=pb.CATEGORY_UNSPECIFIED, description="x", seal="S-3"),
            "items[0].category",
        ),
    ],
)
async def test_bad_items_are_invalid_argument_with_the_field(
    officer: Stub, item: pb.Item, field: str
) -> None:
    error = await refused(officer.RegisterSeizure(register(item)))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in rich_error(error).fields


async def test_a_seal_in_use_is_already_exists(officer: Stub) -> None:
    first = drugs()
    await officer.RegisterSeizure(register(first))
    again = document()
    again.seal = first.seal
    error = await refused(officer.RegisterSeizure(register(again)))
    assert error.code() is grpc.StatusCode.ALREADY_EXISTS
    assert rich_error(error).reason == "SEAL_IN_USE"


async def test_accepting_a_transfer_addressed_to_someone_else_is_denied(
    officer: Stub, custodian: Stub, other_custodian: Stub
) -> None:
    seized = await officer.RegisterSeizure(register(document()))
    name = seized.items[0].name
    moved = await officer.TransferCustody(
        pb.TransferCustodyRequest(name=name, receiver="custodian-2001")
    )
    assert moved.state == pb.IN_TRANSIT
    error = await refused(
        other_custodian.AcceptCustody(pb.AcceptCustodyRequest(name=name, seal_intact=True))
    )
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert rich_error(error).reason == "NOT_THE_RECEIVER"
    accepted = await custodian.AcceptCustody(
        pb.AcceptCustodyRequest(name=name, seal_intact=True, location=location())
    )
    assert (accepted.state, accepted.custodian) == (pb.IN_STORAGE, "custodian-2001")
    # The former holder no longer holds it.
    error = await refused(
        officer.TransferCustody(pb.TransferCustodyRequest(name=name, receiver="officer-1002"))
    )
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED


async def held_by_custodian(officer: Stub, custodian: Stub, item: pb.Item) -> str:
    seized = await officer.RegisterSeizure(register(item))
    name = seized.items[0].name
    await officer.TransferCustody(pb.TransferCustodyRequest(name=name, receiver="custodian-2001"))
    await custodian.AcceptCustody(
        pb.AcceptCustodyRequest(name=name, seal_intact=True, location=location())
    )
    return name


def destroy(name: str) -> pb.RecordDecisionRequest:
    return pb.RecordDecisionRequest(
        name=name,
        decision=pb.DESTROY,
        reference=f"DEC-{name[-8:]}",
        decision_date=date_pb2.Date(year=2026, month=3, day=1),
        authority="PK Antwerpen",
    )


DESTRUCTION = pb.Disposal(witness="Koen Wouters", method="incineration")


async def test_disposal_needs_an_approval_by_someone_else_and_no_hold(
    officer: Stub, custodian: Stub, supervisor: Stub, prosecutor: Stub
) -> None:
    name = await held_by_custodian(officer, custodian, drugs())
    decided = await prosecutor.RecordDecision(destroy(name))
    assert decided.state == pb.DECIDED
    # The same decision again applies once.
    again = await prosecutor.RecordDecision(destroy(name))
    assert again.chain_length == decided.chain_length

    error = await refused(custodian.Dispose(pb.DisposeRequest(name=name, disposal=DESTRUCTION)))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert rich_error(error).reason == "APPROVAL_REQUIRED"

    approval = await custodian.RequestDisposal(
        pb.RequestDisposalRequest(name=name, disposal=DESTRUCTION)
    )
    error = await refused(
        custodian.ApproveDisposal(pb.ApproveDisposalRequest(approval=approval.name))
    )
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED  # a custodian is no supervisor
    pending = await refused(
        custodian.Dispose(
            pb.DisposeRequest(name=name, disposal=DESTRUCTION, approval=approval.name)
        )
    )
    assert rich_error(pending).reason == "APPROVAL_REQUIRED"
    approved = await supervisor.ApproveDisposal(pb.ApproveDisposalRequest(approval=approval.name))
    assert (approved.state, approved.decided_by) == ("APPROVED", "custody-supervisor-2101")

    await prosecutor.PlaceHold(pb.PlaceHoldRequest(name=name, reference="objection-1"))
    error = await refused(
        custodian.Dispose(
            pb.DisposeRequest(name=name, disposal=DESTRUCTION, approval=approval.name)
        )
    )
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert rich_error(error).reason == "ITEM_ON_HOLD"
    await prosecutor.ReleaseHold(pb.ReleaseHoldRequest(name=name, reference="objection-1"))

    disposed = await custodian.Dispose(
        pb.DisposeRequest(name=name, disposal=DESTRUCTION, approval=approval.name)
    )
    assert (disposed.state, disposed.outcome) == (pb.DISPOSED, pb.DESTROYED)
    check = await custodian.VerifyCustodyChain(pb.VerifyCustodyChainRequest(name=name))
    assert check.intact
    assert check.length == disposed.chain_length
    assert (check.anchored_sequence, check.anchored_head) == (check.length, check.head)


async def test_self_approval_is_refused(
    officer: Stub, custodian: Stub, supervisor: Stub, prosecutor: Stub
) -> None:
    seized = await officer.RegisterSeizure(register(cash()))
    name = seized.items[0].name
    await officer.TransferCustody(
        pb.TransferCustodyRequest(name=name, receiver="custody-supervisor-2101")
    )
    await supervisor.AcceptCustody(pb.AcceptCustodyRequest(name=name, seal_intact=True))
    forfeit = destroy(name)
    forfeit.decision = pb.FORFEIT
    await prosecutor.RecordDecision(forfeit)
    approval = await supervisor.RequestDisposal(pb.RequestDisposalRequest(name=name))
    error = await refused(
        supervisor.ApproveDisposal(pb.ApproveDisposalRequest(approval=approval.name))
    )
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert rich_error(error).reason == "SELF_APPROVAL"


async def test_weight_lost_on_acceptance_raises_an_alert(
    officer: Stub, custodian: Stub, application: Application
) -> None:
    seized = await officer.RegisterSeizure(register(drugs(weight="103.5")))
    name = seized.items[0].name
    await officer.TransferCustody(pb.TransferCustodyRequest(name=name, receiver="custodian-2001"))
    accepted = await custodian.AcceptCustody(
        pb.AcceptCustodyRequest(name=name, seal_intact=True, found=pb.Quantity(weight="100.5"))
    )
    chain = await custodian.GetCustodyChain(pb.GetCustodyChainRequest(name=name))
    assert chain.events[-1].data["discrepancy"] == "weight 100.5 g of 103.5"
    alerts = await application.audit.service.list_alerts(
        None, "QUANTITY_DISCREPANCY", Page(500, "")
    )
    assert any(name in a.summary for a in alerts)
    assert accepted.chain_length == 3


async def test_the_persons_need_a_declared_purpose(officer: Stub) -> None:
    seized = await officer.RegisterSeizure(register(document()))
    assert not seized.seizure.HasField("seized_from")
    request = pb.GetSeizureRequest(name=seized.seizure.name)
    error = await refused(officer.GetSeizure(request))
    assert rich_error(error).reason == "PURPOSE_REQUIRED"
    found = await officer.GetSeizure(request, metadata=PURPOSE)
    assert found.seized_from.family_name == "Peeters"


async def test_custodians_list_only_what_they_hold(officer: Stub, custodian: Stub) -> None:
    name = await held_by_custodian(officer, custodian, document())
    mine = await custodian.ListItems(
        pb.ListItemsRequest(filter='state = "IN_STORAGE"', page_size=500)
    )
    assert name in [i.name for i in mine.items]
    assert all(i.custodian == "custodian-2001" for i in mine.items)
    error = await refused(custodian.ListItems(pb.ListItemsRequest(filter='colour = "red"')))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_the_chain_head_is_anchored_in_the_outbox_and_the_audit_record(
    officer: Stub, application: Application
) -> None:
    seized = await officer.RegisterSeizure(register(document()))
    name = seized.items[0].name
    moved = await officer.TransferCustody(
        pb.TransferCustodyRequest(name=name, receiver="custodian-2001")
    )
    anchor = f"{name}@{moved.chain_length}:{moved.chain_head}"
    message = await outbox_message(application, anchor)
    assert message.message_type == "custody_event"
    assert json.loads(message.payload)["chain_head"] == moved.chain_head

    async def recorded() -> bool:
        records = await application.audit.service.query_access(
            AccessQuery(resource=name, principal=None, start=None, end=None, page=Page(500, ""))
        )
        return any(anchor in r.entry.resources for r in records)

    assert await eventually(recorded, what="the audit record carrying the head")


async def test_a_seizure_above_the_threshold_is_notified_to_the_central_agency(
    officer: Stub, application: Application
) -> None:
    seized = await officer.RegisterSeizure(register(cash("3000.00")))
    notice = await outbox_message(application, seized.seizure.name)
    assert (notice.recipient, notice.message_type) == ("central-seizure-agency", "seizure_notice")
    body = json.loads(notice.payload)
    assert body["items"][0]["value"] == "3000.00 EUR"
    assert body["items"][0]["chain_head"] == seized.items[0].chain_head
    below = await officer.RegisterSeizure(register(cash("2500.00")))
    with pytest.raises(NoResultFound):
        await outbox_message(application, below.seizure.name)


@pytest.mark.parametrize(
    ("language", "title", "objection"),
    [
        ("nl", "Ontvangstbewijs van inbeslagneming", "klaagschrift"),
        ("fr", "Accusé de réception de saisie", "procureur du Roi"),
    ],
)
async def test_the_seizure_receipt_is_a_signed_pdf_and_signed_xml_in_the_persons_language(
    officer: Stub, pki: DevPki, tmp_path: Path, language: str, title: str, objection: str
) -> None:
    request = register(drugs(weight="103.5"), cash("3000.00"))
    request.seizure.seized_from.language = language
    seized = await officer.RegisterSeizure(request)
    ask = pb.GetSeizureReceiptRequest(name=seized.seizure.name)
    error = await refused(officer.GetSeizureReceipt(ask))
    assert rich_error(error).reason == "PURPOSE_REQUIRED"
    receipt = await officer.GetSeizureReceipt(ask, metadata=PURPOSE)
    assert receipt.language == language
    shown = pdf_text(receipt.pdf, tmp_path)
    assert title in shown
    assert objection in shown
    for item in seized.items:
        assert item.seal in shown
    assert "103.5 g" in shown
    assert "3000.00 EUR" in shown
    report = pdfsig_report(receipt.pdf, tmp_path)
    assert "Signature is Valid" in report, report
    assert "Justice Exchange" in report or "justice-server" in report, report
    assert xmlsec1_verify(receipt.signed_xml, pki, tmp_path) == ""
    assert title.encode() in receipt.signed_xml


async def test_a_sample_becomes_a_sealed_child_and_the_parent_is_resealed(
    officer: Stub, custodian: Stub
) -> None:
    name = await held_by_custodian(officer, custodian, drugs(weight="103.5"))
    parent_seal, sample_seal = seal(), seal()
    split = await custodian.SplitItem(
        pb.SplitItemRequest(
            name=name,
            sample_seal=sample_seal,
            parent_new_seal=parent_seal,
            sample=pb.Quantity(weight="3.5"),
        )
    )
    assert (split.parent.seal, split.parent.drugs.net_weight) == (parent_seal, "100.0")
    assert (split.sample.seal, split.sample.drugs.net_weight) == (sample_seal, "3.5")
    assert split.sample.parent == name
    chain = await custodian.GetCustodyChain(pb.GetCustodyChainRequest(name=name))
    assert chain.events[-1].event_type == "SAMPLE_TAKEN"
    assert chain.events[-1].data["new_seal"] == parent_seal
    for item in (name, split.sample.name):
        assert (await custodian.VerifyCustodyChain(pb.VerifyCustodyChainRequest(name=item))).intact


async def test_a_rejected_hand_over_stays_with_the_sender(officer: Stub, custodian: Stub) -> None:
    seized = await officer.RegisterSeizure(register(document()))
    name = seized.items[0].name
    await officer.TransferCustody(pb.TransferCustodyRequest(name=name, receiver="custodian-2001"))
    error = await refused(custodian.RejectCustody(pb.RejectCustodyRequest(name=name)))
    assert "reason" in rich_error(error).fields
    back = await custodian.RejectCustody(
        pb.RejectCustodyRequest(name=name, reason="seal number differs from the form")
    )
    assert (back.state, back.custodian, back.pending_receiver) == (pb.SEIZED, "officer-1001", "")


# -- the receiver's signed acceptance ---------------------------------------------------------


async def test_an_acceptance_is_signed_with_the_receivers_key_and_verifies_offline(
    officer: Stub, custodian: Stub, pki: DevPki, tmp_path: Path
) -> None:
    seized = await officer.RegisterSeizure(register(drugs(weight="12.5")))
    name = seized.items[0].name
    await officer.TransferCustody(pb.TransferCustodyRequest(name=name, receiver="custodian-2001"))
    accepted = await custodian.AcceptCustody(
        pb.AcceptCustodyRequest(
            name=name, seal_intact=True, found=pb.Quantity(weight="12.5"), location=location()
        )
    )
    found = await custodian.GetAcceptance(
        pb.GetAcceptanceRequest(name=name, sequence=accepted.chain_length)
    )
    assert (found.receiver, found.sequence) == ("custodian-2001", accepted.chain_length)
    # xmlsec1 checks it against the CA alone, and the certificate is the receiver's own.
    assert xmlsec1_verify(found.signed_xml, pki, tmp_path) == ""
    embedded = _embedded(found.signed_xml)
    assert signer_id_of(embedded) == "custodian-2001"
    (cert_path, _) = pki.signing_paths("custodian-2001")
    assert embedded == x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
    # The chain records the signed document's hash; the document names the hand-over.
    chain = await custodian.GetCustodyChain(pb.GetCustodyChainRequest(name=name))
    accepted_event = chain.events[-1]
    assert accepted_event.event_type == "ACCEPTED"
    assert accepted_event.data["acceptance_sha256"] == found.sha256
    assert hashlib.sha256(found.signed_xml).hexdigest() == found.sha256
    handed = chain.events[-2]
    assert f'sequence="{handed.sequence}">{handed.hash}<'.encode() in found.signed_xml
    assert b"<c:Weight>12.5</c:Weight>" in found.signed_xml
    # An event that is not an acceptance has none.
    error = await refused(custodian.GetAcceptance(pb.GetAcceptanceRequest(name=name, sequence=1)))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert rich_error(error).reason == "ACCEPTANCE_NOT_FOUND"


def _embedded(signed_xml: bytes) -> x509.Certificate:
    """The (first) certificate a signed document embeds: the signer's."""
    tree = etree.fromstring(signed_xml)
    der = tree.xpath("//ds:X509Certificate/text()", namespaces={"ds": DS})[0]
    return x509.load_der_x509_certificate(base64.b64decode(der))


async def test_an_acceptance_signed_with_someone_elses_certificate_is_refused(
    officer: Stub, other_custodian: Stub, pki: DevPki
) -> None:
    # custodian-2002's key store entry holds custodian-2001's key and certificate: what it
    # signs does not name custodian-2002, so it cannot stand as custodian-2002's acceptance.
    planted = pki.signing_paths("custodian-2002")
    for source, target in zip(pki.signing_paths("custodian-2001"), planted, strict=True):
        shutil.copyfile(source, target)
    try:
        seized = await officer.RegisterSeizure(register(document()))
        name = seized.items[0].name
        await officer.TransferCustody(
            pb.TransferCustodyRequest(name=name, receiver="custodian-2002")
        )
        error = await refused(
            other_custodian.AcceptCustody(pb.AcceptCustodyRequest(name=name, seal_intact=True))
        )
    finally:
        for path in planted:
            path.unlink()
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    detail = rich_error(error)
    assert detail.reason == "ACCEPTANCE_SIGNED_BY_OTHER"
    assert (detail.metadata["receiver"], detail.metadata["signer"]) == (
        "custodian-2002",
        "custodian-2001",
    )
    still = await officer.GetItem(pb.GetItemRequest(name=name))
    assert (still.state, still.pending_receiver) == (pb.IN_TRANSIT, "custodian-2002")


# -- storage locations ------------------------------------------------------------------------


async def test_locations_are_resources_that_moves_must_name(
    officer: Stub, custodian: Stub, supervisor: Stub
) -> None:
    shelf_id = f"antwerpen.r3.{uuid.uuid4().hex[:8]}"
    created = await supervisor.CreateLocation(
        pb.CreateLocationRequest(
            location_id=shelf_id,
            location=new_location(pb.SHELF, secure=False, capacity=1),
        )
    )
    assert (created.name, created.barcode, created.created_by) == (
        f"locations/{shelf_id}",
        shelf_id,
        "custody-supervisor-2101",
    )
    # Only a supervisor creates; twice is ALREADY_EXISTS; bad fields are named.
    error = await refused(
        custodian.CreateLocation(pb.CreateLocationRequest(location_id="x", location=new_location()))
    )
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    again = pb.CreateLocationRequest(location_id=shelf_id, location=new_location())
    error = await refused(supervisor.CreateLocation(again))
    assert error.code() is grpc.StatusCode.ALREADY_EXISTS
    bad = pb.CreateLocationRequest(
        location_id="../etc", location=pb.Location(kind=pb.VAULT, capacity=-1)
    )
    error = await refused(supervisor.CreateLocation(bad))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert set(rich_error(error).fields) >= {
        "location_id",
        "location.display_name",
        "location.unit",
        "location.capacity",
    }
    scanned = await custodian.GetLocation(pb.GetLocationRequest(barcode=shelf_id))
    assert scanned.name == created.name
    listed = await custodian.ListLocations(pb.ListLocationsRequest(page_size=500))
    assert created.name in [x.name for x in listed.locations]

    passport = await held_by_custodian(officer, custodian, document())
    unknown = pb.MoveItemsRequest(names=[passport], location="locations/nowhere.r0.z")
    error = await refused(custodian.MoveItems(unknown))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert rich_error(error).reason == "LOCATION_NOT_FOUND"
    assert list(rich_error(error).fields) == ["location"]
    error = await refused(
        custodian.MoveItems(pb.MoveItemsRequest(names=[passport], location_barcode="NO-SUCH"))
    )
    assert error.code() is grpc.StatusCode.NOT_FOUND
    # By barcode scan; the shelf then is full.
    moved = await custodian.MoveItems(
        pb.MoveItemsRequest(names=[passport], location_barcode=shelf_id)
    )
    assert moved.items[0].location == created.name
    second = await held_by_custodian(officer, custodian, document())
    error = await refused(
        custodian.MoveItems(pb.MoveItemsRequest(names=[second], location=created.name))
    )
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert rich_error(error).reason == "LOCATION_FULL"
    # Drugs rest in a secure location only.
    bag = await held_by_custodian(officer, custodian, drugs())
    error = await refused(
        custodian.MoveItems(pb.MoveItemsRequest(names=[bag], location=created.name))
    )
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert rich_error(error).reason == "LOCATION_NOT_SECURE"
