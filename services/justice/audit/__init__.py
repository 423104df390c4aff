"""Who consulted what: the audit interceptor, the hash chain, queries and misuse detection."""
