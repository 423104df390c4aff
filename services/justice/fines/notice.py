"""A fine letter's documents: the PDF signed PAdES and the same content as XML signed
XAdES, both with the platform's key (as reports are signed).

The PDF is rendered and its signature prepared and finished (pyHanko's ASN.1 and PDF work)
in the renderer processes when there are any, else in threads; only the key's signature
over the signed attributes runs here, with the key store's key (a file or an HSM). Measured
one letter at a time on the loaded 2-core machine (2 Dec): rendering 25 ms of CPU (about
12 since fines/pdf.py wraps its own lines and copies the cut font's glyphs), the
PAdES preparation 11.5 ms and finishing 2.4 ms (pyHanko's pure Python, which ran in this
process before), the key's signature 0.4 ms."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from justice.fines import document, pdf
from justice.fines.letter import Letter, LetterKind, LetterSettings, compose
from justice.fines.model import Fine
from justice.fines.ports import LetterDocuments
from justice.platform.processes import WorkerProcesses
from justice.signing import pades

T = TypeVar("T")


class XmlSigner(Protocol):
    async def sign(self, document: bytes, signer_id: str) -> bytes: ...


class PdfSigner(Protocol):
    """The key's half of a PAdES signature (signing.pades.PadesSigner)."""

    def certificates(self, signer_id: str) -> pades.SignerCertificates: ...
    async def sign_attributes(self, signer_id: str, prepared: pades.PreparedPdf) -> bytes: ...


def _render_prepared(
    letter: Letter, font: Path, certificates: pades.SignerCertificates
) -> pades.PreparedPdf:
    """In a renderer: the PDF, with its signature field and signed attributes ready."""
    return pades.prepare(pdf.render(letter, font), certificates, letter.title)


def _ready() -> None:
    """A renderer's first task: it has imported this module (and pyHanko) to run it."""


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
        # The PDF renderers' processes, started at the first letter; each cuts the font
        # once. None: render in a thread (rendering is pure Python: it holds the GIL).
        self._renderers = (
            WorkerProcesses(processes, pdf.letter_font, (font,)) if processes else None
        )

    async def render(self, fine: Fine, kind: LetterKind) -> LetterDocuments:
        letter = compose(fine, kind, self._settings)
        certificates = self._pdf_signer.certificates(self._signer_id)
        prepared = await self._off_loop(_render_prepared, letter, self._font, certificates)
        signature = await self._pdf_signer.sign_attributes(self._signer_id, prepared)
        signed_pdf = await self._off_loop(pades.finish, prepared, signature, certificates)
        xml = document.render(fine, letter, kind.value)
        signed_xml = await self._xml_signer.sign(xml, self._signer_id)
        return LetterDocuments(kind, letter.language, signed_pdf, signed_xml)

    async def _off_loop(self, work: Callable[..., T], *args: Any) -> T:
        """In a renderer process, or a thread without them."""
        if self._renderers is None:
            return await asyncio.to_thread(work, *args)
        return await self._renderers.run(work, *args)

    def warm(self) -> None:
        """Starts the renderer processes now rather than at the first letter: spawning them,
        their imports and the font cut took ~4 s on the loaded benchmark machine, during
        which the first letters waited and the processes' start took the CPU the lookups
        needed (first letter 7 s after the first RegisterOffence)."""
        if self._renderers is not None:
            self._renderers.warm(_ready)

    async def close(self) -> None:
        if self._renderers is not None:
            await self._renderers.close()
