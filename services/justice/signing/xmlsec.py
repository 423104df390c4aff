"""The independent check: how `xmlsec1` (1.2.x) verifies a document XadesSigner produced.

One definition shared by the CLI, the tests and the README, so the command people run by hand
is the one CI proves.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["xmlsec1_verify_command"]

_DS_NS = "http://www.w3.org/2000/09/xmldsig#"
_XADES_NS = "http://uri.etsi.org/01903/v1.3.2#"


def xmlsec1_verify_command(
    xml_path: Path, ca_path: Path, *, executable: str = "xmlsec1"
) -> list[str]:
    """argv for `xmlsec1 --verify` of an enveloped XAdES signature against a CA bundle (PEM).

    * `--id-attr:Id <ns>:<element>`: xmlsec1 only resolves `#id` references through attributes
      it was told are ids; our signatures reference SignedProperties and KeyInfo by Id.
    * `--enabled-key-data x509`: take the key from the certificate only, which is therefore
      verified against `--trusted-pem` (a bare KeyValue would skip the certificate check).
    * `--enabled-reference-uris empty,same-doc`: URI="" and `#id` only, never a file or URL.
    """
    return [
        executable,
        "--verify",
        "--enabled-key-data",
        "x509",
        "--enabled-reference-uris",
        "empty,same-doc",
        "--trusted-pem",
        str(ca_path),
        "--id-attr:Id",
        f"{_XADES_NS}:SignedProperties",
        "--id-attr:Id",
        f"{_DS_NS}:KeyInfo",
        str(xml_path),
    ]
