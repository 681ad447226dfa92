"""What one probe run found, before rise/fall decide what the catalog is told.

Kept apart from the runner so that probe modules do not import it (and the runner
can import every probe module without a cycle).
"""

from __future__ import annotations

from dataclasses import dataclass

from registry.model import Status

# Check output is shown in the API and logged with every transition; a chatty
# command must not bloat the event log, so everything is cut to this size.
OUTPUT_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    output: str


def truncate(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """Cut `text` to `limit` characters, saying so, so a reader knows output is missing."""
    if len(text) <= limit:
        return text
    marker = " ...[truncated]"
    return text[: limit - len(marker)] + marker
