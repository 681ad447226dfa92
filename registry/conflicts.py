"""Conflict rules and the index that enforces them.

Pure in-memory logic: no I/O, no clock. The catalog writer owns one `ConflictIndex`
and asks it, before anything is stored, whether a candidate may join the node. The
incumbent always wins, so a check never changes what is already registered.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Iterator

from registry.errors import ConflictError
from registry.model import ConflictRule, ConflictType, Instance

# The pairs every store ships with (design: Conflicts). Each pair of packages
# fights over the same port, socket or data directory on a host.
WELL_KNOWN_RULES: tuple[ConflictRule, ...] = (
    ConflictRule("redis-server", "redis-stack-server", ConflictType.PORT, "both bind 6379"),
    ConflictRule("apache2", "nginx", ConflictType.PORT, "both bind 80 and 443"),
    ConflictRule("mysql-server", "mariadb-server", ConflictType.RESOURCE, "both own /var/lib/mysql and 3306"),
    ConflictRule("postgresql-14", "postgresql-15", ConflictType.PORT, "both default to 5432"),
    ConflictRule("docker", "podman", ConflictType.RESOURCE, "both manage the container runtime socket and iptables"),
)

SocketKey = tuple[str, str, int, str]


class RuleBook:
    """Rules indexed by service name, so a check costs the rules of one name."""

    def __init__(self, rules: Iterable[ConflictRule] = ()) -> None:
        self._by_name: dict[str, list[ConflictRule]] = defaultdict(list)
        self._by_pair: dict[frozenset[str], ConflictRule] = {}
        for rule in rules:
            self.add(rule)

    def add(self, rule: ConflictRule) -> None:
        if rule.pair in self._by_pair:
            return
        self._by_pair[rule.pair] = rule
        self._by_name[rule.a].append(rule)
        self._by_name[rule.b].append(rule)

    def for_name(self, name: str) -> list[ConflictRule]:
        return self._by_name.get(name, [])

    def __iter__(self) -> Iterator[ConflictRule]:
        return iter(self._by_pair.values())


class ConflictIndex:
    """Registered instances indexed the two ways a conflict can be found.

    Every instance is indexed by its socket, and by (node, name) only when a rule
    names its name: only those are ever looked up, and a fleet's 100,000 instances
    would otherwise cost a dict each. A socket held by one instance (nearly all of
    them) maps to that instance, one shared by a service's instances to a dict.
    """

    def __init__(self, rules: RuleBook) -> None:
        self._rules = rules
        self._by_node_name: dict[tuple[str, str], dict[tuple[str, str], Instance]] = defaultdict(dict)
        self._by_socket: dict[SocketKey, Instance | dict[tuple[str, str], Instance]] = {}

    @property
    def rules(self) -> RuleBook:
        return self._rules

    @rules.setter
    def rules(self, book: RuleBook) -> None:
        """New rules name other names: the (node, name) index is rebuilt for them (a rare write)."""
        self._rules = book
        self._by_node_name.clear()
        for held in list(self._by_socket.values()):
            for instance in _holders(held):
                if book.for_name(instance.name):
                    self._by_node_name[(instance.node, instance.name)][instance.key] = instance

    @staticmethod
    def _socket(instance: Instance) -> SocketKey:
        return (instance.node, instance.address, instance.port, instance.transport.value)

    def add(self, instance: Instance) -> None:
        if self._rules.for_name(instance.name):
            self._by_node_name[(instance.node, instance.name)][instance.key] = instance
        socket = self._socket(instance)
        held = self._by_socket.get(socket)
        if held is None or (isinstance(held, Instance) and held.key == instance.key):
            self._by_socket[socket] = instance
        elif isinstance(held, Instance):
            self._by_socket[socket] = {held.key: held, instance.key: instance}
        else:
            held[instance.key] = instance

    def remove(self, instance: Instance) -> None:
        names = self._by_node_name.get((instance.node, instance.name))
        if names is not None:
            names.pop(instance.key, None)
            if not names:
                del self._by_node_name[(instance.node, instance.name)]
        socket = self._socket(instance)
        held = self._by_socket.get(socket)
        if isinstance(held, Instance):
            if held.key == instance.key:
                del self._by_socket[socket]
        elif held is not None:
            held.pop(instance.key, None)
            if len(held) == 1:
                [self._by_socket[socket]] = held.values()
            elif not held:
                del self._by_socket[socket]

    def find(self, candidate: Instance) -> ConflictError | None:
        """The first incumbent the candidate may not join, or None."""
        for rule in self.rules.for_name(candidate.name):
            other = rule.other(candidate.name)
            for incumbent in self._by_node_name.get((candidate.node, other), {}).values():
                return ConflictError(candidate, incumbent, rule, rule.reason)
        for incumbent in _holders(self._by_socket.get(self._socket(candidate))):
            if incumbent.key != candidate.key and incumbent.name != candidate.name:
                reason = (
                    f"{incumbent.name} already serves {candidate.address}:{candidate.port}/"
                    f"{candidate.transport.value}"
                )
                return ConflictError(candidate, incumbent, None, reason)
        return None

    def replace(self, old: Iterable[Instance], new: Iterable[Instance]) -> ConflictError | None:
        """Swap `old` for `new` in the index, or change nothing and say why not.

        `old` is what the change supersedes (a file's previous contents, an
        instance's previous version): it is not in the way of its successor.
        Earlier members of `new` count as incumbents for later ones, so a file that
        holds both sides of a rule is refused whole rather than half-applied.
        """
        old = list(old)
        for instance in old:
            self.remove(instance)
        added: list[Instance] = []
        for candidate in new:
            conflict = self.find(candidate)
            if conflict is not None:
                for instance in added:
                    self.remove(instance)
                for instance in old:
                    self.add(instance)
                return conflict
            self.add(candidate)
            added.append(candidate)
        return None


def _holders(held: Instance | dict[tuple[str, str], Instance] | None) -> Iterable[Instance]:
    """The instances on one socket, however the index holds them."""
    if held is None:
        return ()
    if isinstance(held, Instance):
        return (held,)
    return held.values()
