"""Fleet mode: every daemon publishes its own node to etcd and reads everyone else's.

The parts that never touch the catalog: `etcd` (the client that talks to etcd, through
aetcd, with its `watch` and `keepalive`; what it says is in `kv` and `errors`), `keys`
and `records` (keys and JSON values as pure functions, decoding hostile values
defensively). The parts that join them to the catalog: `publisher` (this node's keys
out), `follower` (everyone else's in, as `registry.remote.RemoteBatch`es) and `sync`
(`ClusterSync`, their one owner, with `settings` for its config, backoff and state,
`fleetwrites` for the rules and config the API writes fleet-wide, and `ownkeys` for
guarding this node's own keys against other writers and lost data). The etcd client (aetcd, gRPC) is imported only when
`cluster.etcd` is set, so a single-host daemon needs none of it (the `cluster` extra
installs it); `keys`, `records` and `errors` import nothing of it.

`ClusterSync` is started by the daemon after the catalog and stopped before it, holds
one `EtcdClient(endpoints, max_value_bytes=rawjson.MAX_RECORD_BYTES)` and runs one
session per lease, in three phases.

Join. `grant_lease(lease_ttl)`, `keep_alive(lease)`, `forget()` what the client wrote
under another lease, publish everything this daemon owns, then `range_prefix(prefix)`
in pages decoded while the next one is read: each item through
`records.decode_record`, our own node's keys skipped (SQLite and our files are the
truth for those), and the whole remote view handed to the catalog as one batch that
replaces what it held. Our node's keys found there that we no longer own (a previous
run's) are deleted, and the previous session's lease revoked. A `BadRecord` or a
`Skipped` item is that key's problem: logged (once per key and reason, rate-limited),
counted, and the key treated as absent.

Serve. Two loops run side by side:
- Publish: `Catalog.follow_local` hands the publisher the keys of this node's changed
  entries; it keeps them in a set, and a flush encodes their current values and calls
  `apply(writes, deletes)` once for all of them (instances and the node record with
  the lease). `apply` skips values etcd already holds from us and cuts big batches into
  transactions etcd accepts. A failed flush keeps its keys for the next one.
- Read: `watch_prefix(prefix, revision)`, from the revision already applied (its
  events come again and change nothing; a compaction at the next one, which etcd would
  let us watch from without the deletions made at it, then shows as `Compacted`).
  Responses are never split; those arriving within 50 ms of the last fleet snapshot
  join the next one. `Put` upserts, `Delete` and `Skipped` remove. Fleet rules and
  config go to the rule book and the config view; remote instances never run checks or
  TTL expiry here and never take part in this node's conflicts. Events on this
  node's own keys not made with our lease are someone else's: a deletion is written
  again at once, a write counted (`foreign_writes`) and logged, never fought.
API writes of rules and config go straight to etcd (no lease) and are applied here at
once; etcd refusing them is the client's 503.

Recover. `Unavailable` from any call marks the fleet view stale (`cluster.state`,
`since`, `revision` in /v1/status and /metrics) while DNS and HTTP keep serving it and
local registrations keep working. Each loop retries with capped exponential backoff and
full jitter (0.25 s doubling to 2 s). A watch that breaks alone resumes from its
revision; `Compacted` or `WatchOverflow` (`ResyncNeeded`) mean a whole read; an etcd
behind the revision already read (`RevisionWentBack`: a backup restored) ends the
session, as what it holds of ours may be old. A lost
lease (`keep_alive.lost()`: etcd away for a whole TTL, or the lease gone) ends the
session, and the next one joins afresh.

Stop. Cancel the loops, `revoke(lease)` so our instances vanish from every node at
once (given up after 2 s: a dead etcd must not hold up SIGTERM), then `close()`. A
killed daemon's keys go when its lease runs out.
"""
