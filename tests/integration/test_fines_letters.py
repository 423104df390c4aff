"""Fine letters checked by independent tools: pdftotext reads plate, amount, due date and
reference in the addressee's language with Polish and Romanian diacritics intact, pdfsig
finds the PAdES signature valid, and the signed XML verifies; every catalogue carries
every message id."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date

from justice.devstack.pki import DevPki
from justice.devstack.testing import PKI_PASSPHRASE
from justice.fines.letter import (
    TEXT_IDS,
    LetterKind,
    LetterSettings,
    catalogue,
    money,
    shipped_languages,
)
from justice.fines.model import (
    Address,
    Fine,
    FineState,
    Money,
    Offence,
    Person,
    PersonKind,
    payment_reference,
)
from justice.fines.notice import NoticeRenderer
from justice.platform.config import FineRules
from justice.signing.keyed import KeyStoreSigner
from justice.signing.keystore import FileKeyStore
from justice.signing.pades import PadesSigner
from justice.signing.xades import XadesSigner, XadesVerifier
from tests.fines_env import offence

pytestmark = pytest.mark.skipif(
    shutil.which("pdftotext") is None or shutil.which("pdfsig") is None,
    reason="poppler-utils (make system-packages)",
)
SETTINGS = LetterSettings(
    "FPS Justice, Crossborder Fines", "BE71 0961 2345 6769", 30, "Europe/Brussels"
)


def test_every_message_id_is_in_every_catalogue() -> None:
    languages = shipped_languages()
    assert set(languages) >= {"nl", "fr", "de", "en", "pl", "ro", "es"}
    wanted = set(TEXT_IDS) | {o.value for o in Offence}
    for language in languages:
        missing = wanted - set(catalogue(language))
        assert not missing, f"{language} lacks {sorted(missing)}"


def _fine(plate: str, country: str, name: str, language: str) -> Fine:
    now = datetime.now(UTC)
    return Fine(
        fine_id="01letters",
        detection=offence(plate, country),
        amount=Money(Decimal("159.00")),
        payment_reference=payment_reference(1_234_567_890),
        create_time=now,
        update_time=now,
        state=FineState.NOTICE_SENT,
        due_time=now + timedelta(days=30),
        holder=Person(
            PersonKind.NATURAL,
            name,
            Address("ul. Świętokrzyska 14", "00-050", "Warszawa", country),
            language,
        ),
        notice_language=language,
        notices_sent=1,
    )


# Rendered in a thread of this process, and in a renderer process of its own.
@pytest.fixture(scope="module", params=[0, 1], ids=["thread", "process"])
async def renderer(pki: DevPki, request: pytest.FixtureRequest) -> AsyncIterator[NoticeRenderer]:
    keys = FileKeyStore(pki.signing_dir, PKI_PASSPHRASE)
    rendering = NoticeRenderer(
        SETTINGS,
        FineRules().font,
        PadesSigner(keys),
        KeyStoreSigner(keys, XadesSigner()),
        "justice-server",
        processes=request.param,
    )
    yield rendering
    await rendering.close()


def _tool(*args: str, check: bool = False) -> str:
    """A poppler tool's standard output (pdfsig exits non-zero on an invalid signature)."""
    return subprocess.run(args, capture_output=True, check=check).stdout.decode()


def _text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "letter.pdf"
    path.write_bytes(pdf)
    out = _tool("pdftotext", "-enc", "UTF-8", str(path), "-", check=True)
    # Babel separates amounts with non-breaking spaces; pdftotext keeps or drops them.
    return " ".join(out.replace("\xa0", " ").replace("\u202f", " ").split())


