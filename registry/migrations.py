"""The SQLite schema as numbered migrations, which Store.migrate runs in order at start."""

SCHEMA_VERSION = 1

# Each migration takes the schema from version N-1 to N. They use IF NOT EXISTS /
# OR IGNORE throughout so that running them again (a crash mid-migration, two
# daemons racing at start) is harmless.
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE IF NOT EXISTS registrations (
        node TEXT NOT NULL,
        id TEXT NOT NULL,
        body TEXT NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        PRIMARY KEY (node, id)
    );
    CREATE TABLE IF NOT EXISTS conflict_rules (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        a TEXT NOT NULL,
        b TEXT NOT NULL,
        type TEXT NOT NULL CHECK (type IN ('port', 'dependency', 'resource')),
        reason TEXT NOT NULL,
        source TEXT NOT NULL,
        CHECK (a < b),
        UNIQUE (a, b)
    );
    CREATE TABLE IF NOT EXISTS config (
        node TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        value_type TEXT NOT NULL CHECK (value_type IN ('string', 'int', 'bool', 'json')),
        updated REAL NOT NULL,
        PRIMARY KEY (node, key)
    );
    CREATE TABLE IF NOT EXISTS health (
        node TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        check_id TEXT NOT NULL,
        status TEXT NOT NULL,
        output TEXT NOT NULL,
        updated REAL NOT NULL,
        PRIMARY KEY (node, instance_id, check_id)
    );
    CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS events_kind ON events (kind, seq);
    CREATE TRIGGER IF NOT EXISTS events_append_only_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
    CREATE TRIGGER IF NOT EXISTS events_append_only_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
    """,
}
