"""Evidence tables and repositories (sqlmodel). Only the evidence service reads these tables."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, Text, delete, update
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from justice.evidence.model import (
    Evidence,
    Integrity,
    Metadata,
    Part,
    Retention,
    RetentionMode,
    Share,
    UploadSession,
)
from justice.evidence.ports import EvidenceQuery
from justice.platform.db import Transaction, UtcDateTime, page_after, where_given


class EvidenceRow(SQLModel, table=True):
    __tablename__ = "evidence"
    __table_args__ = (
        Index("ix_evidence_request", "uploader", "request_id", unique=True),
        Index("ix_evidence_object", "bucket", "object_key", "version_id"),
    )

    evidence_id: str = Field(primary_key=True, max_length=64)
    request_id: str = Field(max_length=64)
    case_number: str = Field(max_length=64, index=True)
    report: str = Field(default="", max_length=80, index=True)
    media_type: str = Field(max_length=160, index=True)
    original_filename: str = Field(max_length=255)
    capture_time: datetime | None = Field(default=None, sa_type=UtcDateTime)
    capture_device: str = Field(default="", max_length=256)
    uploader: str = Field(max_length=128)
    unit: str = Field(max_length=128, index=True)
    category: str = Field(max_length=64)
    size_bytes: int = Field(sa_type=BigInteger)
    sha256: str = Field(max_length=64, index=True)
    bucket: str = Field(max_length=63)
    object_key: str = Field(max_length=200)
    version_id: str = Field(max_length=200)
    retention_mode: str = Field(max_length=16)
    retain_until: datetime = Field(sa_type=UtcDateTime)
    legal_hold: bool = False
    integrity: str = Field(default="UNVERIFIED", max_length=16)
    verify_time: datetime | None = Field(default=None, sa_type=UtcDateTime)
    create_time: datetime = Field(sa_type=UtcDateTime)


class EvidenceUploadRow(SQLModel, table=True):
    __tablename__ = "evidence_upload"

    upload_id: str = Field(primary_key=True, max_length=64)
    uploader: str = Field(max_length=128)
    unit: str = Field(max_length=128)
    metadata_json: str = Field(sa_column=Column(Text, nullable=False))
    category: str = Field(max_length=64)
    bucket: str = Field(max_length=63)
    object_key: str = Field(max_length=200)
    s3_upload_id: str = Field(default="", max_length=512)
    committed_offset: int = Field(default=0, sa_type=BigInteger)
    # [[number, etag, size], ...] of the committed parts.
    parts_json: str = Field(sa_column=Column(Text, nullable=False))
    expire_time: datetime = Field(sa_type=UtcDateTime, index=True)


class EvidenceShareRow(SQLModel, table=True):
    __tablename__ = "evidence_share"

    share_id: str = Field(primary_key=True, max_length=64)
    evidence_id: str = Field(max_length=64, index=True)
    sharer: str = Field(max_length=128)
    partner: str = Field(max_length=64)
    purpose: str = Field(max_length=512)
    create_time: datetime = Field(sa_type=UtcDateTime)
    expire_time: datetime = Field(sa_type=UtcDateTime)


def _metadata_json(meta: Metadata) -> str:
    return json.dumps(
        {
            "case_number": meta.case_number,
            "media_type": meta.media_type,
            "original_filename": meta.original_filename,
            "request_id": meta.request_id,
            "report": meta.report,
            "capture_time": meta.capture_time.isoformat() if meta.capture_time else None,
            "capture_device": meta.capture_device,
            "category": meta.category,
            "declared_size": meta.declared_size,
            "declared_sha256": meta.declared_sha256,
        },
        ensure_ascii=False,
    )


def _metadata(raw: str) -> Metadata:
    data = json.loads(raw)
    moment = data.pop("capture_time")
    return Metadata(**data, capture_time=datetime.fromisoformat(moment) if moment else None)


def _evidence(row: EvidenceRow) -> Evidence:
    return Evidence(
        evidence_id=row.evidence_id,
        metadata=Metadata(
            case_number=row.case_number,
            media_type=row.media_type,
            original_filename=row.original_filename,
            request_id=row.request_id,
            report=row.report,
            capture_time=row.capture_time,
            capture_device=row.capture_device,
            category=row.category,
        ),
        uploader=row.uploader,
        unit=row.unit,
        category=row.category,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        bucket=row.bucket,
        key=row.object_key,
        version_id=row.version_id,
        retention=Retention(RetentionMode(row.retention_mode), row.retain_until),
        create_time=row.create_time,
        legal_hold=row.legal_hold,
        integrity=Integrity(row.integrity),
        verify_time=row.verify_time,
    )


class SqlEvidenceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, evidence: Evidence) -> None:
        meta = evidence.metadata
        self._session.add(
            EvidenceRow(
                evidence_id=evidence.evidence_id,
                request_id=meta.request_id,
                case_number=meta.case_number,
                report=meta.report,
                media_type=meta.media_type,
                original_filename=meta.original_filename,
                capture_time=meta.capture_time,
                capture_device=meta.capture_device,
                uploader=evidence.uploader,
                unit=evidence.unit,
                category=evidence.category,
                size_bytes=evidence.size_bytes,
                sha256=evidence.sha256,
                bucket=evidence.bucket,
                object_key=evidence.key,
                version_id=evidence.version_id,
                retention_mode=evidence.retention.mode.value,
                retain_until=evidence.retention.until,
                legal_hold=evidence.legal_hold,
                integrity=evidence.integrity.value,
                verify_time=evidence.verify_time,
                create_time=evidence.create_time,
            )
        )
        await self._session.flush()

    async def get(self, evidence_id: str) -> Evidence | None:
        row = await self._session.get(EvidenceRow, evidence_id)
        return _evidence(row) if row else None

    async def by_request(self, uploader: str, request_id: str) -> Evidence | None:
        query = select(EvidenceRow).where(
            col(EvidenceRow.uploader) == uploader, col(EvidenceRow.request_id) == request_id
        )
        row = (await self._session.exec(query)).first()
        return _evidence(row) if row else None

    async def list(self, query: EvidenceQuery) -> Sequence[Evidence]:
        statement = where_given(
            select(EvidenceRow),
            (col(EvidenceRow.case_number), query.case_number),
            (col(EvidenceRow.report), query.report),
            (col(EvidenceRow.media_type), query.media_type),
        )
        statement = page_after(
            statement,
            col(EvidenceRow.evidence_id),
            after=query.page.after,
            size=query.page.size,
        )
        return [_evidence(row) for row in (await self._session.exec(statement)).all()]

    async def sharing_object(self, bucket: str, key: str, version_id: str) -> Sequence[Evidence]:
        statement = select(EvidenceRow).where(
            col(EvidenceRow.bucket) == bucket,
            col(EvidenceRow.object_key) == key,
            col(EvidenceRow.version_id) == version_id,
        )
        return [_evidence(row) for row in (await self._session.exec(statement)).all()]

    async def update(self, evidence: Evidence) -> None:
        await self._session.exec(
            update(EvidenceRow)
            .where(col(EvidenceRow.evidence_id) == evidence.evidence_id)
            .values(
                legal_hold=evidence.legal_hold,
                integrity=evidence.integrity.value,
                verify_time=evidence.verify_time,
                retention_mode=evidence.retention.mode.value,
                retain_until=evidence.retention.until,
            )
        )


def _session(row: EvidenceUploadRow) -> UploadSession:
    return UploadSession(
        upload_id=row.upload_id,
        uploader=row.uploader,
        unit=row.unit,
        metadata=_metadata(row.metadata_json),
        category=row.category,
        bucket=row.bucket,
        key=row.object_key,
        s3_upload_id=row.s3_upload_id,
        expire_time=row.expire_time,
        committed_offset=row.committed_offset,
        parts=[Part(*p) for p in json.loads(row.parts_json)],
    )


def _parts_json(session: UploadSession) -> str:
    return json.dumps([[p.number, p.etag, p.size] for p in session.parts])


class SqlUploadRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, upload: UploadSession) -> None:
        self._session.add(
            EvidenceUploadRow(
                upload_id=upload.upload_id,
                uploader=upload.uploader,
                unit=upload.unit,
                metadata_json=_metadata_json(upload.metadata),
                category=upload.category,
                bucket=upload.bucket,
                object_key=upload.key,
                s3_upload_id=upload.s3_upload_id,
                committed_offset=upload.committed_offset,
                parts_json=_parts_json(upload),
                expire_time=upload.expire_time,
            )
        )
        await self._session.flush()

    async def get(self, upload_id: str) -> UploadSession | None:
        row = await self._session.get(EvidenceUploadRow, upload_id)
        return _session(row) if row else None

    async def update(self, upload: UploadSession) -> None:
        await self._session.exec(
            update(EvidenceUploadRow)
            .where(col(EvidenceUploadRow.upload_id) == upload.upload_id)
            .values(
                s3_upload_id=upload.s3_upload_id,
                committed_offset=upload.committed_offset,
                parts_json=_parts_json(upload),
                expire_time=upload.expire_time,
            )
        )

    async def remove(self, upload_id: str) -> None:
        await self._session.exec(
            delete(EvidenceUploadRow).where(col(EvidenceUploadRow.upload_id) == upload_id)
        )

    async def expired(self, now: datetime, limit: int) -> Sequence[UploadSession]:
        statement = (
            select(EvidenceUploadRow)
            .where(col(EvidenceUploadRow.expire_time) <= now)
            .order_by(col(EvidenceUploadRow.expire_time))
            .limit(limit)
        )
        return [_session(row) for row in (await self._session.exec(statement)).all()]


class SqlShareRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def shared_with(self, evidence_id: str, partner: str) -> bool:
        query = select(EvidenceShareRow.share_id).where(
            col(EvidenceShareRow.evidence_id) == evidence_id,
            col(EvidenceShareRow.partner) == partner,
        )
        return (await self._session.exec(query.limit(1))).first() is not None

    async def add(self, share: Share) -> None:
        self._session.add(
            EvidenceShareRow(
                share_id=share.share_id,
                evidence_id=share.evidence_id,
                sharer=share.sharer,
                partner=share.partner,
                purpose=share.purpose,
                create_time=share.create_time,
                expire_time=share.expire_time,
            )
        )
        await self._session.flush()


class EvidenceTransaction(Transaction):
    """One transaction over the evidence tables."""

    def bind(self, session: AsyncSession) -> None:
        self.evidence = SqlEvidenceRepository(session)
        self.uploads = SqlUploadRepository(session)
        self.shares = SqlShareRepository(session)
