"""The XML form of a fine letter: the same content as the PDF, for the XAdES signature."""

from __future__ import annotations

from lxml import etree

from justice.fines.letter import Letter
from justice.fines.model import Fine

NAMESPACE = "urn:justice-exchange:fine-letter:1"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def _q(tag: str) -> str:
    return f"{{{NAMESPACE}}}{tag}"


def render(fine: Fine, letter: Letter, kind: str) -> bytes:
    root = etree.Element(_q("FineLetter"), nsmap={"fl": NAMESPACE})
    root.set(_XML_LANG, letter.language)
    root.set("kind", kind)

    def add(parent: etree._Element, tag: str, text: str) -> etree._Element:
        element = etree.SubElement(parent, _q(tag))
        element.text = text
        return element

    add(root, "Fine", fine.name)
    add(root, "PaymentReference", fine.payment_reference)
    add(root, "Amount", str(fine.outstanding.amount)).set("currency", fine.outstanding.currency)
    add(root, "Title", letter.title)
    addressee = etree.SubElement(root, _q("Addressee"))
    for line in letter.addressee:
        add(addressee, "Line", line)
    rows = etree.SubElement(root, _q("Rows"))
    for label, value in letter.rows:
        add(rows, "Row", value).set("label", label)
    for paragraph in letter.closing:
        add(root, "Paragraph", paragraph)
    add(root, "Issuer", letter.issuer)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
