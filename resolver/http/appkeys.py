"""Typed keys for what the aiohttp application carries, shared by every route module."""

from __future__ import annotations

from aiohttp import web

from resolver.state import DaemonState

STATE = web.AppKey("state", DaemonState)
