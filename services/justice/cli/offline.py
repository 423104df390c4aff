"""Offline verification of a signed report: no server, only the file, a CA and the evidence."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from google.protobuf.message import DecodeError
from rich.console import Console

from justice.audit.checkpoints import CheckpointError, NoteVerifier
from justice.audit.merkle import ProofError
from justice.audit.messages import record_from_proto
from justice.audit.v1 import audit_pb2
from justice.audit.witness import verify_record
from justice.exchange.receipts import check_receipt
from justice.platform.config import Settings
from justice.reports import document
from justice.reports.model import Attachment
from justice.reports.service import verification
from justice.signing.xades import XadesVerifier


def verify_file(path: Path, ca: Path, console: Console, evidence: Path | None = None) -> bool:
    """Print a verdict; True only when the signature is intact and chains to the CA, and,
    given an evidence directory, every attachment there hashes to what the signature covers."""
    anchors = x509.load_pem_x509_certificates(ca.read_bytes())
    verdict = XadesVerifier(anchors).verify(path.read_bytes())
    result = verification(verdict)
    if result.integrity_ok and result.chains_to_ca:
        console.print(f"[green]VALID[/green] {result.report} version {result.version}")
    elif result.integrity_ok:
        console.print(f"[yellow]UNTRUSTED[/yellow] intact, but the signer does not chain to {ca}")
    else:
        console.print(f"[red]INVALID[/red] {result.reason}: {result.detail}")
    if result.signer_subject:
        console.print(f"  signer: {result.signer_subject}")
    if result.signing_time:
        console.print(f"  signed at: {result.signing_time.isoformat()} (claimed by the signer)")
    if verdict.timestamp_time is not None:
        console.print(
            f"  timestamped at: {verdict.timestamp_time.isoformat()} "
            f"(RFC 3161, XAdES {verdict.level})"
        )
    ok = result.integrity_ok and result.chains_to_ca
    if ok and evidence is not None:
        # Only attachments read from the signed element count (defence against wrapping).
        ok = verify_attachments(document.attachments(verdict.signed_root), evidence, console)
    return ok


def verify_receipt_file(path: Path, ca: Path, console: Console) -> bool:
    """Print a verdict on a kept receipt; True only when the partner's signature holds, its
    certificate chains to the CA and the receipt names the delivery."""
    anchors = x509.load_pem_x509_certificates(ca.read_bytes())
    check = check_receipt(path.read_bytes(), anchors)
    if not check.ok:
        console.print(f"[red]INVALID[/red] {check.reason}: {check.detail}")
        return False
    console.print(f"[green]VALID[/green] receipt for {check.delivery}: {check.status}")
    console.print(f"  signed by partner: {check.partner}")
    if check.signed_at is not None:
        console.print(f"  signed at: {check.signed_at.isoformat()} (claimed by the partner)")
    return True


def verify_audit_record_file(
    path: Path,
    settings: Settings,
    console: Console,
    *,
    log_key: str | None = None,
    witnesses: Sequence[str] | None = None,
) -> bool:
    """Print a verdict on an audit record's inclusion in a cosigned checkpoint; True only
    when the log signed it, every required witness cosigned it and the proof holds."""
    from justice.app import checkpoint_settings

    proof = audit_pb2.AuditInclusionProof()
    try:
        proof.ParseFromString(path.read_bytes())
        log = NoteVerifier.parse(log_key or checkpoint_settings(settings).signer.vkey)
        required = [NoteVerifier.parse(v) for v in (witnesses or settings.audit.witnesses)]
        head = verify_record(
            record_from_proto(proof.record),
            proof.tree_size,
            list(proof.inclusion_path),
            proof.checkpoint,
            log,
            required,
        )
    except (DecodeError, CheckpointError, ProofError) as error:
        console.print(f"[red]INVALID[/red] {error}")
        return False
    names = ", ".join(w.name for w in required) or "no witness required"
    console.print(
        f"[green]VALID[/green] audit record {proof.record.sequence} is in {head.origin} "
        f"at size {head.size}"
    )
    console.print(f"  cosigned by: {names}")
    return True


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def verify_attachments(
    attachments: tuple[Attachment, ...], directory: Path, console: Console
) -> bool:
    """Each attachment's file is the one named after its evidence id (any extension), or else
    any file in the directory with its hash. Prints one line per attachment."""
    files = sorted(p for p in directory.iterdir() if p.is_file())
    hashes: dict[Path, str] = {}

    def sha(path: Path) -> str:
        if path not in hashes:
            hashes[path] = _sha256_of(path)
        return hashes[path]

    ok = True
    for att in attachments:
        evidence_id = att.evidence.removeprefix("evidence/")
        named = [p for p in files if p.name == evidence_id or p.stem == evidence_id]
        candidates = named or [p for p in files if sha(p) == att.sha256]
        match = next((p for p in candidates if sha(p) == att.sha256), None)
        if match is not None and match.stat().st_size == att.size_bytes:
            console.print(f"  [green]OK[/green] {att.evidence} = {match.name}")
        elif named:
            ok = False
            console.print(
                f"  [red]CHANGED[/red] {att.evidence}: {named[0].name} hashes differently"
            )
        else:
            ok = False
            console.print(f"  [red]MISSING[/red] {att.evidence}: no file with sha256 {att.sha256}")
    if ok:
        console.print(f"[green]EVIDENCE OK[/green] {len(attachments)} attachment(s)")
    else:
        console.print("[red]EVIDENCE INVALID[/red] the files differ from what was signed")
    return ok