@pytest.mark.parametrize(
    ("plate", "country", "name", "language", "words"),
    [
        (
            "WX12345",
            "PL",
            "Łukasz Żółkiewski",
            "pl",
            ["Kwota do zapłaty", "Termin płatności", "Przekroczenie prędkości"],
        ),
        (
            "B123ABC",
            "RO",
            "Ștefan Țăranu",
            "ro",
            ["Sumă de plată", "Dată scadentă", "Depășirea vitezei legale"],
        ),
    ],
)
async def test_pdf_letter_reads_back_in_the_holders_language_with_a_valid_signature(
    renderer: NoticeRenderer,
    pki: DevPki,
    tmp_path: Path,
    plate: str,
    country: str,
    name: str,
    language: str,
    words: list[str],
) -> None:
    fine = _fine(plate, country, name, language)
    letter = await renderer.render(fine, LetterKind.NOTICE)
    assert letter.language == language
    text = _text(letter.pdf, tmp_path)
    due = fine.due_time
    assert due is not None
    expected = [
        plate,
        name,
        fine.payment_reference,
        money(Decimal("159.00"), "EUR", language),
        format_date(due.astimezone(ZoneInfo("Europe/Brussels")), "long", locale=language),
        *words,
    ]
    for value in expected:
        assert " ".join(value.replace("\xa0", " ").split()) in text, value

    path = tmp_path / "letter.pdf"
    path.write_bytes(letter.pdf)
    report = _tool("pdfsig", str(path))
    assert "Signature Validation: Signature is Valid." in report, report
    assert "justice-server" in report or "Justice Exchange" in report

    verdict = XadesVerifier([pki.ca_certificate()]).verify(letter.signed_xml)
    assert verdict.integrity_ok, verdict.reason
    assert verdict.chains_to_ca
    assert name.encode() in letter.signed_xml


async def test_a_changed_pdf_no_longer_verifies(renderer: NoticeRenderer, tmp_path: Path) -> None:
    letter = await renderer.render(_fine("WX12345", "PL", "Jan Nowak", "pl"), LetterKind.REMINDER)
    # The creator string sits uncompressed in the signed bytes: one changed letter.
    assert letter.pdf.count(b"Justice Exchange") >= 1
    tampered = letter.pdf.replace(b"Justice Exchange", b"Justice Exchangf", 1)
    path = tmp_path / "tampered.pdf"
    path.write_bytes(tampered)
    report = _tool("pdfsig", str(path))
    assert "Signature is Valid." not in report
    assert "Signature Validation:" in report  # it was checked, and failed


async def test_the_letter_embeds_its_font(renderer: NoticeRenderer, tmp_path: Path) -> None:
    letter = await renderer.render(_fine("WX12345", "PL", "Jan Nowak", "pl"), LetterKind.NOTICE)
    path = tmp_path / "letter.pdf"
    path.write_bytes(letter.pdf)
    fonts = _tool("pdffonts", str(path), check=True)
    rows = [line.split() for line in fonts.splitlines()[2:]]
    assert rows
    # Columns: name, type..., emb, sub, uni, object id, generation.
    assert all(row[-5] == "yes" for row in rows), fonts


def _words(pdf: bytes, tmp_path: Path) -> list[tuple[str, float, float, float, float]]:
    """Each word pdftotext finds, with its box: (text, x_min, y_min, x_max, y_max)."""
    path = tmp_path / "letter.pdf"
    path.write_bytes(pdf)
    page = _tool("pdftotext", "-bbox", "-enc", "UTF-8", str(path), "-", check=True)
    words = re.findall(
        r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>',
        page,
    )
    return [(text, float(a), float(b), float(c), float(d)) for a, b, c, d, text in words]


@pytest.mark.parametrize("language", shipped_languages())
async def test_no_text_of_a_letter_runs_into_other_text(
    renderer: NoticeRenderer, tmp_path: Path, language: str
) -> None:
    """Long labels (the speeding row's) wrap in their column instead of running under the
    value beside them."""
    letter = await renderer.render(_fine("WX12345", "PL", "Jan Nowak", language), LetterKind.NOTICE)
    words = _words(letter.pdf, tmp_path)
    assert len(words) > 50
    for i, (text, x0, y0, x1, y1) in enumerate(words):
        for other, u0, v0, u1, v1 in words[i + 1 :]:
            overlapping = x0 < u1 - 0.5 and u0 < x1 - 0.5 and y0 < v1 - 0.5 and v0 < y1 - 0.5
            assert not overlapping, f"{text!r} runs into {other!r}"
