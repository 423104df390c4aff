"""XAdES signing and verification, and the key stores that hold signing keys.

`justice.signing.pkcs11` (the HSM key store) is imported on demand, not from here, so the
python-pkcs11 extension is only loaded where an HSM is configured.
"""

from justice.signing.identity import SigningIdentity, SigningKey, signer_id_of
from justice.signing.keystore import FileKeyStore, KeyStore, KeyStoreError, UnknownSigner
from justice.signing.safe_xml import UnsafeXml, XmlTooLarge, parse_untrusted
from justice.signing.xades import (
    DEFAULT_MAX_BYTES,
    CertificateNotValid,
    Reason,
    SigningError,
    TimestampUnavailable,
    Verdict,
    XadesSigner,
    XadesVerifier,
)
from justice.signing.xmlsec import xmlsec1_verify_command

__all__ = [
    "DEFAULT_MAX_BYTES",
    "CertificateNotValid",
    "FileKeyStore",
    "KeyStore",
    "KeyStoreError",
    "Reason",
    "SigningError",
    "SigningIdentity",
    "SigningKey",
    "TimestampUnavailable",
    "UnknownSigner",
    "UnsafeXml",
    "Verdict",
    "XadesSigner",
    "XadesVerifier",
    "XmlTooLarge",
    "parse_untrusted",
    "signer_id_of",
    "xmlsec1_verify_command",
]
