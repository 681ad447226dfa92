"""Query parameters: a route accepts exactly those its OpenAPI operation declares.

A typo in a query string used to widen the answer in silence (`?stauts=critical`
returned every instance). The declaration is the operation's `parameters` in
resolver.http.openapi_spec (or ui_openapi), the very list the served document shows,
so that what a client reads there and what the server takes cannot drift apart:
`QueryRules` is built from it once, when the app is, and the API middleware checks
every request that has a query string against its route's rule. A name not declared
is a 400 `invalid` naming it, with a "did you mean" from the same helper as unknown
YAML keys.

An object parameter (`style: deepObject`, the `meta` filter) is a family of names:
`meta[<key>]`, which is how OpenAPI clients serialise it, and `meta.<key>`, the form
pilotfish took first. Consul's paths never get here: they answer in Consul's
conventions (resolver/http/consul_http.py), strict in their own way.

A parameter takes one value unless the document declares it an array (`tag`,
`status`), and so does an object parameter's key whatever its spelling: of
`version=1&version=2` or `meta.owner=a&meta[owner]=b` the server used to keep one
in silence, which answers a question the client did not ask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from multidict import MultiMapping

from registry.errors import Problem, ValidationError
from registry.fields import suggestion

# A parameter name is echoed in the error at most this long, so a huge one cannot make a huge answer.
ECHO_LIMIT = 100
# Unknown names reported per request; the rest are counted.
REPORTED = 10


@dataclass(frozen=True, slots=True)
class Accepted:
    """What one route takes: plain names (`repeatable` ones may come more than once), and object parameters."""

    names: tuple[str, ...]
    objects: tuple[str, ...] = ()
    repeatable: tuple[str, ...] = ()

    def takes(self, name: str) -> bool:
        return name in self.names or any(object_key(name, family) for family in self.objects)


def object_key(name: str, family: str) -> str | None:
    """`owner` for `meta[owner]` or `meta.owner` in the family `meta`, else None.

    A key holds no bracket: `meta[a][b]` is a nested object, which no object
    parameter of ours is, so it is no name of the family.
    """
    if not name.startswith(family):
        return None
    rest = name[len(family):]
    if rest[:1] == "[" and rest[-1:] == "]":
        key = rest[1:-1]
    elif rest[:1] == ".":
        key = rest[1:]
    else:
        return None
    return key if key and "[" not in key and "]" not in key else None


def object_entries(query: MultiMapping[str], family: str) -> list[tuple[str, str]]:
    """Every (key, value) of the object parameter `family`, in either spelling."""
    entries = []
    for name, value in query.items():
        key = object_key(name, family)
        if key is not None:
            entries.append((key, value))
    return entries


def accepted(operation: Mapping[str, Any]) -> Accepted:
    """The query parameters an OpenAPI operation declares."""
    names: list[str] = []
    objects: list[str] = []
    repeatable: list[str] = []
    for param in operation.get("parameters", ()):
        if param["in"] != "query":
            continue
        (objects if param.get("style") == "deepObject" else names).append(param["name"])
        if param["schema"].get("type") == "array":
            repeatable.append(param["name"])
    return Accepted(tuple(names), tuple(objects), tuple(repeatable))


class QueryRules:
    """The accepted parameters of every route, by (method, path template)."""

    def __init__(self, operations: Mapping[tuple[str, str], Mapping[str, Any]]) -> None:
        self._rules = {route: accepted(operation) for route, operation in operations.items()}

    def rule(self, method: str, template: str) -> Accepted:
        """A route without a declaration takes no parameter at all: strict, not silent."""
        return self._rules.get(("GET" if method == "HEAD" else method, template), Accepted(()))

    def check(self, method: str, template: str, query: MultiMapping[str]) -> None:
        """Raise ValidationError naming every parameter the route does not take, or gives two values it takes one of."""
        rule = self.rule(method, template)
        unknown = [name for name in dict.fromkeys(query) if not rule.takes(name)]
        if unknown:
            raise ValidationError([_problem(name, rule) for name in unknown[:REPORTED]])
        repeated = _repeated(query, rule)
        if repeated:
            raise ValidationError(repeated[:REPORTED])


def _repeated(query: MultiMapping[str], rule: Accepted) -> list[Problem]:
    """A problem for each parameter, or object key, given two values where it takes one.

    The same value twice is one value (`meta[team]=edge&meta.team=edge`, as some
    clients send both spellings): only a choice the server would have to make is refused.
    """
    values: dict[str, set[str]] = {}
    for name, value in query.items():
        if name not in rule.repeatable:
            key = next((f"{family}[{k}]" for family in rule.objects if (k := object_key(name, family)) is not None), name)
            values.setdefault(key, set()).add(value)
    return [
        Problem("<request>", None, key[:ECHO_LIMIT], f"given {len(given)} different values; it takes one")
        for key, given in values.items()
        if len(given) > 1
    ]


def _problem(name: str, rule: Accepted) -> Problem:
    shown = name[:ECHO_LIMIT]
    return Problem("<request>", None, shown, f"unknown query parameter{_hint(name, rule)}; {_takes(rule)}")


def _hint(name: str, rule: Accepted) -> str:
    """A close declared name (`Tag`, `tags`, `stauts`); else, where an object parameter
    is declared, the name as one of its keys (`owner` -> `meta.owner`)."""
    if len(name) > ECHO_LIMIT:
        return ""
    for family in rule.objects:
        if name.startswith(family):  # `meta`, `meta.`, `meta[]`: no key
            return f" ({family} filters read {family}.<key>=<value> or {family}[<key>]=<value>)"
    close = suggestion(name.lower(), rule.names)
    if close or not rule.objects or not name:
        return close
    return f" (did you mean {f'{rule.objects[0]}.{name}'!r}?)"


def _takes(rule: Accepted) -> str:
    taken = list(rule.names) + [f"{family}.<key> (or {family}[<key>])" for family in rule.objects]
    return f"this endpoint takes {', '.join(taken)}" if taken else "this endpoint takes none"
