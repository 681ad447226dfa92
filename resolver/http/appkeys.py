"""Typed keys for what the aiohttp application carries, shared by every route module."""

from __future__ import annotations

from aiohttp import web

from resolver.http.guard import ConnectionGuard
from resolver.http.params import QueryRules
from resolver.state import DaemonState

STATE = web.AppKey("state", DaemonState)
GUARD = web.AppKey("guard", ConnectionGuard)
QUERY_RULES = web.AppKey("query_rules", QueryRules)
