"""Partner exchange: outbox, relay, envelopes, receipts. Knows no domain."""
