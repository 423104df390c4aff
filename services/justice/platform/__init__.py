"""Named infrastructure: config, database, server, errors, listing."""
