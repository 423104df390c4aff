"""A fine letter as PDF (fpdf2), with a TrueType font embedded (subset) that carries every
letter of the shipped languages: Polish and Romanian diacritics come out as written.

Rendering is pure Python, and each letter pays for it (measured 2 Dec, one letter on this
machine: 29 ms before the two changes below, ~12 ms after):
- The configured font is cut once per process to the Latin letters the shipped languages
  use (Basic Latin to Latin Extended-B, quotes, dashes, the euro sign), without hinting or
  layout tables (fpdf2 neither shapes text nor embeds them): fpdf2 parses 47 KB instead of
  DejaVu's 740 KB for every letter, and each letter embeds ~8 KB of it instead of ~13.
- Paragraphs are wrapped here, a word's width measured once: fpdf2's multi_cell measures
  the whole line again at every character it adds.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.fonts import TTFFont

from justice.fines.letter import Letter

_LETTERS = [
    *range(0x20, 0x250),
    *(0x2009, 0x2013, 0x2014, 0x2018, 0x2019, 0x201A, 0x201C, 0x201D, 0x201E, 0x2026),
    *(0x202F, 0x20AC),
]
_FAMILY = "Letter"
# The width of the rows' labels, in mm (A4 is 210 wide, with 10 mm margins).
_LABEL_WIDTH = 70


@cache
def letter_font(font: Path) -> Path:
    options = subset.Options()
    options.name_IDs = ["*"]
    options.notdef_outline = True
    options.hinting = False
    options.layout_features = []
    # FontForge's timestamp table: nothing to cut, and fontTools warns about it.
    options.drop_tables = [*options.drop_tables, "FFTM", "GDEF", "GPOS", "GSUB"]
    cut = TTFont(str(font))
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=_LETTERS)
    subsetter.subset(cut)
    target = Path(tempfile.mkdtemp(prefix="justice-letter-font-")) / font.name
    cut.save(str(target))
    return target


def render(letter: Letter, font: Path) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_creator("Justice Exchange")
    pdf.set_title(letter.title)
    pdf.set_lang(letter.language)
    pdf.add_font(_FAMILY, fname=str(letter_font(font)))
    # The cut font's glyph boxes are already computed: fpdf2's subset for this letter then
    # copies each glyph instead of decoding, measuring and encoding it again (~5 ms).
    font_file = pdf.fonts[_FAMILY.lower()]
    assert isinstance(font_file, TTFFont)
    font_file.ttfont.recalcBBoxes = False
    pdf.add_page()
    pdf.set_font(_FAMILY, size=10)
    for line in letter.addressee:
        pdf.cell(0, 5, line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    pdf.set_font(_FAMILY, size=14)
    _paragraph(pdf, 7, letter.title)
    pdf.ln(3)
    pdf.set_font(_FAMILY, size=10)
    _paragraph(pdf, 5, letter.intro)
    pdf.ln(3)
    for label, value in letter.rows:
        _row(pdf, 6, label, value)
    pdf.ln(4)
    for paragraph in letter.closing:
        _paragraph(pdf, 5, paragraph)
        pdf.ln(2)
    pdf.ln(4)
    _paragraph(pdf, 5, letter.issuer)
    return bytes(pdf.output())


def _paragraph(pdf: FPDF, height: float, text: str) -> None:
    """`text` across the page between the margins, wrapped."""
    width = pdf.w - pdf.l_margin - pdf.r_margin
    for line in _lines(pdf, text, width - 2 * pdf.c_margin):
        pdf.cell(width, height, line, new_x="LMARGIN", new_y="NEXT")


def _row(pdf: FPDF, height: float, label: str, value: str) -> None:
    """A label and its value side by side, each wrapped in its own column: a long label
    (the speeding row's, in Dutch) must not run under the value."""
    left = pdf.l_margin
    value_width = pdf.w - pdf.r_margin - left - _LABEL_WIDTH
    labels = list(_lines(pdf, label, _LABEL_WIDTH - 2 * pdf.c_margin))
    values = list(_lines(pdf, value, value_width - 2 * pdf.c_margin))
    for i in range(max(len(labels), len(values))):
        pdf.set_x(left)
        pdf.cell(_LABEL_WIDTH, height, labels[i] if i < len(labels) else "")
        line = values[i] if i < len(values) else ""
        pdf.cell(value_width, height, line, new_x="LMARGIN", new_y="NEXT")


def _lines(pdf: FPDF, text: str, room: float) -> Iterator[str]:
    """Greedy wrapping at spaces (widths add up: fpdf2 does not kern unshaped text); a word
    wider than the line is cut where it must be."""
    space = _width(pdf, " ")
    for paragraph in text.split("\n"):
        line, used = "", 0.0
        for word in paragraph.split():
            for part in _cut(pdf, word, room):
                size = _width(pdf, part)
                if line and used + space + size <= room:
                    line, used = f"{line} {part}", used + space + size
                    continue
                if line:
                    yield line
                line, used = part, size
        yield line


def _cut(pdf: FPDF, word: str, room: float) -> Iterator[str]:
    if _width(pdf, word) <= room:
        yield word
        return
    piece = ""
    for char in word:
        if piece and _width(pdf, piece + char) > room:
            yield piece
            piece = ""
        piece += char
    yield piece


def _width(pdf: FPDF, text: str) -> float:
    """The font's advance widths added up: what get_string_width computes, without the
    text fragments it builds first (three times the cost)."""
    assert pdf.current_font is not None  # set_font comes first
    return pdf.current_font.get_text_width(text, pdf.font_size_pt, None)[1] / pdf.k
