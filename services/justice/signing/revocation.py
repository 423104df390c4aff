"""Revocation data for XAdES B-LT: where the signer gets CRLs, and what a CRL says about a
certificate at a given time.

A B-LT signature carries the CRL of its signer's CA (RevocationValues), so a verifier ten years
on needs no network to learn that the certificate was not revoked when the signature was
timestamped. A CRL counts only if it is signed by the certificate's issuer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

__all__ = ["FileRevocationSource", "RevocationSource", "revoked_since"]


class RevocationSource(Protocol):
    def crls(self) -> Sequence[x509.CertificateRevocationList]:
        """The current CRLs of the CAs that issue signing certificates."""
        ...


class FileRevocationSource:
    """CRLs from a file (PEM, one or more, or a single DER) that operations keep current: the dev
    CA's crl.pem, or the organisation's CRL fetched by a cron job. Re-read when the file's
    modification time changes, so a revocation takes effect without a restart."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._cached: tuple[int, tuple[x509.CertificateRevocationList, ...]] | None = None

    def crls(self) -> Sequence[x509.CertificateRevocationList]:
        try:
            stamp = os.stat(self._path).st_mtime_ns
        except FileNotFoundError:
            return ()
        cached = self._cached
        if cached is not None and cached[0] == stamp:
            return cached[1]
        data = self._path.read_bytes()
        loaded = (
            tuple(
                x509.load_pem_x509_crl(b"-----BEGIN X509 CRL-----" + block)
                for block in data.split(b"-----BEGIN X509 CRL-----")[1:]
            )
            if b"-----BEGIN X509 CRL-----" in data
            else (x509.load_der_x509_crl(data),)
        )
        self._cached = (stamp, loaded)
        return loaded


def crl_der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(Encoding.DER)


def revoked_since(
    certificate: x509.Certificate,
    crls: Iterable[x509.CertificateRevocationList],
    issuers: Iterable[x509.Certificate],
) -> datetime | None:
    """When `certificate` was revoked according to any CRL its issuer signed, else None.

    CRLs that are not signed by the certificate's issuer are ignored: unsigned properties can be
    added by anyone, so a forged CRL must neither revoke nor clear a certificate.
    """
    issuer_keys = [cert.public_key() for cert in issuers if cert.subject == certificate.issuer]
    earliest: datetime | None = None
    for crl in crls:
        if crl.issuer != certificate.issuer:
            continue
        if not any(_signed_by(crl, key) for key in issuer_keys):
            continue
        entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
        if entry is not None and (earliest is None or entry.revocation_date_utc < earliest):
            earliest = entry.revocation_date_utc
    return earliest


def _signed_by(crl: x509.CertificateRevocationList, key: object) -> bool:
    try:
        return crl.is_signature_valid(key)  # type: ignore[arg-type]
    except TypeError:
        return False
