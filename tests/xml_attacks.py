"""Hostile XML corpus, shared by the signing unit tests and (later) the gRPC-level security suite.

Plain data and builders, no test functions. Each attack names the verdict reasons that are an
acceptable answer; every one of them must yield integrity_ok=False, never an exception.

* `STATIC_ATTACKS`: parser-level attacks that need no signature (DTD, entities, size, ...).
* `signed_attacks(signed)`: tampering / wrapping variants derived from a validly signed document.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from lxml import etree

DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"ds": DS}
DEFAULT_MAX_BYTES = 5 * 1024 * 1024

UNSAFE = frozenset({"UNSAFE_XML"})


@dataclass(frozen=True)
class XmlAttack:
    name: str
    data: bytes
    reasons: frozenset[str]

    def __repr__(self) -> str:  # keeps pytest ids and failure output short
        return f"XmlAttack({self.name})"


_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + b"".join(
        b' <!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]>\n<lolz>&lol9;</lolz>"
)

_QUADRATIC = (
    b'<?xml version="1.0"?>\n<!DOCTYPE kaboom [<!ENTITY a "'
    + b"a" * 100_000
    + b'">]>\n<kaboom>'
    + b"&a;" * 20_000
    + b"</kaboom>"
)

STATIC_ATTACKS: tuple[XmlAttack, ...] = (
    XmlAttack("doctype", b"<!DOCTYPE report><report/>", UNSAFE),
    XmlAttack("internal-entity", b'<!DOCTYPE r [<!ENTITY e "injected">]><r>&e;</r>', UNSAFE),
    XmlAttack(
        "external-file-entity",
        b'<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r>&xxe;</r>',
        UNSAFE,
    ),
    XmlAttack(
        "external-network-entity",
        b'<!DOCTYPE r [<!ENTITY xxe SYSTEM "http://127.0.0.1:1/x">]><r>&xxe;</r>',
        UNSAFE,
    ),
    XmlAttack(
        "external-parameter-entity",
        b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:1/evil.dtd"> %p;]><r/>',
        UNSAFE,
    ),
    XmlAttack("external-dtd", b'<!DOCTYPE r SYSTEM "http://127.0.0.1:1/r.dtd"><r/>', UNSAFE),
    XmlAttack("billion-laughs", _LAUGHS, UNSAFE),
    XmlAttack(
        "billion-laughs-in-attribute",
        _LAUGHS.replace(b"<lolz>&lol9;</lolz>", b'<lolz a="&lol9;"/>'),
        UNSAFE,
    ),
    XmlAttack("quadratic-blowup", _QUADRATIC, UNSAFE),
    # A DOCTYPE the byte-level pre-check cannot see; the parsed docinfo must catch it.
    XmlAttack(
        "utf16-doctype",
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>'.encode(
            "utf-16"
        ),
        UNSAFE,
    ),
    XmlAttack(
        "processing-instruction",
        b'<?xml-stylesheet type="text/xsl" href="http://127.0.0.1:1/x.xsl"?><r/>',
        UNSAFE,
    ),
    XmlAttack("inner-processing-instruction", b"<r><?php system('id'); ?></r>", UNSAFE),
    XmlAttack("deep-nesting", b"<a>" * 20_000 + b"</a>" * 20_000, UNSAFE),
    XmlAttack("oversize", b"<r>" + b"a" * DEFAULT_MAX_BYTES + b"</r>", frozenset({"TOO_LARGE"})),
    XmlAttack("not-xml", b"this is not xml", UNSAFE),
    XmlAttack("json", b'{"report": "x"}', UNSAFE),
    XmlAttack("binary", bytes(range(256)), UNSAFE),
    XmlAttack("truncated", b"<report><narrative>cut", UNSAFE),
    XmlAttack("empty", b"", UNSAFE),
    XmlAttack("whitespace", b"  \n ", UNSAFE),
    # XInclude is never processed, so this is just an unsigned document.
    XmlAttack(
        "xinclude",
        b'<r xmlns:xi="http://www.w3.org/2001/XInclude">'
        b'<xi:include href="file:///etc/passwd" parse="text"/></r>',
        frozenset({"NO_SIGNATURE"}),
    ),
    XmlAttack(
        "unsigned",
        b'<report xmlns="urn:justice:report:v1"><id>1</id></report>',
        frozenset({"NO_SIGNATURE"}),
    ),
)


def _tree(signed: bytes) -> etree._Element:
    return etree.fromstring(signed, etree.XMLParser(resolve_entities=False, no_network=True))


def _bytes(root: etree._Element) -> bytes:
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


def _signature(root: etree._Element) -> etree._Element:
    found = root.find("ds:Signature", NS)
    assert found is not None, "builder needs a document with an enveloped ds:Signature"
    return found


def _alter_text(root: etree._Element) -> None:
    # Change the first non-empty text node outside the signature.
    for node in root.iter():
        if node.tag == f"{{{DS}}}Signature":
            break
        if isinstance(node.tag, str) and node.text and node.text.strip():
            node.text = "ALTERED " + node.text
            return
    raise AssertionError("no text to alter")


def _wrapped_under_new_root(signed: bytes) -> bytes:
    # <wrapper><altered copy/><original signed root/></wrapper>
    original = _tree(signed)
    forged = copy.deepcopy(original)
    forged.remove(_signature(forged))
    _alter_text(forged)
    wrapper = etree.Element("wrapper")
    wrapper.append(forged)
    wrapper.append(original)
    return _bytes(wrapper)


def _original_inside_forged_root(signed: bytes) -> bytes:
    # <root ALTERED>...<root original (with signature)/></root>: the signature is no longer
    # a child of the document root.
    original = _tree(signed)
    forged = copy.deepcopy(original)
    forged.remove(_signature(forged))
    _alter_text(forged)
    forged.append(original)
    return _bytes(forged)


def _signature_moved_to_forged_root(signed: bytes) -> bytes:
    # Forged root keeps the (valid) signature as its direct child; the original signed content
    # is hidden inside the signature's ds:Object for a careless consumer to find.
    original = _tree(signed)
    signature = _signature(original)
    original.remove(signature)
    forged = copy.deepcopy(original)
    _alter_text(forged)
    obj = signature.find("ds:Object", NS)
    assert obj is not None
    obj.append(original)
    forged.append(signature)
    return _bytes(forged)


def _unsigned_child_inserted(signed: bytes) -> bytes:
    root = _tree(signed)
    extra = etree.SubElement(root, "note")
    extra.text = "unsigned addition"
    root.insert(0, extra)
    return _bytes(root)


def _extra_object_in_signature(signed: bytes) -> bytes:
    root = _tree(signed)
    obj = etree.SubElement(_signature(root), f"{{{DS}}}Object")
    forged = copy.deepcopy(root)
    forged.remove(_signature(forged))
    _alter_text(forged)
    obj.append(forged)
    return _bytes(root)


def _text_flipped(signed: bytes) -> bytes:
    root = _tree(signed)
    _alter_text(root)
    return _bytes(root)


def _duplicate_signature(signed: bytes) -> bytes:
    root = _tree(signed)
    root.append(copy.deepcopy(_signature(root)))
    return _bytes(root)


def _signature_stripped(signed: bytes) -> bytes:
    root = _tree(signed)
    root.remove(_signature(root))
    return _bytes(root)


def _signature_as_root(signed: bytes) -> bytes:
    return _bytes(copy.deepcopy(_signature(_tree(signed))))


def _xpath_transform_added(signed: bytes) -> bytes:
    root = _tree(signed)
    for ref in _signature(root).findall("ds:SignedInfo/ds:Reference", NS):
        if ref.get("URI") == "":
            transforms = ref.find("ds:Transforms", NS)
            assert transforms is not None
            xpath = etree.SubElement(
                transforms,
                f"{{{DS}}}Transform",
                Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116",
            )
            etree.SubElement(xpath, f"{{{DS}}}XPath").text = "self::text()"
    return _bytes(root)


def _content_reference_retargeted(signed: bytes) -> bytes:
    root = _tree(signed)
    for ref in _signature(root).findall("ds:SignedInfo/ds:Reference", NS):
        if ref.get("URI") == "":
            ref.set("URI", "#inner")
    first = next(node for node in root if isinstance(node.tag, str))
    first.set("Id", "inner")
    return _bytes(root)


def _sha1_downgrade(signed: bytes) -> bytes:
    root = _tree(signed)
    method = _signature(root).find("ds:SignedInfo/ds:SignatureMethod", NS)
    assert method is not None
    method.set("Algorithm", "http://www.w3.org/2000/09/xmldsig#rsa-sha1")
    return _bytes(root)


def _signature_value_garbled(signed: bytes) -> bytes:
    root = _tree(signed)
    value = _signature(root).find("ds:SignatureValue", NS)
    assert value is not None
    assert value.text
    text = value.text.strip()
    value.text = ("A" if text[0] != "A" else "B") + text[1:]
    return _bytes(root)


def _certificate_removed(signed: bytes) -> bytes:
    root = _tree(signed)
    for data in _signature(root).findall("ds:KeyInfo/ds:X509Data", NS):
        for cert in list(data):
            data.remove(cert)
    return _bytes(root)


def _duplicate_id_planted(signed: bytes) -> bytes:
    # Plant an element carrying the SignedProperties Id in the content, hoping the resolver
    # picks it up instead of the real one.
    root = _tree(signed)
    props = _signature(root).find(
        "ds:Object/{http://uri.etsi.org/01903/v1.3.2#}QualifyingProperties/{http://uri.etsi.org/01903/v1.3.2#}SignedProperties",
        NS,
    )
    assert props is not None
    decoy = etree.Element("decoy", Id=props.get("Id", ""))
    root.insert(0, decoy)
    return _bytes(root)


_INTEGRITY = frozenset({"DIGEST_MISMATCH"})
_WRAP = frozenset({"WRAPPING_SUSPECTED"})


def signed_attacks(signed: bytes) -> tuple[XmlAttack, ...]:
    """Variants of a validly signed (enveloped, whole-document) document."""
    return (
        XmlAttack("text-flipped", _text_flipped(signed), _INTEGRITY),
        XmlAttack("unsigned-child-inserted", _unsigned_child_inserted(signed), _INTEGRITY),
        XmlAttack("wrapped-under-new-root", _wrapped_under_new_root(signed), _WRAP),
        XmlAttack(
            "original-inside-forged-root", _original_inside_forged_root(signed), _WRAP | _INTEGRITY
        ),
        XmlAttack(
            "signature-moved-to-forged-root",
            _signature_moved_to_forged_root(signed),
            _WRAP | _INTEGRITY,
        ),
        XmlAttack("extra-object-in-signature", _extra_object_in_signature(signed), _WRAP),
        XmlAttack("content-reference-retargeted", _content_reference_retargeted(signed), _WRAP),
        XmlAttack("xpath-transform-added", _xpath_transform_added(signed), _WRAP),
        XmlAttack("duplicate-id-planted", _duplicate_id_planted(signed), _WRAP | _INTEGRITY),
        XmlAttack(
            "two-signatures", _duplicate_signature(signed), frozenset({"MULTIPLE_SIGNATURES"})
        ),
        XmlAttack("signature-stripped", _signature_stripped(signed), frozenset({"NO_SIGNATURE"})),
        XmlAttack("signature-as-root", _signature_as_root(signed), _WRAP),
        XmlAttack(
            "sha1-downgrade",
            _sha1_downgrade(signed),
            frozenset({"ALGORITHM_NOT_ALLOWED", "SIGNATURE_INVALID"}),
        ),
        XmlAttack(
            "signature-value-garbled",
            _signature_value_garbled(signed),
            frozenset({"SIGNATURE_INVALID"}),
        ),
        XmlAttack(
            "certificate-removed", _certificate_removed(signed), frozenset({"NO_CERTIFICATE"})
        ),
    )
