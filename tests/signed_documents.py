"""The independent tools that check our signed documents: xmlsec1, pdftotext and pdfsig."""

from __future__ import annotations

import subprocess
from pathlib import Path

from justice.devstack.pki import DevPki
from justice.signing.xmlsec import xmlsec1_verify_command


def xmlsec1_verify(signed: bytes, pki: DevPki, directory: Path) -> str:
    """xmlsec1's complaint about a signed XML document; "" when it verifies."""
    path = directory / "signed.xml"
    path.write_bytes(signed)
    done = subprocess.run(
        xmlsec1_verify_command(path, pki.ca_path), capture_output=True, text=True, check=False
    )
    return "" if done.returncode == 0 else done.stderr


def pdf_text(pdf: bytes, directory: Path) -> str:
    """The PDF's text as poppler's pdftotext reads it, whitespace collapsed."""
    path = directory / "document.pdf"
    path.write_bytes(pdf)
    done = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True)
    return " ".join(done.stdout.split())


def pdfsig_report(pdf: bytes, directory: Path) -> str:
    """poppler's pdfsig report. Its exit status is not used: 2 means the signer is not in
    poppler's NSS trust store, which the dev CA never is."""
    path = directory / "document.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, check=False).stdout
