"""nats-server authorization generated from the partner registry.

One user per partner, allowed to:
  publish    justice.v1.partner.<id>.outbox.>  (its messages; JetStream stores them)
             $JS.API.CONSUMER.MSG.NEXT.JUSTICE_PARTNER_INBOX.partner-<id>   (pull its inbox)
             $JS.API.CONSUMER.INFO.JUSTICE_PARTNER_INBOX.partner-<id>
             $JS.ACK.JUSTICE_PARTNER_INBOX.partner-<id>.>                   (ack what it pulled)
  subscribe  justice.v1.partner.<id>.inbox.>
             _INBOX_<id>.>   (its own reply inbox: PubAcks and pulled messages arrive there)
and nothing else. The platform's own user may do anything.

Passwords are derived (HMAC-SHA256) from one secret held by the platform, so the registry
stores none and the config can be regenerated at any time; hand each partner its own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence

from justice.exchange.bus import INBOX_STREAM, partner_consumer, partner_inbox_prefix
from justice.exchange.model import Partner, nats_user_of

PLATFORM_USER = "justice-platform"


def derive_password(secret: bytes, user: str) -> str:
    return hmac.new(secret, f"nats-user:{user}".encode(), hashlib.sha256).hexdigest()


def partner_permissions(partner_id: str) -> dict[str, list[str]]:
    consumer = partner_consumer(partner_id)
    return {
        "publish": [
            f"justice.v1.partner.{partner_id}.outbox.>",
            f"$JS.API.CONSUMER.MSG.NEXT.{INBOX_STREAM}.{consumer}",
            f"$JS.API.CONSUMER.INFO.{INBOX_STREAM}.{consumer}",
            f"$JS.ACK.{INBOX_STREAM}.{consumer}.>",
        ],
        "subscribe": [
            f"justice.v1.partner.{partner_id}.inbox.>",
            f"{partner_inbox_prefix(partner_id)}.>",
        ],
    }


def _user(name: str, password: str, permissions: dict[str, list[str]] | None) -> str:
    fields = [f"user: {json.dumps(name)}", f"password: {json.dumps(password)}"]
    if permissions is not None:
        publish = json.dumps(permissions["publish"])
        subscribe = json.dumps(permissions["subscribe"])
        fields.append(
            f"permissions: {{publish: {{allow: {publish}}}, subscribe: {{allow: {subscribe}}}}}"
        )
    return "    {" + ", ".join(fields) + "}"


def render_authorization(partner_ids: Iterable[str], secret: bytes) -> str:
    """The `authorization { users = [...] }` block for nats-server."""
    users = [_user(PLATFORM_USER, derive_password(secret, PLATFORM_USER), None)]
    for partner_id in sorted(set(partner_ids)):
        user = nats_user_of(partner_id)
        users.append(_user(user, derive_password(secret, user), partner_permissions(partner_id)))
    return "authorization {\n  users = [\n" + "\n".join(users) + "\n  ]\n}\n"


def render_for(partners: Sequence[Partner], secret: bytes) -> str:
    return render_authorization((p.id for p in partners), secret)
