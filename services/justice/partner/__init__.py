"""The partner SDK: what a partner's own system uses to talk to the platform over NATS.

    client = await PartnerClient.connect(config, signing_identity, platform_cert, [ca])
    await listen(client, handle, ProcessedLog(path), stop)

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
