"""
L{ResendBudget}: how many requests may be written again after cuts.
"""

from __future__ import annotations

import math

from .._checks import checkSeconds


class ResendBudget:
    """
    A token bucket for resends, after Finagle's retry budget: every answered
    request earns C{ratio} of a resend, and C{perSecond} resends are earned
    each second whatever the traffic; what is earned expires after about
    C{window} seconds (the bucket holds at most C{window} seconds of
    C{perSecond} plus C{ratio} of the answers of about the last C{window}
    seconds).  It starts full of its C{perSecond} reserve.

    With the defaults (20% of requests + 10 per second over 10 seconds), a
    server that fails every request gets at most 100 resends at once and 10
    a second after that, not the whole backlog at every cut.

    One budget belongs to one service; give the same one to several
    services to budget them together.
    """

    def __init__(
        self, ratio: float = 0.2, perSecond: float = 10.0, window: float = 10.0
    ) -> None:
        """
        @param ratio: resends earned per answered request.
        @param perSecond: resends earned per second.
        @param window: seconds over which earnings are kept.
        @raise TypeError: if an argument is not a number.
        @raise ValueError: if one is negative (or C{window} is zero), or
            not finite.
        """
        checkSeconds("ratio", ratio, zeroAllowed=True)
        checkSeconds("perSecond", perSecond, zeroAllowed=True)
        checkSeconds("window", window, zeroAllowed=False)
        self.ratio = ratio
        self.perSecond = perSecond
        self.window = window
        self.tokens = perSecond * window
        self._lastTime: float | None = None
        self._recent = 0.0
        self.granted = 0
        self.refused = 0

    def grant(self, wanted: int, answered: int, now: float) -> int:
        """
        How many of C{wanted} resends may go now.

        @param answered: requests answered since the caller last asked
            (each service tells its own, so a shared budget sums them).
        @param now: the time now.
        """
        last = now if self._lastTime is None else self._lastTime
        elapsed = max(0.0, now - last)
        self._lastTime = now
        # Of answers spread over longer than the window, only the last
        # window's share still counts; older earnings fade out.
        if elapsed > self.window:
            answered = int(answered * self.window / elapsed)
        self._recent = self._recent * math.exp(-elapsed / self.window) + answered
        earned = self.perSecond * elapsed + self.ratio * answered
        cap = self.perSecond * self.window + self.ratio * self._recent
        self.tokens = min(self.tokens + earned, cap)
        allowed = min(wanted, int(self.tokens))
        self.tokens -= allowed
        self.granted += allowed
        self.refused += wanted - allowed
        return allowed

    def __repr__(self) -> str:
        return (
            f"ResendBudget(ratio={self.ratio!r}, perSecond={self.perSecond!r}, "
            f"window={self.window!r})"
        )
