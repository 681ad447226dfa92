"""Fleet mode: every daemon publishes its own node to etcd and reads everyone else's.

This package holds the parts that do not touch the catalog: `etcd` (the client that
talks to etcd, through aetcd, with its `watch` and `keepalive`; what it says is in
`kv` and `errors`) and `keys` and `records` (keys and JSON values as pure functions,
decoding hostile values defensively). The sync task that joins them to
the catalog is the integration step; this note is its plan. Nothing here is imported
unless `cluster.etcd` is set, so a single-host daemon needs no etcd client (the
`cluster` extra installs it).

One owner, the cluster task, started by the daemon after the catalog and stopped
before it, holds one `EtcdClient(endpoints, max_value_bytes=records.MAX_RECORD_BYTES)`
and runs three phases in a loop: join, serve, recover.

Join. `grant_lease(lease_ttl)`, `keep_alive(lease)`, then publish everything (below),
then `range_prefix(prefix)`: decode each item with `records.decode_record`, skip our
own node's keys (SQLite and our files are the truth for those), and hand the catalog
the whole remote view as one batch, replacing what it held. A `BadRecord` or a
`Skipped` item is that key's problem: logged (once per key and reason, so a bad
writer cannot flood the log), counted in /metrics, and the key is treated as absent.

Serve. Two loops run side by side:
- Publish: a catalog listener collects the keys of this node's changed entries
  (instances, node state, API conflict rules, API config) into a pending set; a
  publisher wakes on it, encodes the current values (`encode_instance`, ...) and calls
  `apply(writes, deletes)` once for all of them. Instances and the node record are
  written with the lease, rules and config without. `apply` skips values etcd already
  holds from us and cuts big batches into transactions etcd accepts. Only changes in
  the catalog wake it; a health result that does not change the encoded bytes costs
  nothing on the wire.
- Read: `async with watch_prefix(prefix, revision + 1)`; each `WatchBatch` (one watch
  response, fragments joined) is decoded and applied to the catalog as one batch, so
  one remote transaction is one snapshot. `Put` upserts, `Delete` and `Skipped`
  remove. Conflict rules and config from etcd go to the rule book and the config
  view; remote instances never run checks or TTL expiry here (their status is what
  the owner published) and never take part in this node's conflict judgement.

Recover. `Unavailable` from any call, or `keep_alive.lost()` resolving, marks the
fleet view stale (`cluster.state: stale`, `since`, last `revision` in /v1/status and
/metrics) while DNS and HTTP keep serving the last view and local registrations keep
working (the publisher just accumulates its pending set). Retry with capped
exponential backoff and full jitter (0.5 s doubling to 30 s, `random.uniform(0, cap)`)
so a fleet does not stampede a restarted etcd. On success: `forget()` the written
view, a new lease and keep-alive (the old one is dead or dying), republish everything,
re-read the prefix, and watch from its revision. A watch that breaks alone
(`Unavailable`) resumes from `watch.next_revision` without a re-read; `Compacted` or
`WatchOverflow` (both `ResyncNeeded`) mean a full re-read, which also drops remote
instances deleted while we were away.

Stop. Cancel the loops, `revoke(lease)` so our instances vanish from every node at
once (bounded by the client timeout: a dead etcd must not hold up SIGTERM), then
`close()`. A killed daemon's keys go when its lease runs out.
"""
