"""Ports and protocols of services every operator knows, so registrations may omit them.

Keyed by the service name as packaged (Debian/Ubuntu package or unit name) and by the
short names people type. A registration's own `port` or `protocol` always wins.
"""

from __future__ import annotations

from typing import NamedTuple


class Default(NamedTuple):
    port: int
    protocol: str


WELL_KNOWN: dict[str, Default] = {
    "redis": Default(6379, "redis"),
    "redis-server": Default(6379, "redis"),
    "redis-stack-server": Default(6379, "redis"),
    "postgres": Default(5432, "postgres"),
    "postgresql": Default(5432, "postgres"),
    "postgresql-14": Default(5432, "postgres"),
    "postgresql-15": Default(5432, "postgres"),
    "postgresql-16": Default(5432, "postgres"),
    "mysql": Default(3306, "mysql"),
    "mysql-server": Default(3306, "mysql"),
    "mariadb": Default(3306, "mysql"),
    "mariadb-server": Default(3306, "mysql"),
    "nginx": Default(80, "http"),
    "apache2": Default(80, "http"),
    "httpd": Default(80, "http"),
    "prometheus": Default(9090, "http"),
    "grafana": Default(3000, "http"),
    "grafana-server": Default(3000, "http"),
    "ollama": Default(11434, "http"),
    "memcached": Default(11211, "memcache"),
    "mongodb": Default(27017, "mongodb"),
    "mongod": Default(27017, "mongodb"),
    "rabbitmq-server": Default(5672, "amqp"),
    "elasticsearch": Default(9200, "http"),
    "etcd": Default(2379, "http"),
    "consul": Default(8500, "http"),
    "node-exporter": Default(9100, "http"),
    "prometheus-node-exporter": Default(9100, "http"),
    "ssh": Default(22, "ssh"),
    "openssh-server": Default(22, "ssh"),
}
