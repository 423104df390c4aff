"""Response metadata of DownloadEvidence, shared by the server and its clients (the CLI
imports this without the server's modules)."""

SHA256_HEADER = "x-evidence-sha256"
SIZE_HEADER = "x-evidence-size"
RANGE_HEADER = "x-evidence-range"
