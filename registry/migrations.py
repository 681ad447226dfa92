"""The SQLite schema as numbered migrations, which Store.migrate runs in order at start."""

SCHEMA_VERSION = 2

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
    # Maintenance windows, and an event log bounded by events.max_age and
    # events.max_rows: the delete trigger of version 1 gives way to one that lets
    # only what that retention permits go. A node left in maintenance by a version-1
    # daemon (its last `node` event says so) comes back as an immediate window.
    2: """
    CREATE TABLE IF NOT EXISTS maintenance_windows (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        node TEXT NOT NULL,
        instance TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('immediate', 'draining', 'planned')),
        reason TEXT NOT NULL,
        drain_at REAL NOT NULL,
        starts REAL NOT NULL,
        ends REAL,
        created REAL NOT NULL,
        CHECK (drain_at <= starts),
        CHECK (ends IS NULL OR ends > starts)
    );
    CREATE TABLE IF NOT EXISTS event_retention (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        max_age REAL NOT NULL CHECK (max_age > 0),
        max_rows INTEGER NOT NULL CHECK (max_rows > 0)
    );
    INSERT OR IGNORE INTO event_retention (id, max_age, max_rows) VALUES (1, 2592000, 100000);
    DROP TRIGGER IF EXISTS events_append_only_delete;
    CREATE TRIGGER IF NOT EXISTS events_retention_delete BEFORE DELETE ON events
        WHEN OLD.ts >= (julianday('now') - 2440587.5) * 86400.0 - (SELECT max_age FROM event_retention WHERE id = 1)
         AND OLD.seq > (SELECT max(seq) FROM events) - (SELECT max_rows FROM event_retention WHERE id = 1)
        BEGIN SELECT RAISE(ABORT, 'events are append-only within their retention (events.max_age, events.max_rows)'); END;
    INSERT INTO maintenance_windows (node, instance, kind, reason, drain_at, starts, ends, created)
        SELECT e.subject, '', 'immediate', COALESCE(NULLIF(json_extract(e.detail, '$.reason'), ''), 'maintenance mode'),
               e.ts, e.ts, NULL, e.ts
        FROM events e
        WHERE e.kind = 'node' AND json_extract(e.detail, '$.to') = 'maintenance'
          AND e.seq = (SELECT max(seq) FROM events WHERE kind = 'node' AND subject = e.subject)
          AND NOT EXISTS (SELECT 1 FROM maintenance_windows w WHERE w.node = e.subject AND w.instance = '');
    """,
}
