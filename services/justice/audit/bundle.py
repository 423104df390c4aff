"""The export bundle: audit records as XML, signed by the platform, checkable offline.

Offline checking needs only this module, the CA certificate and the bundle: the XAdES
signature proves who exported it and that nothing changed since; the records' own hashes
prove the chain inside it is unbroken. The signer must be the platform's audit identity, not
merely anyone the CA certified: an officer's own signing key must not make a bundle pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from lxml import etree

from justice.audit.chain import ChainCheck, ChainVerifier
from justice.audit.model import AuditEntry, AuditRecord

if TYPE_CHECKING:
    from justice.signing.xades import Verdict

NAMESPACE = "urn:justice:audit:export:v1"
_NS = {"a": NAMESPACE}
_FIELDS = (
    "Principal",
    "Agency",
    "Unit",
    "Service",
    "Method",
    "Purpose",
    "Outcome",
    "Reason",
    "Peer",
)


def _q(tag: str) -> str:
    return f"{{{NAMESPACE}}}{tag}"


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def render(records: Sequence[AuditRecord], exported_at: datetime, exported_by: str) -> bytes:
    root = etree.Element(_q("AuditExport"), nsmap={None: NAMESPACE})
    root.set("exportedAt", _time(exported_at))
    root.set("exportedBy", exported_by)
    root.set("count", str(len(records)))
    if records:
        root.set("firstSequence", str(records[0].sequence))
        root.set("lastSequence", str(records[-1].sequence))
    for record in records:
        e = record.entry
        node = etree.SubElement(root, _q("Record"), sequence=str(record.sequence))
        etree.SubElement(node, _q("Time")).text = _time(e.time)
        values = (e.principal, e.agency, e.unit, e.service, e.method, e.purpose, e.outcome)
        for tag, value in zip(_FIELDS, (*values, e.reason, e.peer), strict=True):
            etree.SubElement(node, _q(tag)).text = value
        resources = etree.SubElement(node, _q("Resources"))
        for resource in e.resources:
            etree.SubElement(resources, _q("Resource")).text = resource
        etree.SubElement(node, _q("PreviousHash")).text = record.previous_hash
        etree.SubElement(node, _q("Hash")).text = record.hash
    result: bytes = etree.tostring(root, encoding="UTF-8", xml_declaration=True)
    return result


def _text(node: etree._Element, tag: str) -> str:
    return node.findtext(f"a:{tag}", default="", namespaces=_NS) or ""


def records_of(root: etree._Element) -> list[AuditRecord]:
    """The records of a parsed (and signature-checked) export; ValueError when malformed."""
    if root.tag != _q("AuditExport"):
        raise ValueError("not an AuditExport document")
    records = []
    for node in root.iterfind("a:Record", namespaces=_NS):
        values = {tag: _text(node, tag) for tag in _FIELDS}
        entry = AuditEntry(
            time=datetime.strptime(_text(node, "Time"), "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=UTC
            ),
            principal=values["Principal"],
            agency=values["Agency"],
            unit=values["Unit"],
            service=values["Service"],
            method=values["Method"],
            resources=tuple(
                r.text or "" for r in node.iterfind("a:Resources/a:Resource", namespaces=_NS)
            ),
            purpose=values["Purpose"],
            outcome=values["Outcome"],
            reason=values["Reason"],
            peer=values["Peer"],
        )
        records.append(
            AuditRecord(
                int(node.get("sequence", "0")),
                entry,
                _text(node, "PreviousHash"),
                _text(node, "Hash"),
            )
        )
    return records


def check_chain(records: Sequence[AuditRecord]) -> ChainCheck:
    """Checks the chain inside a bundle, anchored on its first record's previous hash."""
    if not records:
        return ChainCheck(checked=0)
    verifier = ChainVerifier(records[0].sequence, records[0].previous_hash)
    verifier.feed(records)
    return verifier.result()


@dataclass(frozen=True)
class BundleCheck:
    """What an offline check of an exported bundle found; `ok` is the verdict."""

    # Empty when the bundle is good; otherwise an UPPER_SNAKE reason and a detail.
    problem: str
    detail: str = ""
    signer: str = ""
    signing_time: datetime | None = None
    records: list[AuditRecord] = field(default_factory=list)
    chain: ChainCheck | None = None

    @property
    def ok(self) -> bool:
        return not self.problem


def check(verdict: Verdict, expected_signer: str) -> BundleCheck:
    """Judge a bundle from its signature verdict: signed by `expected_signer`, certified by
    the trusted CA, and the records it covers form an unbroken chain."""
    if not verdict.integrity_ok or verdict.signed_root is None:
        return BundleCheck(verdict.reason or "SIGNATURE_INVALID", verdict.detail)
    signer = verdict.signer_id or ""
    found = BundleCheck("", signer=signer, signing_time=verdict.signing_time)
    if not verdict.chains_to_ca:
        return replace(found, problem="UNTRUSTED", detail="the signer is not certified by the CA")
    # Read only from what the signature covers (defence against wrapping).
    root = verdict.signed_root
    if signer != expected_signer or root.get("exportedBy") != expected_signer:
        return replace(
            found,
            problem="WRONG_SIGNER",
            detail=f"signed by {signer or 'an unnamed signer'!r}, "
            f"not the platform's audit signer {expected_signer!r}",
        )
    try:
        records = records_of(root)
    except ValueError as error:
        return replace(found, problem="MALFORMED_BUNDLE", detail=str(error))
    if root.get("count") != str(len(records)):
        return replace(found, problem="MALFORMED_BUNDLE", detail="the record count differs")
    found = replace(found, records=records, chain=check_chain(records))
    if found.chain is not None and not found.chain.intact:
        return replace(
            found,
            problem=found.chain.problem.value if found.chain.problem else "CHAIN_BROKEN",
            detail=f"the chain breaks at sequence {found.chain.broken_at}",
        )
    return found
