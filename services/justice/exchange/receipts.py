"""Checking a kept receipt offline: the evidence that a partner received a delivery.

The file is a serialized DeliveryReceipt (GetDeliveryReceipt, or ExportReport with its
receipts): the partner's receipt Envelope byte for byte, and the signing certificate the
platform verified it with. Anyone holding the CA can check, with no server and no database,
that the partner's key signed a receipt naming this delivery; change one byte and it fails.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from google.protobuf.message import DecodeError

from justice.exchange import envelope as envelopes
from justice.exchange.envelope import EnvelopeRefused
from justice.exchange.message import RECEIPT
from justice.exchange.v1 import exchange_pb2 as pb
from justice.signing.identity import signer_id_of
from justice.signing.xades import signing_certificate_policy

__all__ = ["ReceiptCheck", "check_receipt"]

_RECEIPT_NAME = re.compile(r"^deliveries/([0-9a-f-]{36})/receipt$")
MAX_RECEIPT_FILE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class ReceiptCheck:
    ok: bool
    reason: str  # OK or an UPPER_SNAKE reason
    detail: str = ""
    partner: str = ""
    delivery: str = ""
    status: str = ""  # what the partner said about the delivery: ACCEPTED / REJECTED
    signed_at: datetime | None = None  # the envelope's created_at, as the partner signed it
    entries: tuple[str, ...] = field(default=())  # every envelope id the receipt settles


def _refused(reason: str, detail: str) -> ReceiptCheck:
    return ReceiptCheck(ok=False, reason=reason, detail=detail)


def check_receipt(data: bytes, anchors: Sequence[x509.Certificate]) -> ReceiptCheck:
    """Check a serialized DeliveryReceipt against trust anchors; never raises on bad input."""
    if len(data) > MAX_RECEIPT_FILE_BYTES:
        return _refused("TOO_LARGE", f"{len(data)} bytes")
    kept = pb.DeliveryReceipt()
    try:
        kept.ParseFromString(data)
    except DecodeError:
        return _refused("MALFORMED", "not a justice.exchange.v1.DeliveryReceipt")
    match = _RECEIPT_NAME.match(kept.name)
    if match is None:
        return _refused("MALFORMED", "name is not deliveries/{delivery}/receipt")
    delivery = match.group(1)
    try:
        envelope = envelopes.parse(kept.envelope)
    except EnvelopeRefused as refused:
        return _refused(refused.problem.value, refused.detail)
    if envelope.type != RECEIPT:
        return _refused("NOT_A_RECEIPT", f"the envelope is a {envelope.type}")
    if envelope.sender != kept.partner:
        return _refused("SENDER_MISMATCH", f"signed as {envelope.sender}, kept as {kept.partner}")
    try:
        chain = x509.load_pem_x509_certificates(kept.signing_certificate_pem.encode())
    except ValueError:
        return _refused("MALFORMED", "unreadable signing certificate")
    leaf = chain[0]
    if signer_id_of(leaf) != envelope.sender:
        return _refused("SIGNER_MISMATCH", "the certificate does not name the sender")
    try:
        envelopes.verify(envelope, leaf.public_key())
    except EnvelopeRefused as refused:
        return _refused(refused.problem.value, refused.detail)
    signed_at = envelope.created_at.ToDatetime(tzinfo=UTC)
    trusted = _chains(leaf, chain[1:], anchors, (datetime.now(UTC), signed_at))
    if trusted is not None:
        return _refused("UNTRUSTED_SIGNER", trusted)
    receipt = pb.Receipt()
    try:
        receipt.ParseFromString(envelope.payload)
    except DecodeError:
        return _refused("MALFORMED", "the payload is not a justice.exchange.v1.Receipt")
    statuses = {e.envelope_id: pb.ReceiptEntry.Status.Name(e.status) for e in receipt.entries}
    if delivery not in statuses:
        return _refused("NOT_FOR_THIS_DELIVERY", f"the receipt does not name {delivery}")
    return ReceiptCheck(
        ok=True,
        reason="OK",
        partner=envelope.sender,
        delivery=f"deliveries/{delivery}",
        status=statuses[delivery],
        signed_at=signed_at,
        entries=tuple(statuses),
    )


def _chains(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    instants: Sequence[datetime],
) -> str | None:
    """None when `leaf` chains to an anchor at one of `instants` (now, then when the partner
    signed: a receipt stays evidence after the partner's certificate expires), else why not."""
    if not anchors:
        return "no trust anchors"
    error = ""
    for instant in instants:
        verifier = (
            x509.verification.PolicyBuilder()
            .store(x509.verification.Store(list(anchors)))
            .time(instant)
            .extension_policies(
                ee_policy=signing_certificate_policy(require_non_repudiation=False),
                ca_policy=x509.verification.ExtensionPolicy.webpki_defaults_ca(),
            )
            .build_client_verifier()
        )
        try:
            verifier.verify(leaf, list(intermediates))
        except x509.verification.VerificationError as exc:
            error = str(exc)[:200]
            continue
        return None
    return f"the partner certificate does not chain to the CA: {error}"
