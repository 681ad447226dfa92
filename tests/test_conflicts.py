"""Conflict rules: symmetric, order-independent, incumbent wins."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from registry.conflicts import WELL_KNOWN_RULES, ConflictIndex, RuleBook
from registry.model import ConflictRule, ConflictType, Instance, Transport

NAMES = ["redis-server", "redis-stack-server", "nginx", "apache2", "api", "worker"]


def make(name: str, port: int, node: str = "host1", address: str = "10.0.0.1", transport: str = "tcp", id_: str | None = None) -> Instance:
    return Instance(id=id_ or f"{name}-{port}", name=name, node=node, address=address, port=port, transport=Transport(transport))


def accepted(order: list[Instance], rules: list[ConflictRule]) -> bool:
    """Register in order; True when every instance got in."""
    index = ConflictIndex(RuleBook(rules))
    return all(index.replace([], [instance]) is None for instance in order)


def test_rule_names_the_incumbent_and_reason() -> None:
    index = ConflictIndex(RuleBook(WELL_KNOWN_RULES))
    redis = make("redis-server", 6379)
    assert index.replace([], [redis]) is None
    conflict = index.replace([], [make("redis-stack-server", 6380)])
    assert conflict is not None
    assert conflict.incumbent is redis and conflict.rule is not None
    assert conflict.reason == "both bind 6379"
    incumbent = conflict.to_dict()["incumbent"]
    assert isinstance(incumbent, dict) and incumbent["id"] == "redis-server-6379"


def test_same_socket_different_service_conflicts_without_rule() -> None:
    index = ConflictIndex(RuleBook())
    assert index.replace([], [make("api", 8080)]) is None
    conflict = index.replace([], [make("worker", 8080)])
    assert conflict is not None and conflict.rule is None
    assert "10.0.0.1:8080/tcp" in conflict.reason
    # Another transport, another address or another node is a different socket.
    assert index.replace([], [make("worker", 8080, transport="udp")]) is None
    assert index.replace([], [make("worker2", 8080, address="10.0.0.2")]) is None
    assert index.replace([], [make("worker3", 8080, node="host2")]) is None


def test_rules_only_bind_within_a_node() -> None:
    index = ConflictIndex(RuleBook(WELL_KNOWN_RULES))
    assert index.replace([], [make("nginx", 80, node="a")]) is None
    assert index.replace([], [make("apache2", 80, node="b")]) is None


def test_refused_replace_changes_nothing() -> None:
    index = ConflictIndex(RuleBook(WELL_KNOWN_RULES))
    old = [make("api", 8080)]
    assert index.replace([], old) is None
    assert index.replace([], [make("nginx", 80)]) is None
    # A new version of the file holding both sides of a rule is refused whole...
    assert index.replace(old, [make("api", 8081), make("apache2", 81)]) is not None
    # ...and the old version still blocks its socket.
    assert index.replace([], [make("worker", 8080)]) is not None
    assert index.replace([], [make("worker", 8081)]) is None


instances = st.builds(
    make,
    name=st.sampled_from(NAMES),
    port=st.sampled_from([80, 6379, 8080]),
    node=st.sampled_from(["a", "b"]),
    address=st.sampled_from(["10.0.0.1", "10.0.0.2"]),
    transport=st.sampled_from(["tcp", "udp"]),
)
rules = st.lists(
    st.builds(
        ConflictRule,
        a=st.sampled_from(NAMES),
        b=st.sampled_from(NAMES),
        type=st.sampled_from(list(ConflictType)),
        reason=st.just("r"),
    ).filter(lambda r: r.a != r.b),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(first=instances, second=instances, rule_list=rules, flip=st.booleans())
def test_conflict_is_symmetric_in_order_and_pair_order(
    first: Instance, second: Instance, rule_list: list[ConflictRule], flip: bool
) -> None:
    if first.key == second.key:
        return
    flipped = [ConflictRule(r.b, r.a, r.type, r.reason) if flip else r for r in rule_list]
    assert accepted([first, second], rule_list) == accepted([second, first], flipped)


@settings(max_examples=200, deadline=None)
@given(group=st.lists(instances, min_size=1, max_size=6, unique_by=lambda i: i.key), rule_list=rules, data=st.data())
def test_a_consistent_set_is_accepted_in_any_order(group: list[Instance], rule_list: list[ConflictRule], data: st.DataObject) -> None:
    """If a set of instances can all coexist, every registration order accepts all of them."""
    if not accepted(group, rule_list):
        return
    shuffled = data.draw(st.permutations(group))
    assert accepted(list(shuffled), rule_list)


def test_rules_added_later_judge_what_arrives_next_against_what_is_registered() -> None:
    """The index keeps (node, name) only for names a rule names: new rules must find older instances."""
    index = ConflictIndex(RuleBook())
    nginx = make("nginx", 80)
    assert index.replace([], [nginx]) is None
    index.rules = RuleBook(WELL_KNOWN_RULES)
    conflict = index.replace([], [make("apache2", 81)])
    assert conflict is not None and conflict.incumbent is nginx
    index.rules = RuleBook()
    assert index.replace([], [make("apache2", 81)]) is None


def test_a_socket_shared_by_one_service_is_free_once_the_last_of_it_goes() -> None:
    index = ConflictIndex(RuleBook())
    replicas = [make("api", 8080, id_=f"api-{n}") for n in range(3)]
    assert index.replace([], replicas) is None
    for replica in replicas:
        assert index.replace([], [make("worker", 8080)]) is not None
        assert index.replace([replica], []) is None
    assert index.replace([], [make("worker", 8080)]) is None
