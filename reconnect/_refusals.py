"""
Refusals logged once a while: a flood of connections over a limit costs one
log line a minute, not one a connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

from twisted.internet.interfaces import IDelayedCall, IReactorTime


class RefusalLog:
    """
    Counts refusals and hands the count to C{emit} at most once every
    C{interval} seconds: the first refusal at once, those that follow in one
    call when the interval is over (also if no refusal comes then), and
    whatever is left when L{flush} is called.

    @ivar interval: the least time between two calls of C{emit}.
    """

    interval = 60.0

    def __init__(self, clock: IReactorTime, emit: Callable[[int], object]) -> None:
        self._clock = clock
        self._emit = emit
        self._unlogged = 0
        self._lastLogged: Optional[float] = None
        self._pending: Optional[IDelayedCall] = None

    def refused(self) -> None:
        """
        One more refusal.
        """
        self._unlogged += 1
        now = self._clock.seconds()
        last = self._lastLogged
        if last is None or now - last >= self.interval:
            self.flush()
        elif self._pending is None:
            self._pending = self._clock.callLater(
                last + self.interval - now, self.flush
            )

    def flush(self) -> None:
        """
        Log the refusals not yet logged, if any, now.
        """
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None
        if not self._unlogged:
            return
        count, self._unlogged = self._unlogged, 0
        self._emit(count)
        self._lastLogged = self._clock.seconds()
