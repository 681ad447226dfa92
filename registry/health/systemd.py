"""systemd checks: the unit is healthy while `systemctl is-active UNIT` exits 0.

Asks systemctl rather than D-Bus so that the check needs no extra library and
behaves exactly as an operator's own `systemctl is-active` would.
"""

from __future__ import annotations

from registry.health.exec import run_command
from registry.health.outcome import Outcome
from registry.model import CheckSpec, Status


async def probe_systemd(spec: CheckSpec) -> Outcome:
    try:
        # `--`: a unit name is never read as an option (`--host=...` would reach another machine).
        code, output = await run_command(("systemctl", "is-active", "--", spec.target))
    except OSError as exc:
        return Outcome(Status.CRITICAL, f"cannot run systemctl: {exc.strerror or exc}")
    state = output or f"exit code {code}"
    status = Status.PASSING if code == 0 else Status.CRITICAL
    return Outcome(status, f"unit {spec.target}: {state}")
