"""PAdES signatures on PDFs (pyHanko), made with a key the key store holds, so that any
PDF reader (and poppler's pdfsig) shows who issued the document.

The key never leaves the key store's object: pyHanko asks this signer for the raw RSA
signature over the signed attributes, which works for file keys and PKCS#11 keys alike.
"""

from __future__ import annotations

from io import BytesIO

from asn1crypto import algos
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

from justice.platform.errors import FailedPrecondition
from justice.signing.identity import SigningIdentity
from justice.signing.keystore import KeyStore, UnknownSigner

_HASHES: dict[str, hashes.HashAlgorithm] = {"sha256": hashes.SHA256(), "sha512": hashes.SHA512()}


class _KeySigner(signers.Signer):
    def __init__(self, identity: SigningIdentity) -> None:
        if not isinstance(identity.key, rsa.RSAPrivateKey):
            raise FailedPrecondition("NOT_SIGNABLE", "PAdES signing needs an RSA key")
        chain = [asn1_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in identity.chain]
        super().__init__(
            signing_cert=chain[0],
            cert_registry=SimpleCertificateStore.from_certs(chain),  # type: ignore[no-untyped-call]
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"}),
        )
        self._key = identity.key

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        return self._key.sign(data, padding.PKCS1v15(), _HASHES[digest_algorithm])


class PadesSigner:
    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    async def sign(self, pdf: bytes, signer_id: str, reason: str) -> bytes:
        try:
            identity = self._keys.identity(signer_id)
        except UnknownSigner:
            raise FailedPrecondition(
                "NO_SIGNING_KEY", f"no signing key is enrolled for {signer_id}"
            ) from None
        signer = _KeySigner(identity)
        meta = signers.PdfSignatureMetadata(
            field_name="Issuer",
            md_algorithm="sha256",
            subfilter=fields.SigSeedSubFilter.PADES,
            reason=reason,
        )
        writer = IncrementalPdfFileWriter(BytesIO(pdf))
        signed: BytesIO = await signers.async_sign_pdf(writer, meta, signer=signer)
        return signed.getvalue()
