"""The seizure receipt for the person seized from: the same content as a PDF (signed PAdES by
the platform) and as XML (signed XAdES), in the person's language (nl, fr, de or en).

The PDF uses the standard Helvetica font (Latin-1), enough for the four languages; any other
character in a name is shown as "?" in the PDF and kept exactly in the XML.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fpdf import FPDF
from lxml import etree

from justice.custody import chain
from justice.custody.document import NAMESPACE
from justice.custody.model import Cash, Drugs, Item, Seizure

LABELS: dict[str, dict[str, str]] = {
    "nl": {
        "title": "Ontvangstbewijs van inbeslagneming",
        "case": "Dossiernummer",
        "seizure": "Inbeslagneming",
        "place": "Plaats",
        "time": "Datum en tijd (UTC)",
        "officer": "Verbalisant",
        "person": "In beslag genomen bij",
        "ground": "Rechtsgrond",
        "items": "In beslag genomen goederen",
        "item": "Nummer",
        "seal": "Zegel",
        "quantity": "Aantal, gewicht of bedrag",
        "objection": "Bezwaar: u kunt de teruggave vragen of een klaagschrift indienen bij de "
        "rechtbank (art. 552a Sv.), met vermelding van het dossiernummer.",
    },
    "fr": {
        "title": "Accusé de réception de saisie",
        "case": "Numéro de dossier",
        "seizure": "Saisie",
        "place": "Lieu",
        "time": "Date et heure (UTC)",
        "officer": "Verbalisant",
        "person": "Saisi chez",
        "ground": "Base légale",
        "items": "Biens saisis",
        "item": "Numéro",
        "seal": "Scellé",
        "quantity": "Nombre, poids ou montant",
        "objection": "Recours : vous pouvez demander la levée de la saisie au procureur du Roi "
        "(art. 28sexies C.i.cr.) en mentionnant le numéro de dossier.",
    },
    "de": {
        "title": "Empfangsbestätigung über die Beschlagnahme",
        "case": "Aktennummer",
        "seizure": "Beschlagnahme",
        "place": "Ort",
        "time": "Datum und Uhrzeit (UTC)",
        "officer": "Beamter",
        "person": "Beschlagnahmt bei",
        "ground": "Rechtsgrundlage",
        "items": "Beschlagnahmte Gegenstände",
        "item": "Nummer",
        "seal": "Siegel",
        "quantity": "Anzahl, Gewicht oder Betrag",
        "objection": "Einspruch: Sie können beim Prokurator des Königs die Aufhebung der "
        "Beschlagnahme beantragen (Art. 28sexies StPO), unter Angabe der Aktennummer.",
    },
    "en": {
        "title": "Receipt for seized goods",
        "case": "Case number",
        "seizure": "Seizure",
        "place": "Place",
        "time": "Date and time (UTC)",
        "officer": "Officer",
        "person": "Seized from",
        "ground": "Legal ground",
        "items": "Goods seized",
        "item": "Number",
        "seal": "Seal",
        "quantity": "Count, weight or amount",
        "objection": "Objection: you may ask the public prosecutor to lift the seizure, or "
        "lodge a complaint with the court, quoting the case number.",
    },
}


@dataclass(frozen=True)
class Receipt:
    language: str
    pdf: bytes
    signed_xml: bytes


def language_of(seizure: Seizure) -> str:
    person = seizure.seized_from
    return person.language if person and person.language in LABELS else "en"


def quantity_text(item: Item) -> str:
    details = item.spec.details
    if isinstance(details, Drugs):
        return f"{details.net_weight} {details.unit}"
    if isinstance(details, Cash):
        return f"{details.amount.amount} {details.amount.currency}"
    return str(item.spec.count)


def _lines(seizure: Seizure, language: str) -> list[tuple[str, str]]:
    t = LABELS[language]
    person = seizure.seized_from
    return [
        (t["case"], seizure.case_number),
        (t["seizure"], seizure.name),
        (t["place"], seizure.place),
        (t["time"], chain.iso(seizure.seize_time)),
        (t["officer"], seizure.seizing_officer),
        (t["person"], f"{person.given_name} {person.family_name}".strip() if person else "-"),
        (t["ground"], seizure.legal_ground),
    ]


def xml(seizure: Seizure, items: Sequence[Item], language: str) -> bytes:
    t = LABELS[language]
    root = etree.Element(f"{{{NAMESPACE}}}SeizureReceipt", nsmap={"c": NAMESPACE})
    etree.SubElement(root, f"{{{NAMESPACE}}}Language").text = language
    etree.SubElement(root, f"{{{NAMESPACE}}}Title").text = t["title"]
    for label, value in _lines(seizure, language):
        field = etree.SubElement(root, f"{{{NAMESPACE}}}Field")
        field.set("label", label)
        field.text = value
    goods = etree.SubElement(root, f"{{{NAMESPACE}}}Items")
    for item in items:
        element = etree.SubElement(goods, f"{{{NAMESPACE}}}Item")
        element.set("name", item.name)
        element.set("seal", item.seal)
        element.set("category", item.category.value)
        element.set("quantity", quantity_text(item))
        element.text = item.spec.description
    etree.SubElement(root, f"{{{NAMESPACE}}}Objection").text = t["objection"]
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def pdf(seizure: Seizure, items: Sequence[Item], language: str) -> bytes:
    t = LABELS[language]
    document = FPDF()
    document.set_title(_latin1(t["title"]))
    document.set_creator("Justice Exchange")
    document.add_page()
    document.set_font("Helvetica", style="B", size=15)
    document.multi_cell(0, 9, _latin1(t["title"]), new_x="LMARGIN", new_y="NEXT")
    document.set_font("Helvetica", size=10)
    for label, value in _lines(seizure, language):
        document.multi_cell(0, 6, _latin1(f"{label}: {value}"), new_x="LMARGIN", new_y="NEXT")
    document.ln(3)
    document.set_font("Helvetica", style="B", size=11)
    document.multi_cell(0, 7, _latin1(t["items"]), new_x="LMARGIN", new_y="NEXT")
    document.set_font("Helvetica", size=10)
    for item in items:
        line = (
            f"{t['item']}: {item.name}   {t['seal']}: {item.seal}   "
            f"{t['quantity']}: {quantity_text(item)}   {item.spec.description}"
        )
        document.multi_cell(0, 6, _latin1(line), new_x="LMARGIN", new_y="NEXT")
    document.ln(3)
    document.multi_cell(0, 6, _latin1(t["objection"]), new_x="LMARGIN", new_y="NEXT")
    return bytes(document.output())
