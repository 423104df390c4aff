"""PAdES signatures on PDFs (pyHanko), with the same key store as the XAdES signer, so a
PDF reader shows who issued a document and that it is unchanged.

The key is used through its `cryptography` object, never exported: a PKCS#11 key (an
RSAPrivateKey subclass, see pkcs11.py) signs the same way as a file key.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.signers.pdf_signer import PdfTBSDocument
from pyhanko_certvalidator.registry import SimpleCertificateStore

from justice.platform.errors import FailedPrecondition
from justice.signing.identity import SigningIdentity, sign_sha256
from justice.signing.keystore import KeyStore, KeyStoreError, UnknownSigner

_DIGEST = "sha256"


# A CMS SignedData with an RSA-4096 signature and a three-certificate chain fits in 8 KB.
_RESERVED = 8 * 1024


@dataclass(frozen=True)
class SignerCertificates:
    """A signer's certificate and its chain, DER: public, so they travel to the processes
    that prepare and finish signatures."""

    certificate: bytes
    chain: tuple[bytes, ...]


@dataclass(frozen=True)
class PreparedPdf:
    """A PDF with room reserved for its signature, and the CMS signed attributes over its
    digest: what the key signs. Plain bytes, so it crosses a process boundary."""

    document: bytes
    digest: PreparedByteRangeDigest
    signed_attributes: bytes


def _external(certificates: SignerCertificates, signature: bytes | None) -> signers.ExternalSigner:
    return signers.ExternalSigner(
        signing_cert=asn1_x509.Certificate.load(certificates.certificate),
        cert_registry=SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
            [asn1_x509.Certificate.load(c) for c in certificates.chain]
        ),
        signature_value=signature,
    )


def prepare(pdf: bytes, certificates: SignerCertificates, reason: str = "") -> PreparedPdf:
    """Phase one, no key needed: the signature field, the byte-range digest and the signed
    attributes. CPU-bound pure Python (pyHanko, asn1crypto): run it in a thread or another
    process."""
    return asyncio.run(_prepare(pdf, certificates, reason))


async def _prepare(pdf: bytes, certificates: SignerCertificates, reason: str) -> PreparedPdf:
    meta = signers.PdfSignatureMetadata(
        field_name="Signature",
        reason=reason or None,
        subfilter=SigSeedSubFilter.PADES,
        md_algorithm=_DIGEST,
    )
    signer = _external(certificates, None)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    # Room for the CMS signature given up front: pyHanko skips its sizing dry run.
    digest, _, output = await signers.PdfSigner(meta, signer=signer).async_digest_doc_for_signing(
        writer, bytes_reserved=_RESERVED
    )
    attributes = await signer.signed_attrs(
        digest.document_digest,
        _DIGEST,
        PdfCMSSignedAttributes(signing_time=datetime.now(UTC)),
        use_pades=True,
    )
    assert isinstance(output, io.BytesIO)
    return PreparedPdf(output.getvalue(), digest, attributes.dump())


def finish(prepared: PreparedPdf, signature: bytes, certificates: SignerCertificates) -> bytes:
    """Phase two, no key needed: the CMS SignedData around `signature` (the key's signature
    over the signed attributes) written into the reserved room."""
    return asyncio.run(_finish(prepared, signature, certificates))


async def _finish(
    prepared: PreparedPdf, signature: bytes, certificates: SignerCertificates
) -> bytes:
    signed = await _external(certificates, signature).async_sign_prescribed_attributes(
        _DIGEST, cms.CMSAttributes.load(prepared.signed_attributes)
    )
    output = io.BytesIO(prepared.document)
    PdfTBSDocument.resume_signing(output, prepared.digest, signed)
    return output.getvalue()


class PadesSigner:
    """Signs a PDF as a named signer whose key the store holds (PAdES baseline B).

    In two halves around the one key operation: `prepare` and `finish` need no key and
    may run anywhere (the fines' renderer processes run them beside the PDF rendering, so
    pyHanko's ASN.1 and PDF work, ~14 ms of CPU a letter, leaves the platform process);
    `sign_attributes` is the signature itself, with the key store's key (file or HSM)."""

    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    def certificates(self, signer_id: str) -> SignerCertificates:
        identity = self._identity(signer_id)
        return SignerCertificates(
            identity.certificate.public_bytes(Encoding.DER),
            tuple(c.public_bytes(Encoding.DER) for c in identity.chain),
        )

    async def sign_attributes(self, signer_id: str, prepared: PreparedPdf) -> bytes:
        return sign_sha256(self._identity(signer_id).key, prepared.signed_attributes)

    async def sign(self, pdf: bytes, signer_id: str, reason: str = "") -> bytes:
        certificates = self.certificates(signer_id)
        # pyHanko is synchronous and CPU-bound: off the event loop.
        prepared = await asyncio.to_thread(prepare, pdf, certificates, reason)
        signature = await self.sign_attributes(signer_id, prepared)
        return await asyncio.to_thread(finish, prepared, signature, certificates)

    def _identity(self, signer_id: str) -> SigningIdentity:
        try:
            return self._keys.identity(signer_id)
        except UnknownSigner:
            raise FailedPrecondition(
                "NO_SIGNING_KEY", f"no signing key is enrolled for {signer_id}"
            ) from None
        except KeyStoreError as error:
            raise FailedPrecondition("SIGNING_KEY_UNUSABLE", str(error)) from None
