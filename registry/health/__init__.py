"""Health checking: a probe module per check kind, and the runner that schedules them.

The runner is the only part that talks to the catalog; probes only look at the
outside world and return an `Outcome`, so each kind can be tested on its own.
"""
