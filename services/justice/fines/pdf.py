"""A fine letter as PDF (fpdf2), with a TrueType font embedded (subset) that carries every
letter of the shipped languages: Polish and Romanian diacritics come out as written."""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF

from justice.fines.letter import Letter


def render(letter: Letter, font: Path) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_creator("Justice Exchange")
    pdf.set_title(letter.title)
    pdf.set_lang(letter.language)
    pdf.add_font("Letter", fname=str(font))
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
