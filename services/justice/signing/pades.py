"""PAdES signatures on PDFs (pyHanko), with the same key store as the XAdES signer, so a
PDF reader shows who issued a document and that it is unchanged.

The key is used through its `cryptography` object, never exported: a PKCS#11 key (an
RSAPrivateKey subclass, see pkcs11.py) signs the same way as a file key.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko_certvalidator.registry import SimpleCertificateStore

from justice.platform.errors import FailedPrecondition
from justice.signing.identity import SigningIdentity
from justice.signing.keystore import KeyStore, KeyStoreError, UnknownSigner

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


# A CMS SignedData with an RSA-4096 signature and a three-certificate chain fits in 8 KB.
_RESERVED = 8 * 1024


def _asn1(certificate: Any) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))


class _KeyObjectSigner(signers.Signer):
    def __init__(self, identity: SigningIdentity) -> None:
        self._key = identity.key
        super().__init__(
            signing_cert=_asn1(identity.certificate),
            cert_registry=SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
                [_asn1(c) for c in identity.chain]
            ),
        )

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        algorithm = _HASHES[digest_algorithm.lower()]
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key.sign(data, ec.ECDSA(algorithm))
        return self._key.sign(data, padding.PKCS1v15(), algorithm)


class PadesSigner:
    """Signs a PDF as a named signer whose key the store holds (PAdES baseline B)."""

    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    async def sign(self, pdf: bytes, signer_id: str, reason: str = "") -> bytes:
        try:
            identity = self._keys.identity(signer_id)
        except UnknownSigner:
            raise FailedPrecondition(
                "NO_SIGNING_KEY", f"no signing key is enrolled for {signer_id}"
            ) from None
        except KeyStoreError as error:
            raise FailedPrecondition("SIGNING_KEY_UNUSABLE", str(error)) from None
        # pyHanko's writer is synchronous and CPU-bound: off the event loop.
        return await asyncio.to_thread(self._sign, pdf, identity, reason)

    @staticmethod
    def _sign(pdf: bytes, identity: SigningIdentity, reason: str) -> bytes:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
        meta = signers.PdfSignatureMetadata(
            field_name="Signature",
            reason=reason or None,
            subfilter=SigSeedSubFilter.PADES,
            md_algorithm="sha256",
        )
        out = io.BytesIO()
        # Room for the CMS signature given up front: pyHanko skips its sizing dry run.
        signers.PdfSigner(meta, signer=_KeyObjectSigner(identity)).sign_pdf(
            writer, output=out, bytes_reserved=_RESERVED
        )
        return out.getvalue()
