"""Development PKI: a throw-away CA plus TLS and signing certificates under one state dir.

Production uses the organisation's PKI; this module only exists so that the dev stack and the
tests get realistic material (mTLS, officer signing identities, partner receipt keys) with no
manual steps. Everything is generated with `cryptography`, and `ensure()` is idempotent so a
restarted dev stack keeps its identities (signed reports keep verifying).
"""

from __future__ import annotations

import datetime
import enum
import ipaddress
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "DEMO_PARTNER_IDS",
    "DEMO_PRINCIPALS",
    "PARTNER_KINDS",
    "DemoPrincipal",
    "DevPki",
    "PrincipalKind",
]

_CA_VALIDITY = datetime.timedelta(days=3650)
# A CRL says when the next one is due; verifiers treat a later one as stale.
_CRL_VALIDITY = datetime.timedelta(days=7)
_LEAF_VALIDITY = datetime.timedelta(days=825)
# Certificates start slightly in the past so a peer with a lagging clock accepts them at once.
_BACKDATE = datetime.timedelta(minutes=5)
_LEAF_KEY_BITS = 2048
_CA_KEY_BITS = 3072
# Ids become file names and X.520 serialNumber values (PrintableString), so keep them boring.
_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class PrincipalKind(enum.StrEnum):
    OFFICER = "OFFICER"
    PROSECUTOR = "PROSECUTOR"
    COURT = "COURT"
    FINE_AGENCY = "FINE_AGENCY"
    VEHICLE_REGISTER = "VEHICLE_REGISTER"
    SERVICE = "SERVICE"
    CUSTODIAN = "CUSTODIAN"
    CUSTODY_SUPERVISOR = "CUSTODY_SUPERVISOR"
    FINES_OFFICER = "FINES_OFFICER"
    AUDITOR = "AUDITOR"
    ACCESS_ADMIN = "ACCESS_ADMIN"


@dataclass(frozen=True, slots=True)
class DemoPrincipal:
    """A dev-stack identity. `kind` stays here (not in a certificate field); the security
    registry maps ids to kinds."""

    id: str
    kind: PrincipalKind
    agency: str
    unit: str
    name: str


DEMO_PRINCIPALS: tuple[DemoPrincipal, ...] = (
    DemoPrincipal(
        "officer-1001",
        PrincipalKind.OFFICER,
        "Federal Police",
        "PZ Antwerpen/Team A",
        "Jan Peeters",
    ),
    DemoPrincipal(
        "officer-1002",
        PrincipalKind.OFFICER,
        "Federal Police",
        "PZ Brussel/Team B",
        "Sophie Dubois",
    ),
    DemoPrincipal(
        "prosecutor-antwerp",
        PrincipalKind.PROSECUTOR,
        "Public Prosecutor's Office",
        "Antwerpen",
        "Public Prosecutor Antwerpen",
    ),
    DemoPrincipal(
        "court-brussels",
        PrincipalKind.COURT,
        "Court of First Instance",
        "Brussel",
        "Court of First Instance Brussel",
    ),
    DemoPrincipal(
        "fines-agency", PrincipalKind.FINE_AGENCY, "FPS Justice", "Fines Agency", "Fines Agency"
    ),
    DemoPrincipal(
        "vehicle-register-nl",
        PrincipalKind.VEHICLE_REGISTER,
        "RDW",
        "Vehicle Register NL",
        "RDW Vehicle Register",
    ),
    DemoPrincipal(
        "justice-server",
        PrincipalKind.SERVICE,
        "Justice Exchange",
        "Platform",
        "Justice Exchange Platform",
    ),
    DemoPrincipal(
        "custodian-2001",
        PrincipalKind.CUSTODIAN,
        "Federal Police",
        "Seized Goods Antwerpen",
        "Lien Maes",
    ),
    DemoPrincipal(
        "custody-supervisor-2101",
        PrincipalKind.CUSTODY_SUPERVISOR,
        "Federal Police",
        "Seized Goods Antwerpen",
        "Koen Wouters",
    ),
    DemoPrincipal(
        "fines-officer-3001",
        PrincipalKind.FINES_OFFICER,
        "Federal Police",
        "Fines Desk",
        "Eva Claes",
    ),
    DemoPrincipal(
        "auditor-4001",
        PrincipalKind.AUDITOR,
        "Standing Police Monitoring Committee",
        "Audit",
        "Tom Jacobs",
    ),
    # Two admins, so that a four-eyes grant has someone to approve it.
    DemoPrincipal(
        "access-admin-5001",
        PrincipalKind.ACCESS_ADMIN,
        "Federal Police",
        "Access Management",
        "An Willems",
    ),
    DemoPrincipal(
        "access-admin-5002",
        PrincipalKind.ACCESS_ADMIN,
        "Federal Police",
        "Access Management",
        "Bart Smets",
    ),
)
# The kinds that are exchange partners: their unit is named after their partner id, and the
# dev stack registers them on the exchange and gives each its own NATS user.
PARTNER_KINDS = frozenset(
    {
        PrincipalKind.PROSECUTOR,
        PrincipalKind.COURT,
        PrincipalKind.FINE_AGENCY,
        PrincipalKind.VEHICLE_REGISTER,
    }
)
DEMO_PARTNER_IDS = tuple(p.id for p in DEMO_PRINCIPALS if p.kind in PARTNER_KINDS)
# Who signs exchange envelopes: the platform (its service identity) and every partner.
_ENVELOPE_KINDS = PARTNER_KINDS | {PrincipalKind.SERVICE}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _check_id(principal_id: str) -> None:
    if not _ID_PATTERN.fullmatch(principal_id):
        raise ValueError(f"principal id must match {_ID_PATTERN.pattern}: {principal_id!r}")


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    # Write-then-rename so a crash never leaves a half-written key or cert that a later
    # ensure() would mistake for a complete one.
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _new_key(bits: int = _LEAF_KEY_BITS) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _name(
    common_name: str,
    *,
    agency: str | None = None,
    unit: str | None = None,
    serial: str | None = None,
) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if serial is not None:
        attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    if agency is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, agency))
    if unit is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    return x509.Name(attributes)


