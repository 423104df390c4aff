"""Parsing XML that comes from outside the platform.

Everything signed or verified here is parsed through `parse_untrusted`, so the DTD / entity /
network attack surface of libxml2 is closed in one place. The rule is simple: no DOCTYPE at all
(justice documents never need one), no entities beyond the five predefined ones, no processing
instructions, nothing fetched from anywhere, and libxml2's default size/depth limits stay on.
"""

from __future__ import annotations

import threading

from lxml import etree

__all__ = ["UnsafeXml", "XmlTooLarge", "parse_untrusted"]


class UnsafeXml(Exception):
    """The input is not XML we are willing to process. `reason` is safe to show to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class XmlTooLarge(UnsafeXml):
    """The input exceeds the byte limit; kept distinct so APIs can answer RESOURCE_EXHAUSTED."""


_parsers = threading.local()


def _parser() -> etree.XMLParser:
    # lxml parsers keep per-parse state, so each thread gets its own (building one is cheap,
    # but not free on a hot path).
    parser: etree.XMLParser | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,  # never substitute entities (billion laughs, XXE)
            no_network=True,  # never fetch anything
            load_dtd=False,  # never load an external DTD
            dtd_validation=False,
            huge_tree=False,  # keep libxml2's depth and text-size limits
            remove_pis=False,  # keep PIs so we can refuse them instead of silently dropping
            remove_comments=False,  # comments are harmless; c14n drops them from the signed view
            strip_cdata=False,
        )
        _parsers.parser = parser
    return parser


def parse_untrusted(data: bytes, *, max_bytes: int) -> etree._Element:
    """Parse `data` or raise `UnsafeXml`. Never resolves, fetches or expands anything."""
    if not isinstance(data, bytes):
        raise UnsafeXml("input must be bytes")
    if len(data) > max_bytes:
        raise XmlTooLarge(f"document is {len(data)} bytes, limit is {max_bytes}")
    if not data.strip():
        raise UnsafeXml("empty document")
    # Cheap early exit for the common attack shape; the docinfo check below is the real guard
    # (it also catches a DOCTYPE hidden by a UTF-16 encoding).
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise UnsafeXml("DOCTYPE and entity declarations are not allowed")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeXml(f"not well-formed XML: {exc.msg}") from None
    except (ValueError, TypeError) as exc:
        raise UnsafeXml(f"not parseable as XML: {exc}") from None
    if root is None:
        raise UnsafeXml("no root element")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXml("DOCTYPE and entity declarations are not allowed")
    for _ in root.iter(etree.Entity):
        raise UnsafeXml("entity references are not allowed")
    for _ in root.iter(etree.ProcessingInstruction):
        raise UnsafeXml("processing instructions are not allowed")
    for sibling in (*root.itersiblings(preceding=True), *root.itersiblings()):
        if isinstance(sibling, etree._ProcessingInstruction):
            raise UnsafeXml("processing instructions are not allowed")
    return root
