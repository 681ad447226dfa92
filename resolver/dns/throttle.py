"""Where resolver/dns/responder.py still imports LogThrottle from: it lives in registry/ratelog.py.

responder.py was being changed elsewhere when the two rate-limited loggers were made
one; once it imports `registry.ratelog.LogThrottle`, this module goes.
"""

from registry.ratelog import LogThrottle

__all__ = ["LogThrottle"]
