"""A fine letter's documents: the PDF signed PAdES and the same content as XML signed
XAdES, both with the platform's key (as reports are signed)."""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Protocol

from justice.fines import document, pdf
from justice.fines.letter import LetterKind, LetterSettings, compose
from justice.fines.model import Fine
from justice.fines.ports import LetterDocuments


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
        processes: int = 0,
    ) -> None:
        self._settings = settings
        self._font = font
        self._pdf_signer = pdf_signer
        self._xml_signer = xml_signer
        self._signer_id = signer_id
        self._processes = processes
        self._pool: Executor | None = None

    def _renderers(self) -> Executor | None:
        """The PDF renderers' processes, started at the first letter; each cuts the font
        once. None: render in a thread (rendering is pure Python: it holds the GIL)."""
        if self._processes and self._pool is None:
            self._pool = ProcessPoolExecutor(
                self._processes,
                # Not fork: this process runs threads (database, NATS) a fork would copy.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=pdf.letter_font,
                initargs=(self._font,),
            )
        return self._pool

    async def render(self, fine: Fine, kind: LetterKind) -> LetterDocuments:
        letter = compose(fine, kind, self._settings)
        renderers = self._renderers()
        if renderers is None:
            unsigned = await asyncio.to_thread(pdf.render, letter, self._font)
        else:
            loop = asyncio.get_running_loop()
            unsigned = await loop.run_in_executor(renderers, pdf.render, letter, self._font)
        signed_pdf = await self._pdf_signer.sign(unsigned, self._signer_id, letter.title)
        xml = document.render(fine, letter, kind.value)
        signed_xml = await self._xml_signer.sign(xml, self._signer_id)
        return LetterDocuments(kind, letter.language, signed_pdf, signed_xml)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)
