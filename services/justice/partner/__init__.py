"""The partner SDK: what a partner's own system uses to talk to the platform over NATS.

    client = await PartnerClient.connect(config, envelope_identity, platform_certs, [ca])
    await listen(client, handle, ProcessedLog(path), stop)

Envelopes are signed with ECDSA P-256 envelope keys (the dev PKI's envelope/), and RSA ones
still verify: give the platform's old and new certificates while it changes keys.

`justice.partner.simulator` is a prosecutor's office built only on this SDK.
"""

from justice.partner.client import (
    Answer,
    PartnerClient,
    PartnerConfig,
    ProcessedLog,
    Received,
    listen,
)

__all__ = ["Answer", "PartnerClient", "PartnerConfig", "ProcessedLog", "Received", "listen"]
