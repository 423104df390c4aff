"""Builders shared by the signing tests: a report document, the dev TSA, and the pieces of a
timestamped signature an outside checker looks at."""

from __future__ import annotations

from base64 import b64decode

from lxml import etree

from justice.devstack.pki import DevPki
from justice.devstack.tsa import DevTimestampAuthority

PASSPHRASE = b"unit-test-passphrase"
REPORT_NS = "urn:justice:report:v1"
DS = "{http://www.w3.org/2000/09/xmldsig#}"
XADES = "{http://uri.etsi.org/01903/v1.3.2#}"


def report(
    narrative: str = "De verdachte werd om 14u32 aangetroffen op de Meir.", *, with_id: bool = True
) -> bytes:
    id_attr = ' Id="report-1"' if with_id else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<report xmlns="{REPORT_NS}"{id_attr}>'
        f"<name>reports/0001</name><officer>officer-1001</officer>"
        f"<narrative>{narrative}</narrative></report>"
    ).encode()


def dev_tsa(pki: DevPki, passphrase: bytes = PASSPHRASE) -> DevTimestampAuthority:
    return DevTimestampAuthority.from_files(pki.tsa_cert_path, pki.tsa_key_path, passphrase)


def encapsulated_timestamp(signed: bytes) -> bytes:
    """The DER RFC 3161 token inside SignatureTimeStamp."""
    node = etree.fromstring(signed).find(
        f".//{XADES}SignatureTimeStamp/{XADES}EncapsulatedTimeStamp"
    )
    assert node is not None
    assert node.text
    return b64decode(node.text)


def signature_value_c14n(signed: bytes) -> bytes:
    """ds:SignatureValue under the canonicalisation its SignatureTimeStamp names (exclusive)."""
    root = etree.fromstring(signed)
    method = root.find(f".//{XADES}SignatureTimeStamp/{DS}CanonicalizationMethod")
    assert method is not None
    assert method.get("Algorithm") == "http://www.w3.org/2001/10/xml-exc-c14n#"
    value = root.find(f".//{DS}SignatureValue")
    assert value is not None
    return bytes(etree.tostring(value, method="c14n", exclusive=True))
