"""Rise and fall: how many results in a row it takes to change a check's status.

Pure bookkeeping, no clock and no I/O, so the counting is tested as a table.
`rise` consecutive passing results turn a failing check passing; `fall`
consecutive failing results (warning or critical) turn a passing check failing.
A check that is already failing follows its results at once between warning
and critical: the fall was already counted. The first result of a check that
was never checked is taken as it is: a new instance is not held critical for
`rise` intervals when its first check passes.
"""

from __future__ import annotations

from registry.model import Status


class RiseFall:
    def __init__(self, rise: int, fall: int, current: Status | None = None) -> None:
        self.rise = rise
        self.fall = fall
        self.current = current
        self._streak = 0

    def feed(self, result: Status) -> Status:
        """Count one result; returns the status to report now."""
        if self.current is None or result is self.current:
            self.current = result
            self._streak = 0
            return result
        if result is not Status.PASSING and self.current is not Status.PASSING:
            self.current = result
            self._streak = 0
            return result
        # Only the other direction is counted here; any result in the current
        # direction reset the streak above.
        self._streak += 1
        if self._streak >= self._needed(result):
            self.current = result
            self._streak = 0
        return self.current

    def _needed(self, result: Status) -> int:
        return self.rise if result is Status.PASSING else self.fall

    def progress(self, result: Status) -> str:
        """A note for the output while a change is pending, e.g. "1/3 failures before critical"."""
        if self._streak == 0 or self.current is None:
            return ""
        if result is Status.PASSING:
            return f"{self._streak}/{self.rise} passes before passing"
        return f"{self._streak}/{self.fall} failures before critical"