def _key_usage(
    *,
    digital_signature: bool = False,
    content_commitment: bool = False,
    key_encipherment: bool = False,
    cert_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


class DevPki:
    """A dev CA rooted at `root`. Two instances on different roots are independent CAs, which
    is how tests get a "wrong" CA.

    Layout (all PEM):
      ca.pem, ca.key (PKCS#8, encrypted with the passphrase)
      server.pem, server.key (TLS server; key unencrypted 0600 because grpc wants raw PEM)
      clients/<id>.pem, clients/<id>.key (mTLS client certs; key unencrypted 0600)
      signing/<id>.pem (leaf then CA), signing/<id>.key (PKCS#8, encrypted with the passphrase)
      tsa.pem (leaf then CA), tsa.key (PKCS#8, encrypted): the dev RFC 3161 timestamp authority
      crl.pem: the CA's current certificate revocation list (re-issued by `revoke`)
      checkpoint.key (PKCS#8 Ed25519, encrypted): signs the audit log's checkpoints
      envelope/<id>.pem, envelope/<id>.key: the same for the P-256 keys that sign exchange
        envelopes (the platform's and each partner's); ECDSA P-256 signs an envelope in about
        0.03 ms where RSA-2048 took 0.25 ms, and XAdES reports keep their RSA keys
    """

    def __init__(self, root: Path, passphrase: bytes) -> None:
        if not passphrase:
            raise ValueError("a non-empty passphrase is required to encrypt CA and signing keys")
        self._root = Path(root)
        self._passphrase = passphrase
        self._ca: tuple[x509.Certificate, rsa.RSAPrivateKey] | None = None

    # -- paths -------------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return self._root

    @property
    def ca_path(self) -> Path:
        return self._root / "ca.pem"

    @property
    def ca_key_path(self) -> Path:
        return self._root / "ca.key"

    @property
    def server_cert_path(self) -> Path:
        return self._root / "server.pem"

    @property
    def server_key_path(self) -> Path:
        return self._root / "server.key"

    @property
    def clients_dir(self) -> Path:
        return self._root / "clients"

    @property
    def signing_dir(self) -> Path:
        return self._root / "signing"

    @property
    def tsa_cert_path(self) -> Path:
        return self._root / "tsa.pem"

    @property
    def tsa_key_path(self) -> Path:
        return self._root / "tsa.key"

    @property
    def crl_path(self) -> Path:
        return self._root / "crl.pem"

    @property
    def checkpoint_key_path(self) -> Path:
        return self._root / "checkpoint.key"

    def client_paths(self, principal_id: str) -> tuple[Path, Path]:
        _check_id(principal_id)
        return self.clients_dir / f"{principal_id}.pem", self.clients_dir / f"{principal_id}.key"

    def signing_paths(self, principal_id: str) -> tuple[Path, Path]:
        _check_id(principal_id)
        return self.signing_dir / f"{principal_id}.pem", self.signing_dir / f"{principal_id}.key"

    @property
    def envelope_dir(self) -> Path:
        return self._root / "envelope"

    def envelope_paths(self, principal_id: str) -> tuple[Path, Path]:
        _check_id(principal_id)
        return self.envelope_dir / f"{principal_id}.pem", self.envelope_dir / f"{principal_id}.key"

    # -- lifecycle -----------------------------------------------------------------------------

    def ensure(self) -> None:
        """Create whatever is missing; never touch what exists."""
        self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._ensure_ca()
        if not (self.server_cert_path.exists() and self.server_key_path.exists()):
            self._issue_server()
        if not (self.tsa_cert_path.exists() and self.tsa_key_path.exists()):
            self.issue_tsa()
        if not self.crl_path.exists():
            self._write_crl([])
        self.checkpoint_key()
        for principal in DEMO_PRINCIPALS:
            cert_path, key_path = self.client_paths(principal.id)
            if not (cert_path.exists() and key_path.exists()):
                self.issue_client(principal.id, principal.agency, principal.unit)
            cert_path, key_path = self.signing_paths(principal.id)
            if not (cert_path.exists() and key_path.exists()):
                self.issue_signing(
                    principal.id, principal.agency, principal.unit, name=principal.name
                )
            cert_path, key_path = self.envelope_paths(principal.id)
            if principal.kind in _ENVELOPE_KINDS and not (cert_path.exists() and key_path.exists()):
                self.issue_envelope(
                    principal.id, principal.agency, principal.unit, name=principal.name
                )

    def ca_certificate(self) -> x509.Certificate:
        return self._load_ca()[0]

    # -- issuing -------------------------------------------------------------------------------

    def issue_client(
        self,
        principal_id: str,
        agency: str,
        unit: str,
        *,
        ca: DevPki | None = None,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> tuple[Path, Path]:
        """Issue (or replace) an mTLS client certificate CN=<id>, O=<agency>, OU=<unit>."""
        _check_id(principal_id)
        key = _new_key()
        cert = (ca or self)._certify(
            key.public_key(),
            _name(principal_id, agency=agency, unit=unit),
            usage=_key_usage(digital_signature=True, key_encipherment=True),
            eku=[ExtendedKeyUsageOID.CLIENT_AUTH],
            not_before=not_before,
            not_after=not_after,
        )
        cert_path, key_path = self.client_paths(principal_id)
        _write_atomic(key_path, _raw_pem(key), 0o600)
        _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return cert_path, key_path

    def issue_signing(
        self,
        principal_id: str,
        agency: str,
        unit: str,
        *,
        name: str | None = None,
        ca: DevPki | None = None,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> tuple[Path, Path]:
        """Issue (or replace) a signing identity; the key is encrypted with the passphrase."""
        return self._issue_signing_key(
            self.signing_paths(principal_id),
            _new_key(),
            principal_id,
            agency,
            unit,
            name=name,
            ca=ca,
            not_before=not_before,
            not_after=not_after,
        )

    def issue_envelope(
        self, principal_id: str, agency: str, unit: str, *, name: str | None = None
    ) -> tuple[Path, Path]:
        """Issue (or replace) a P-256 envelope signing identity under envelope/."""
        key = ec.generate_private_key(ec.SECP256R1())
        return self._issue_signing_key(
            self.envelope_paths(principal_id), key, principal_id, agency, unit, name=name
        )

    def _issue_signing_key(
        self,
        paths: tuple[Path, Path],
        key: CertificateIssuerPrivateKeyTypes,
        principal_id: str,
        agency: str,
        unit: str,
        *,
        name: str | None = None,
        ca: DevPki | None = None,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> tuple[Path, Path]:
        issuer = ca or self
        cert = issuer.certify_signing_key(
            key.public_key(),
            principal_id,
            agency,
            unit,
            name=name,
            not_before=not_before,
            not_after=not_after,
        )
        cert_path, key_path = paths
        encrypted = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._passphrase),
        )
        _write_atomic(key_path, encrypted, 0o600)
        chain_pem = cert.public_bytes(
            serialization.Encoding.PEM
        ) + issuer.ca_certificate().public_bytes(serialization.Encoding.PEM)
        _write_atomic(cert_path, chain_pem, 0o644)
        return cert_path, key_path

    def certify_signing_key(
        self,
        public_key: CertificateIssuerPublicKeyTypes,
        principal_id: str,
        agency: str,
        unit: str,
        *,
        name: str | None = None,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> x509.Certificate:
        """Certify a signing key held elsewhere (e.g. generated inside an HSM); writes nothing."""
        _check_id(principal_id)
        return self._certify(
            public_key,
            _name(name or principal_id, agency=agency, unit=unit, serial=principal_id),
            usage=_key_usage(digital_signature=True, content_commitment=True),
            eku=None,
            not_before=not_before,
            not_after=not_after,
        )

    def issue_tsa(
        self,
        *,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
    ) -> tuple[Path, Path]:
        """Issue (or replace) the timestamp authority's certificate. RFC 3161 section 2.3: the
        one extended key usage timeStamping, marked critical (OpenSSL refuses anything else).
        A new key is P-256: every B-LT signature carries a token, and an RSA-2048 signature
        cost it 0.39 ms, a tenth of a SignReport's CPU here (ECDSA: 0.04 ms); state dirs
        made before keep their RSA key (`key`)."""
        key = key or ec.generate_private_key(ec.SECP256R1())
        cert = self._certify(
            key.public_key(),
            _name("Justice Exchange Dev TSA", agency="Justice Exchange", unit="Timestamping"),
            usage=_key_usage(digital_signature=True, content_commitment=True),
            eku=[ExtendedKeyUsageOID.TIME_STAMPING],
            eku_critical=True,
            not_before=not_before,
            not_after=not_after,
        )
        encrypted = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._passphrase),
        )
        _write_atomic(self.tsa_key_path, encrypted, 0o600)
        chain_pem = cert.public_bytes(
            serialization.Encoding.PEM
        ) + self.ca_certificate().public_bytes(serialization.Encoding.PEM)
        _write_atomic(self.tsa_cert_path, chain_pem, 0o644)
        return self.tsa_cert_path, self.tsa_key_path

    def checkpoint_key(self) -> Ed25519PrivateKey:
        """The Ed25519 key that signs the audit log's checkpoints (created on first use)."""
        path = self.checkpoint_key_path
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=self._passphrase)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError(f"{path} is not an Ed25519 key")
            return key
        key = Ed25519PrivateKey.generate()
        encrypted = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._passphrase),
        )
        _write_atomic(path, encrypted, 0o600)
        return key

    def revoke(
        self, certificate: x509.Certificate, *, at: datetime.datetime | None = None
    ) -> x509.CertificateRevocationList:
        """Add `certificate` to the CA's CRL (revoked `at`, default now) and re-issue it."""
        entries = [
            (revoked.serial_number, revoked.revocation_date_utc)
            for revoked in self.crl()
            if revoked.serial_number != certificate.serial_number
        ]
        entries.append((certificate.serial_number, at or _now()))
        return self._write_crl(entries)

    def crl(self) -> x509.CertificateRevocationList:
        """The CA's current CRL (an empty one is issued the first time)."""
        if not self.crl_path.exists():
            return self._write_crl([])
        return x509.load_pem_x509_crl(self.crl_path.read_bytes())

    # -- internals -------------------------------------------------------------------------------

    def _ensure_ca(self) -> None:
        if self.ca_path.exists() and self.ca_key_path.exists():
            return
        key = _new_key(_CA_KEY_BITS)
        subject = _name("Justice Exchange Dev CA", agency="Justice Exchange (development)")
        now = _now()
        public_key = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .sign(key, hashes.SHA256())
        )
        encrypted = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._passphrase),
        )
        _write_atomic(self.ca_key_path, encrypted, 0o600)
        _write_atomic(self.ca_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        self._ca = (cert, key)

    def _load_ca(self) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        if self._ca is None:
            self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._ensure_ca()
        if self._ca is None:
            cert = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
            key = serialization.load_pem_private_key(
                self.ca_key_path.read_bytes(), password=self._passphrase
            )
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError(f"{self.ca_key_path} is not an RSA key")
            self._ca = (cert, key)
        return self._ca

    def _write_crl(
        self, entries: list[tuple[int, datetime.datetime]]
    ) -> x509.CertificateRevocationList:
        ca_cert, ca_key = self._load_ca()
        now = _now()
        number = 1
        if self.crl_path.exists():
            previous = x509.load_pem_x509_crl(self.crl_path.read_bytes())
            number += previous.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(now)
            .next_update(now + _CRL_VALIDITY)
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        for serial, revoked_at in entries:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(revoked_at)
                .build()
            )
        crl = builder.sign(ca_key, hashes.SHA256())
        _write_atomic(self.crl_path, crl.public_bytes(serialization.Encoding.PEM), 0o644)
        return crl

    def _issue_server(self) -> None:
        key = _new_key()
        cert = self._certify(
            key.public_key(),
            _name("localhost", agency="Justice Exchange", unit="Platform"),
            usage=_key_usage(digital_signature=True, key_encipherment=True),
            eku=[ExtendedKeyUsageOID.SERVER_AUTH],
            san=[
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
            ],
        )
        _write_atomic(self.server_key_path, _raw_pem(key), 0o600)
        _write_atomic(self.server_cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)

    def _certify(
        self,
        public_key: CertificateIssuerPublicKeyTypes,
        subject: x509.Name,
        *,
        usage: x509.KeyUsage,
        eku: list[x509.ObjectIdentifier] | None,
        eku_critical: bool = False,
        san: list[x509.GeneralName] | None = None,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> x509.Certificate:
        ca_cert, ca_key = self._load_ca()
        now = _now()
        start = not_before or now - _BACKDATE
        end = not_after or now + _LEAF_VALIDITY
        if end <= start:
            # An explicitly expired certificate (tests) still needs a sane validity window.
            start = end - datetime.timedelta(days=1)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if eku is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=eku_critical)
        if san is not None:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(ca_key, hashes.SHA256())


def _raw_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
