"""sd_notify(3) for systemd's `Type=notify`, without libsystemd.

With `Type=notify`, systemd counts the service started only once it says READY=1,
so a `systemctl reload` queued right behind `systemctl start` waits for a daemon
that handles SIGHUP, and units ordered after pilotfish start once it answers. The
protocol is one datagram to the unix socket named in $NOTIFY_SOCKET; outside
systemd the variable is unset and this does nothing.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(state: str) -> None:
    """Send `state` (such as "READY=1") to the service manager, if one listens."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]  # the abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        # A missing manager must not stop the daemon; it is serving either way.
        log.warning("could not notify the service manager", extra={"state": state, "error": str(exc)})
