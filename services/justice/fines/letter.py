"""What a fine letter says, in the addressee's language: the article 5 information of
Directive 2015/413 (offence, place, date, time, provision, penalty, device, evidence,
amount, payment reference, due date, how to pay, how to contest).

Texts live in gettext catalogues (locales/<lang>/LC_MESSAGES/notice.po), read with Babel,
so a language is one more catalogue. Dates and amounts are formatted by Babel (CLDR) for
the language.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time
from babel.messages.pofile import read_po
from babel.numbers import format_currency

from justice.fines.model import Fine

DOMAIN = "notice"
# The message ids every catalogue must carry (offence names are the Offence values).
TEXT_IDS = (
    "notice.title",
    "reminder.title",
    "payment_order.title",
    "intro",
    "addressee",
    "plate",
    "offence",
    "place",
    "date",
    "time",
    "provision",
    "speed",
    "device",
    "evidence",
    "amount",
    "reference",
    "due",
    "how_to_pay",
    "how_to_contest",
    "issuer",
)


class LetterKind(enum.Enum):
    NOTICE = "notice"
    REMINDER = "reminder"
    PAYMENT_ORDER = "payment_order"


def shipped_languages() -> tuple[str, ...]:
    root = resources.files("justice.fines").joinpath("locales")
    return tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))


@cache
def catalogue(language: str) -> dict[str, str]:
    """msgid -> msgstr of one language (read once)."""
    path = resources.files("justice.fines").joinpath(
        "locales", language, "LC_MESSAGES", f"{DOMAIN}.po"
    )
    with path.open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    return {str(m.id): str(m.string) for m in catalog if m.id and m.string}


@dataclass(frozen=True)
class LetterSettings:
    issuer: str
    iban: str
    contest_days: int
    timezone: str


@dataclass(frozen=True)
class Letter:
    language: str
    title: str
    intro: str
    # Addressee's name and address lines.
    addressee: tuple[str, ...]
    rows: tuple[tuple[str, str], ...]
    closing: tuple[str, ...]
    issuer: str


def compose(fine: Fine, kind: LetterKind, settings: LetterSettings) -> Letter:
    language = fine.notice_language
    t = catalogue(language)
    d = fine.detection
    zone = ZoneInfo(settings.timezone)
    when = d.offence_time.astimezone(zone) if d.offence_time else None
    person = fine.liable
    addressee: tuple[str, ...] = ()
    if person is not None:
        a = person.address
        addressee = (person.name, a.street, f"{a.postal_code} {a.city}", a.country)
    rows: list[tuple[str, str]] = [
        (t["plate"], f"{d.plate} ({d.registration_country})"),
        (t["offence"], t[d.offence.value] if d.offence else ""),
        (t["place"], f"{d.place} ({d.offence_country})"),
        (t["date"], format_date(when, "long", locale=language) if when else ""),
        (t["time"], format_time(when, "short", locale=language) if when else ""),
        (t["provision"], d.provision),
    ]
    if d.speed is not None:
        rows.append((t["speed"], f"{d.speed.measured} / {d.speed.corrected} / {d.speed.allowed}"))
    rows += [
        (t["device"], d.device_id),
        (t["evidence"], ", ".join(d.evidence) or fine.name),
        (t["amount"], money(fine.outstanding.amount, fine.outstanding.currency, language)),
        (t["reference"], fine.payment_reference),
        (t["due"], format_date(fine.due_time.astimezone(zone), "long", locale=language))
        if fine.due_time
        else (t["due"], ""),
    ]
    closing = (
        t["how_to_pay"].format(iban=settings.iban),
        t["how_to_contest"].format(authority=settings.issuer, days=settings.contest_days),
    )
    return Letter(
        language=language,
        title=t[f"{kind.value}.title"],
        intro=t["intro"],
        addressee=addressee,
        rows=tuple(rows),
        closing=closing,
        issuer=f"{t['issuer']}: {settings.issuer}",
    )


def money(amount: Decimal, currency: str, language: str) -> str:
    return str(format_currency(amount, currency, locale=language))
