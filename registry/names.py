"""What a name may be: the patterns every name, id, tag and key in the registry must match whole.

Declared once, for the validator, the HTTP routes and the fleet's keys in etcd alike.
"""

import re

# Patterns are applied with `fullmatch`: `$` would also match before a final newline,
# and "evil\n" would pass for a name.
DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# A domain: dot-separated labels, 253 characters at most.
DNS_NAME = re.compile(r"(?=.{1,253}\Z)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")
TAG = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,62})")
INSTANCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}")
PROTOCOL = re.compile(r"[a-z][a-z0-9+.-]{0,31}")
META_KEY = re.compile(r"[A-Za-z0-9_.-]{1,128}")
SYSTEMD_UNIT = re.compile(r"[A-Za-z0-9:_.@\\-]{1,256}")
HTTP_HEADER = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
