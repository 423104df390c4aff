"""The XML form of a report version: rendered for signing, checked against report.xsd."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from lxml import etree

from justice.reports.model import Attachment, ReportVersion

NAMESPACE = "urn:justice-exchange:report:1"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def _q(tag: str) -> str:
    return f"{{{NAMESPACE}}}{tag}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@cache
def _schema() -> etree.XMLSchema:
    # report.xsd imports the local xml.xsd next to it, so the base URL is the file's own.
    with resources.as_file(resources.files("justice.reports").joinpath("report.xsd")) as path:
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        return etree.XMLSchema(etree.parse(str(path), parser))


class SchemaViolation(ValueError):
    """The rendered document does not match report.xsd."""


def render(report: ReportVersion) -> bytes:
    """The unsigned document; raises SchemaViolation if it breaks the schema."""
    c = report.content
    root = etree.Element(_q("OfficialReport"), nsmap={"pv": NAMESPACE})

    def add(parent: Any, tag: str, text: str) -> Any:
        element = etree.SubElement(parent, _q(tag))
        element.text = text
        return element

    add(root, "Name", report.name)
    add(root, "Version", str(report.version))
    if report.amends_version:
        add(root, "Amends", str(report.amends_version))
    add(root, "CaseNumber", c.case_number)
    add(root, "ReportingUnit", c.reporting_unit)
    add(root, "Author", report.author)
    add(root, "Language", c.language)
    add(root, "FactsTime", _iso(c.facts_time) if c.facts_time else "")
    add(root, "WrittenTime", _iso(report.written_time))
    add(root, "Place", c.place)
    offences = etree.SubElement(root, _q("Offences"))
    for offence in c.offences:
        add(offences, "Offence", offence.description).attrib.update(
            {"code": offence.code, "article": offence.article}
        )
    persons = etree.SubElement(root, _q("Persons"))
    for person in c.persons:
        element = etree.SubElement(
            persons, _q("Person"), role=person.role.value if person.role else ""
        )
        add(element, "GivenName", person.given_name)
        add(element, "FamilyName", person.family_name)
        if person.birth_date:
            add(element, "BirthDate", person.birth_date.isoformat())
        if person.national_id:
            add(element, "NationalId", person.national_id)
    add(root, "Narrative", c.narrative).set(_XML_LANG, c.language)
    attachments = etree.SubElement(root, _q("Attachments"))
    for att in c.attachments:
        etree.SubElement(
            attachments,
            _q("Attachment"),
            evidence=att.evidence,
            sha256=att.sha256,
            size=str(att.size_bytes),
            mediaType=att.media_type,
        )
    schema = _schema()
    if not schema.validate(root):
        raise SchemaViolation(str(schema.error_log.last_error))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def identify(signed_root: Any) -> tuple[str, int]:
    """Report name and version read from the element a signature covers."""
    if signed_root is None or signed_root.tag != _q("OfficialReport"):
        return "", 0
    name = signed_root.findtext(_q("Name")) or ""
    version = signed_root.findtext(_q("Version")) or "0"
    return name, int(version) if version.isdigit() else 0


def attachments(signed_root: Any) -> tuple[Attachment, ...]:
    """The evidence references inside the element a signature covers."""
    if signed_root is None or signed_root.tag != _q("OfficialReport"):
        return ()
    found = []
    for element in signed_root.iterfind(f"{_q('Attachments')}/{_q('Attachment')}"):
        size = element.get("size", "")
        found.append(
            Attachment(
                evidence=element.get("evidence", ""),
                sha256=element.get("sha256", ""),
                size_bytes=int(size) if size.isdigit() else -1,
                media_type=element.get("mediaType", ""),
            )
        )
    return tuple(found)
