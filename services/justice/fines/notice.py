"""A fine letter's documents: the PDF signed PAdES and the same content as XML signed
XAdES, both with the platform's key (as reports are signed)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from justice.fines import document, pdf
from justice.fines.letter import LetterKind, LetterSettings, compose
from justice.fines.model import Fine
from justice.fines.service import LetterDocuments


class XmlSigner(Protocol):
    async def sign(self, document: bytes, signer_id: str) -> bytes: ...


class PdfSigner(Protocol):
    async def sign(self, pdf: bytes, signer_id: str, reason: str = "") -> bytes: ...


class NoticeRenderer:
    def __init__(
        self,
        settings: LetterSettings,
        font: Path,
        pdf_signer: PdfSigner,
        xml_signer: XmlSigner,
        signer_id: str,
    ) -> None:
        self._settings = settings
        self._font = font
        self._pdf_signer = pdf_signer
        self._xml_signer = xml_signer
        self._signer_id = signer_id

    async def render(self, fine: Fine, kind: LetterKind) -> LetterDocuments:
        letter = compose(fine, kind, self._settings)
        unsigned = await asyncio.to_thread(pdf.render, letter, self._font)
        signed_pdf = await self._pdf_signer.sign(unsigned, self._signer_id, letter.title)
        xml = document.render(fine, letter, kind.value)
        signed_xml = await self._xml_signer.sign(xml, self._signer_id)
        return LetterDocuments(kind, letter.language, signed_pdf, signed_xml)
