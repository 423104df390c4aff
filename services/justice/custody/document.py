"""The XML documents custody signs: the custody certificate, the inventory report and the
receiver's acceptance of a hand-over (signed with the receiver's own key).

The certificate lists every event of an item's chain with its hash and its canonical bytes
(base64), so that custody/verify_certificate.py, with the standard library only, can
recompute hash_n = sha256(hash_{n-1} || canonical_n) and reach the same head.
"""

from __future__ import annotations

import base64
from datetime import datetime

from lxml import etree

from justice.custody import chain
from justice.custody.model import Inventory, Item, Quantity

NAMESPACE = "urn:justice-exchange:custody:1"
ALGORITHM = "sha256(previous hash bytes || canonical event JSON); first previous = 32 zero bytes"


def _q(tag: str) -> str:
    return f"{{{NAMESPACE}}}{tag}"


def _add(parent: etree._Element, tag: str, text: str) -> etree._Element:
    element = etree.SubElement(parent, _q(tag))
    element.text = text
    return element


def certificate(item: Item, links: list[chain.Link], now: datetime) -> bytes:
    root = etree.Element(_q("CustodyCertificate"), nsmap={"c": NAMESPACE})
    _add(root, "Item", item.name)
    _add(root, "CaseNumber", item.case_number)
    _add(root, "Category", item.category.value)
    _add(root, "Seal", item.seal)
    _add(root, "State", item.state.value)
    _add(root, "Algorithm", ALGORITHM)
    _add(root, "IssueTime", chain.iso(now))
    events = etree.SubElement(root, _q("Events"))
    for link in links:
        element = etree.SubElement(events, _q("Event"))
        element.set("sequence", str(link.event.sequence))
        element.set("type", link.event.type)
        element.set("previous", link.previous_hash)
        element.set("hash", link.hash)
        _add(element, "Canonical", base64.b64encode(chain.canonical(link.event)).decode())
    head = _add(root, "Head", links[-1].hash if links else chain.GENESIS)
    head.set("sequence", str(len(links)))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def inventory_report(inventory: Inventory, now: datetime) -> bytes:
    root = etree.Element(_q("InventoryReport"), nsmap={"c": NAMESPACE})
    _add(root, "Name", inventory.name)
    _add(root, "Location", inventory.location)
    _add(root, "StartedBy", inventory.started_by)
    _add(root, "SubmittedBy", inventory.submitted_by)
    _add(root, "Time", chain.iso(now))
    for tag, values in (
        ("Missing", inventory.missing),
        ("Unexpected", inventory.unexpected),
        ("Found", inventory.found),
    ):
        for value in values:
            _add(root, tag, value)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def acceptance(
    item: Item,
    receiver: str,
    seal_intact: bool,
    found: Quantity,
    location: str,
    now: datetime,
) -> bytes:
    """What the receiver signs: the hand-over it answers (the TRANSFERRED event, by sequence
    and hash), the seal as found and the quantity counted. The ACCEPTED event that follows
    records this document's SHA-256, so the chain and the signature vouch for each other."""
    root = etree.Element(_q("CustodyAcceptance"), nsmap={"c": NAMESPACE})
    _add(root, "Item", item.name)
    _add(root, "CaseNumber", item.case_number)
    _add(root, "Seal", item.seal)
    handed = _add(root, "HandOver", item.chain_head)
    handed.set("sequence", str(item.chain_length))
    _add(root, "From", item.custodian)
    _add(root, "Receiver", receiver)
    _add(root, "SealIntact", str(seal_intact).lower())
    if found.count is not None:
        _add(root, "Count", str(found.count))
    if found.weight is not None:
        _add(root, "Weight", str(found.weight))
    if found.amount is not None:
        _add(root, "Amount", str(found.amount))
    if location:
        _add(root, "Location", location)
    _add(root, "Time", chain.iso(now))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
