"""Settings, read once in the entry point (prefix JUSTICE_)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, overload

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


@overload
def _resolved(path: Path) -> Path: ...
@overload
def _resolved(path: None) -> None: ...
def _resolved(path: Path | None) -> Path | None:
    # Resolved once, against the directory the command was started in: child processes
    # (nats-server, weed) run in their own folders, where a relative path means something
    # else.
    return None if path is None else path.expanduser().resolve()


class EvidenceRetention(BaseModel):
    """How long an evidence category stays locked, and how hard the lock is."""

    mode: Literal["COMPLIANCE", "GOVERNANCE"]
    days: int = Field(gt=0)


class AuditDetection(BaseModel):
    """Atypical-use rules over the audit log (justice.audit.detection.Rules)."""

    window_seconds: int = Field(default=300, gt=0)
    # A user's calls in one window against the mean of their own earlier active windows.
    spike_factor: float = Field(default=5.0, gt=1)
    spike_min_calls: int = Field(default=60, gt=0)
    spike_min_history: int = Field(default=3, gt=0)
    # Distinct persons, plates or records looked up in one window.
    bulk_lookup_distinct: int = Field(default=30, gt=1)
    duty_start: time = time(7, 0)
    duty_end: time = time(19, 0)
    timezone: str = "Europe/Brussels"
    duty_hours_by_unit: dict[str, tuple[time, time]] = Field(default_factory=dict)
    denials_per_window: int = Field(default=5, gt=1)
    # Agencies whose members work in units with duty hours and own their cases.
    unit_bound_agencies: list[str] = Field(default_factory=lambda: ["Federal Police"])


def _default_fine_tariff() -> dict[str, dict[str, Decimal]]:
    # Belgian-style amounts; every offence of Directive 2015/413 art. 2(1) needs a row
    # (justice.fines.model.Tariff refuses a table that misses one). Speeding is banded by
    # the corrected excess in km/h; "*" covers the rest.
    flat = {
        "NON_USE_OF_SEAT_BELT": "116",
        "FAILING_TO_STOP_AT_RED_LIGHT": "174",
        "DRINK_DRIVING": "179",
        "DRIVING_UNDER_INFLUENCE_OF_DRUGS": "400",
        "FAILING_TO_WEAR_SAFETY_HELMET": "116",
        "FORBIDDEN_LANE": "58",
        "MOBILE_PHONE_WHILE_DRIVING": "174",
        "INSUFFICIENT_DISTANCE": "116",
        "DANGEROUS_OVERTAKING": "174",
        "DANGEROUS_PARKING": "58",
        "CROSSING_SOLID_WHITE_LINE": "116",
        "WRONG_WAY_DRIVING": "174",
        "EMERGENCY_CORRIDOR": "174",
        "OVERLOADED_VEHICLE": "116",
        "VEHICLE_ACCESS_RESTRICTION": "58",
        "HIT_AND_RUN": "400",
        "RAILWAY_LEVEL_CROSSING": "174",
    }
    table = {offence: {"*": Decimal(amount)} for offence, amount in flat.items()}
    table["SPEEDING"] = {
        "10": Decimal("53"),
        "20": Decimal("106"),
        "30": Decimal("159"),
        "40": Decimal("212"),
        "*": Decimal("265"),
    }
    return table


class FineRules(BaseModel):
    """Cross-border fines (justice.fines): tariff, deadlines, the home state and partners."""

    # Where the offences happen; plates of this state skip the foreign owner lookup.
    home_country: str = "BE"
    currency: str = "EUR"
    tariff: dict[str, dict[str, Decimal]] = Field(default_factory=_default_fine_tariff)
    notice_days: int = Field(default=60, gt=0)
    payment_days: int = Field(default=30, gt=0)
    grace_days: int = Field(default=14, ge=0)
    reminder_surcharge: Decimal = Field(default=Decimal("15.00"), ge=0)
    reminder_days: int = Field(default=15, gt=0)
    payment_order_days: int = Field(default=30, gt=0)
    # Framework Decision 2005/214/JHA art. 7(2)(h) lets a state refuse below 70 EUR.
    transfer_threshold: Decimal = Field(default=Decimal("70.00"), ge=0)
    # A settled fine shows its outcome this long, then closes; its personal data goes
    # retention_days after that.
    close_days: int = Field(default=30, ge=0)
    retention_days: int = Field(default=365, ge=0)
    # Owner lookup: how long to wait for a register, how often to ask again.
    lookup_timeout_seconds: float = Field(default=30.0, gt=0)
    lookup_attempts: int = Field(default=3, gt=0)
    lookup_backoff_seconds: float = Field(default=60.0, ge=0)
    # Partner ids: "<prefix><country, lower case>", e.g. vehicle-register-nl.
    register_partner_prefix: str = "vehicle-register-"
    collection_partner_prefix: str = "fine-authority-"
    # The mail house that prints and posts the letters, and whether a letter goes out as
    # soon as the liable person is known (else IssueNotice sends it).
    notice_partner: str = "fines-agency"
    auto_notice: bool = True
    # Letters written at once after owner replies (each renders and signs in a thread), and
    # processes the PDFs are rendered in (0: in threads of this process, which hold its
    # GIL: give it the cores a letter-heavy process can spare).
    notice_concurrency: int = Field(default=4, gt=0)
    render_processes: int = Field(default=0, ge=0)
    # What the letters say: who issues them (and signs them, with the platform's key), where
    # to pay, where to contest and in how many days, and the zone their times are given in.
    issuer: str = "FPS Justice, Crossborder Fines"
    payee_iban: str = "BE71 0961 2345 6769"
    contest_days: int = Field(default=30, gt=0)
    timezone: str = "Europe/Brussels"
    # A TrueType font carrying every letter of the shipped languages (Debian fonts-dejavu-core).
    font: Path = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    # How often the deadline scheduler runs; 0: not in this process.
    scheduler_interval_seconds: float = Field(default=60.0, ge=0)

    @field_validator("font", mode="after")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        return _resolved(path)


# What `justice serve --service` can name; without it, a process runs them all.
SERVICES = ("reports", "evidence", "access", "audit", "exchange", "custody", "fines")


class MissingSetting(RuntimeError):
    """A selected service needs a setting that is not set; the message names it."""


class ReportSettings(BaseModel):
    """The reports domain (justice.reports): JUSTICE_REPORTS__<FIELD>."""

    narrative_max_chars: int = Field(default=100_000, gt=0)
    # Partner id that receives submitted reports when the request names none (and custody's
    # events when custody names no partner of its own).
    default_prosecutor: str = "prosecutor-antwerp"


class EvidenceSettings(BaseModel):
    """The evidence domain (justice.evidence) and its object storage: JUSTICE_EVIDENCE__<FIELD>."""

    # Object storage: a URL (http://host:port or https://host; its scheme sets TLS and
    # overrides s3_secure) or a bare host:port (TLS as s3_secure says). Empty: no evidence
    # service.
    s3_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: SecretStr = SecretStr("")
    s3_secure: bool = False
    # A write-once (object lock + versioning) bucket, and a plain one for uploads whose hash
    # is only known at the end (they are copied to their content address).
    bucket: str = "justice-evidence"
    staging_bucket: str = "justice-evidence-staging"
    # Retention per evidence category, applied at upload; the longest one wins on dedup.
    retention: dict[str, EvidenceRetention] = Field(
        default_factory=lambda: {
            "standard": EvidenceRetention(mode="COMPLIANCE", days=10 * 365),
            "serious-crime": EvidenceRetention(mode="COMPLIANCE", days=30 * 365),
            "traffic": EvidenceRetention(mode="GOVERNANCE", days=2 * 365),
        }
    )
    default_category: str = "standard"
    share_default_seconds: int = Field(default=15 * 60, gt=0)
    # S3 presigned URLs cannot live longer than 7 days.
    share_max_seconds: int = Field(default=24 * 3600, gt=0, le=7 * 24 * 3600)
    # No hard cap is a goal; this guards the disk.
    max_upload_bytes: int = Field(default=64 * 1024**3, gt=0)
    # Below the platform's max_message_bytes, so our limit answers before gRPC's own.
    max_chunk_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # S3 part size (grown until 10,000 parts cover the max), and part buffers per upload
    # (parts uploading at once, the filling one included): 24 MiB by default, whatever
    # the file size.
    part_bytes: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024)
    parts_in_flight: int = Field(default=3, ge=2, le=8)
    sweep_interval_seconds: float = Field(default=24 * 3600, ge=0)
    upload_ttl_seconds: float = Field(default=24 * 3600, gt=0)
    # SignReport re-hashes attachments up to this size; larger ones rely on the sweep.
    sign_rehash_max_bytes: int = Field(default=256 * 1024 * 1024, ge=0)


class ExchangeSettings(BaseModel):
    """Partner exchange (justice.exchange): JUSTICE_EXCHANGE__<FIELD>.

    The platform's sender id (also its signing identity), whether `justice serve` runs the
    outbox relay and the inbound consumer itself (when nats_url is set), the secret partner
    NATS passwords are derived from, and how long a partner has to send its receipt."""

    platform_id: str = "justice-server"
    relay: bool = True
    inbound: bool = True
    nats_secret: SecretStr = SecretStr("justice-dev-nats-secret")
    relay_batch: int = Field(default=512, gt=0, le=10_000)
    # The inbound consumer's fetch: up to this many messages, this many senders at once.
    inbound_batch: int = Field(default=128, gt=0, le=10_000)
    inbound_concurrency: int = Field(default=8, gt=0, le=256)
    # How long a relay's claim on outbox rows keeps other relays off them: a killed relay's
    # rows go out again this long after its claim.
    relay_lease_seconds: float = Field(default=30.0, ge=1)
    receipt_deadline_seconds: float = Field(default=24 * 3600.0, gt=0)


class AuditSettings(BaseModel):
    """The audit log (justice.audit): JUSTICE_AUDIT__<FIELD>."""

    # The platform identity that signs exports, the group-commit size.
    signer: str = "justice-server"
    batch_max: int = Field(default=1_000, gt=0)
    # The witnessed log: its checkpoints' origin line, the Ed25519 key that signs them (the
    # dev PKI's checkpoint.key when unset), how often one is signed and published, and the
    # witnesses' verifier keys (c2sp.org/signed-note vkeys named by partner id).
    origin: str = "justice-exchange.local/audit"
    checkpoint_key: Path | None = None
    checkpoint_interval_seconds: float = Field(default=60.0, gt=0)
    witnesses: list[str] = Field(default_factory=list)
    detection: AuditDetection = Field(default_factory=AuditDetection)

    @field_validator("checkpoint_key", mode="after")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        return _resolved(path)


class AccessSettings(BaseModel):
    """Who may do what (justice.access, justice.security): JUSTICE_ACCESS__<FIELD>."""

    # Grants of these roles need a second ACCESS_ADMIN to approve (four eyes).
    four_eyes_roles: frozenset[str] = frozenset({"ACCESS_ADMIN", "AUDITOR", "CUSTODY_SUPERVISOR"})
    approval_ttl_seconds: float = Field(default=72 * 3600, gt=0)
    # How stale an identity lookup may be; revocation takes effect within this bound.
    identity_cache_seconds: float = Field(default=1.0, ge=0, le=1.0)
    # Dev mode only: signed short-lived bearer tokens (CLI convenience), never in production.
    dev_tokens: bool = True
    dev_token_max_seconds: int = Field(default=900, gt=0, le=3600)


class CustodySettings(BaseModel):
    """Seized goods (justice.custody): JUSTICE_CUSTODY__<FIELD>.

    Seizures worth more (EUR) are notified to the central seizure agency partner (BE:
    COIV/OCSC); every custody event goes to the events partner (default: the reports'
    default prosecutor) carrying the chain head; weight lost beyond the tolerance on
    acceptance raises an alert; how often overdue check-outs are looked for."""

    notice_threshold_eur: Decimal = Field(default=Decimal("2500"), ge=0)
    central_agency: str = "central-seizure-agency"
    events_partner: str = ""
    weight_tolerance_grams: Decimal = Field(default=Decimal("1"), ge=0)
    overdue_sweep_seconds: float = Field(default=300.0, gt=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JUSTICE_", env_nested_delimiter="__")

    # Everything the embedded default creates lives under this one directory.
    state_dir: Path = Field(default=Path(".justice"), validate_default=True)
    # SQLite in the state dir when empty; PostgreSQL in production.
    database_url: str = ""
    listen: str = "127.0.0.1:50443"
    # Embedded defaults come from the dev PKI; production points at the organisation's PKI.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    require_client_cert: bool = True
    # The dev PKI under the state dir unless pointed elsewhere.
    pki_root: Path | None = None
    # Protects the signing keys at rest in the state dir.
    key_passphrase: SecretStr = SecretStr("justice-dev-passphrase")
    # Signature timestamps (XAdES B-T): an RFC 3161 TSA URL in production; empty uses the dev
    # PKI's in-process TSA. The CRL file (PEM or DER) embedded in signatures (B-LT), kept
    # current by operations; the dev CA's crl.pem when unset.
    tsa_url: str = ""
    signing_crl: Path | None = None
    # Processes that make the XAdES signatures beside each serving process (signing/keyed.py),
    # each with its own key store; 0: a thread of the serving process. Worth it where a core
    # is free for them, not where `--workers` already fills every core.
    signing_processes: int = Field(default=0, ge=0)
    max_message_bytes: int = 8 * 1024 * 1024
    shutdown_grace_seconds: float = 10.0
    # Where `justice run` puts its own nats-server and SeaweedFS (4222 is often taken).
    dev_nats_port: int = 14222
    dev_s3_port: int = 18333
    nats_url: str = ""
    # The platform's NATS user, when the server has authorization (credentials in the URL,
    # nats://user:password@host:port, work for every component too).
    nats_user: str = ""
    nats_password: SecretStr = SecretStr("")
    # TLS to NATS (also on for a tls:// URL): a private CA, and a client certificate when
    # the server verifies clients.
    nats_tls_ca: Path | None = None
    nats_tls_cert: Path | None = None
    nats_tls_key: Path | None = None
    # Production: client certificates always required, no dev tokens, no demo principals.
    production: bool = False
    # Deployment. Where signing keys live: files in the state dir (dev), or an HSM over
    # PKCS#11 whose PIN is read from a file (a mounted Secret), never from the environment.
    key_store: Literal["file", "pkcs11"] = "file"
    pkcs11_module: Path | None = None
    pkcs11_token_label: str = ""
    pkcs11_pin_file: Path | None = None
    # Prometheus /metrics on host:port, apart from the gRPC port (off when empty), and how
    # often the database-held figures (backlog, deliveries, audit chain) are sampled.
    metrics_listen: str = ""
    metrics_sample_seconds: float = Field(default=5.0, gt=0)
    # How often health re-checks the database and NATS.
    health_check_seconds: float = Field(default=2.0, gt=0)
    # On SIGTERM, how long to keep serving after health says NOT_SERVING, before the
    # shutdown_grace_seconds drain (platform.server.drain says why; 5 s under Kubernetes).
    shutdown_settle_seconds: float = Field(default=0.0, ge=0)
    # Copies of every stream the platform creates: 3 on a JetStream cluster of three.
    nats_stream_replicas: int = Field(default=1, ge=1, le=5)
    # A plaintext gRPC port carrying only the health service, for Kubernetes' native gRPC
    # probes (the kubelet cannot present a client certificate). Off when empty.
    health_listen: str = ""
    # Services running apart (`justice serve --service NAME`): where each peer a selected
    # service uses answers when it is not in this process (host:port, e.g. a Kubernetes
    # Service name), the service certificate presented to it (mTLS, SERVICE role; the dev
    # PKI's client certificate of exchange.platform_id when unset; its server certificate
    # is checked against tls_client_ca), and how long one peer call may take.
    reports_address: str = ""
    evidence_address: str = ""
    access_address: str = ""
    service_cert: Path | None = None
    service_key: Path | None = None
    peer_timeout_seconds: float = Field(default=30.0, gt=0)
    # "json": one JSON object per line, for log collectors; "text" for people.
    log_format: Literal["text", "json"] = "text"
    # An OTLP/gRPC collector (e.g. http://otel-collector:4317) that receives the traces; none
    # is exported when empty (spans still get ids, which the JSON log lines carry).
    otlp_endpoint: str = ""
    # The domains' own settings, one section each (JUSTICE_<SECTION>__<FIELD>).
    reports: ReportSettings = Field(default_factory=ReportSettings)
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)
    exchange: ExchangeSettings = Field(default_factory=ExchangeSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    access: AccessSettings = Field(default_factory=AccessSettings)
    custody: CustodySettings = Field(default_factory=CustodySettings)
    fines: FineRules = Field(default_factory=FineRules)

    @field_validator(
        "state_dir",
        "pki_root",
        "tls_cert",
        "tls_key",
        "tls_client_ca",
        "signing_crl",
        "pkcs11_pin_file",
        "service_cert",
        "service_key",
        mode="after",
    )
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        return _resolved(path)

    def updated(self, **sections: dict[str, Any]) -> Settings:
        """A copy with fields of the named sections changed, e.g.
        `updated(evidence={"bucket": name})` (like model_copy: the values are not validated)."""
        return self.model_copy(
            update={
                name: getattr(self, name).model_copy(update=changes)
                for name, changes in sections.items()
            }
        )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.state_dir / 'justice.db'}"

    @property
    def pki_dir(self) -> Path:
        return self.pki_root or self.state_dir / "pki"


def renamed_variables(environ: Mapping[str, str]) -> list[str]:
    """Flat names of a section's fields from before the sections (JUSTICE_EVIDENCE_BUCKET,
    JUSTICE_S3_ENDPOINT, JUSTICE_DEV_TOKENS) found in `environ`, each with its new name.

    pydantic-settings ignores a name it does not know: such a variable would leave the
    default in place (another bucket, the dev NATS secret) without a word, so the entry point
    refuses to start on one."""
    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    delimiter = str(Settings.model_config.get("env_nested_delimiter", ""))
    found = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for name in model.model_fields:
            new = f"{prefix}{section}{delimiter}{name}".upper()
            for old in sorted({f"{prefix}{section}_{name}".upper(), f"{prefix}{name}".upper()}):
                if old in environ and old.removeprefix(prefix).lower() not in Settings.model_fields:
                    found.append(f"{old} is now {new}")
    return sorted(found)
