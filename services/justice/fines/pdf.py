"""A fine letter as PDF (fpdf2), with a TrueType font embedded (subset) that carries every
letter of the shipped languages: Polish and Romanian diacritics come out as written.

The configured font is cut once per process to the Latin letters the shipped languages
use (Basic Latin to Latin Extended-B, quotes, dashes, the euro sign): fpdf2 then parses a
90 KB font instead of DejaVu's 740 KB for every letter, 8 ms instead of 35 ms here.
"""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont
from fpdf import FPDF

from justice.fines.letter import Letter

_LETTERS = [
    *range(0x20, 0x250),
    *(0x2009, 0x2013, 0x2014, 0x2018, 0x2019, 0x201A, 0x201C, 0x201D, 0x201E, 0x2026),
    *(0x202F, 0x20AC),
]


@cache
def letter_font(font: Path) -> Path:
    options = subset.Options()
    options.name_IDs = ["*"]
    options.notdef_outline = True
    options.layout_features = ["*"]
    # FontForge's timestamp table: nothing to cut, and fontTools warns about it.
    options.drop_tables = [*options.drop_tables, "FFTM"]
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
    pdf.add_font("Letter", fname=str(letter_font(font)))
    pdf.add_page()
    pdf.set_font("Letter", size=10)
    for line in letter.addressee:
        pdf.cell(0, 5, line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    pdf.set_font("Letter", size=14)
    pdf.multi_cell(0, 7, letter.title, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Letter", size=10)
    pdf.multi_cell(0, 5, letter.intro, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    for label, value in letter.rows:
        pdf.cell(70, 6, label)
        pdf.multi_cell(0, 6, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    for paragraph in letter.closing:
        pdf.multi_cell(0, 5, paragraph, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    pdf.ln(4)
    pdf.multi_cell(0, 5, letter.issuer, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
