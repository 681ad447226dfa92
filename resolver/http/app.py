"""The aiohttp application: every route of the design, one middleware.

`build_app` is the only thing the daemon needs: it attaches the running state and
the connection guard and wires the route modules; the daemon serves the result with
resolver/http/server.py. The app holds no catalog data of its own: each handler
takes `catalog.current` per request.
"""

from __future__ import annotations

from aiohttp import web

from resolver.http.appkeys import GUARD, QUERY_RULES, STATE
from resolver.http.guard import ConnectionGuard
from resolver.http.middleware import api_middleware
from resolver.http.openapi import OPERATIONS
from resolver.http.params import QueryRules
from resolver.http.routes_config import add_config_routes
from resolver.http.routes_conflicts import add_conflict_routes
from resolver.http.routes_consul import add_consul_routes
from resolver.http.routes_health import add_health_routes
from resolver.http.routes_maintenance import add_maintenance_routes
from resolver.http.routes_services import add_service_routes
from resolver.http.routes_status import add_status_routes
from resolver.http.routes_ui import add_ui_routes
from resolver.http.selection import SELECTOR, Selector
from resolver.state import DaemonState


def build_app(state: DaemonState) -> web.Application:
    app = web.Application(middlewares=[api_middleware])
    app[STATE] = state
    app[GUARD] = ConnectionGuard(lambda: state.config.http)
    app[SELECTOR] = Selector()
    # What each route's query string may hold: what its OpenAPI operation declares.
    app[QUERY_RULES] = QueryRules(OPERATIONS)
    add_service_routes(app)
    add_conflict_routes(app)
    add_config_routes(app)
    add_status_routes(app)
    add_health_routes(app)
    add_maintenance_routes(app)
    add_consul_routes(app)
    add_ui_routes(app)
    return app
