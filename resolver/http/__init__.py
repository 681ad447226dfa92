"""The HTTP API: lookups, registrations, conflicts, config, events, status, metrics."""
