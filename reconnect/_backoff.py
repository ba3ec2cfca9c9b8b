"""
Retry policies: how long to wait before the next connection attempt.

A retry policy is a callable that takes the number of consecutive failed
attempts (1 for the first retry) and returns the seconds to wait, or C{None}
to say that no further attempt should be made.  L{backoffPolicy} is the one
Twisted's C{ClientService} uses; the two jittered policies spread a herd of
clients that lost the same server more evenly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Optional

RetryPolicy = Callable[[int], Optional[float]]
"""
The type of a retry policy: attempt number in, seconds (or C{None}, "give
up") out.
"""


def _checkDelays(initialDelay: float, maxDelay: float) -> None:
    """
    Reject delays that no schedule could honour.

    @raise ValueError: naming the offending argument.
    """
    if not initialDelay >= 0:
        raise ValueError(f"initialDelay must be >= 0, not {initialDelay!r}")
    if not maxDelay >= 0:
        raise ValueError(f"maxDelay must be >= 0, not {maxDelay!r}")
    if maxDelay < initialDelay:
        raise ValueError(
            f"maxDelay ({maxDelay!r}) must not be less than "
            f"initialDelay ({initialDelay!r})"
        )
    if math.isinf(maxDelay):
        raise ValueError("maxDelay must be finite")


def _checkFactor(factor: float) -> None:
    """
    Reject a growth factor that would shrink the delay.

    @raise ValueError: naming the argument.
    """
    if not factor >= 1:
        raise ValueError(f"factor must be >= 1, not {factor!r}")
    if math.isinf(factor):
        raise ValueError("factor must be finite")


def _exponentialCap(
    initialDelay: float, maxDelay: float, factor: float
) -> Callable[[int], float]:
    """
    Make the capped exponential C{min(maxDelay, initialDelay * factor **
    attempt)}, computed so that no attempt number overflows.

    The attempt at which the curve meets the cap is worked out once; past it
    the answer is the cap without any arithmetic.
    """
    if initialDelay == 0 or factor == 1:

        def flat(attempt: int) -> float:
            return min(initialDelay, maxDelay)

        return flat
    lastGrowingAttempt = math.ceil(
        (math.log(maxDelay) - math.log(initialDelay)) / math.log(factor)
    )

    def capped(attempt: int) -> float:
        if attempt >= lastGrowingAttempt:
            return maxDelay
        return min(maxDelay, initialDelay * factor ** max(attempt, 0))

    return capped


def backoffPolicy(
    initialDelay: float = 1.0,
    maxDelay: float = 60.0,
    factor: float = 1.5,
    jitter: Callable[[], float] = random.random,
) -> Callable[[int], float]:
    """
    Exponential backoff, compatible with Twisted's
    C{twisted.application.internet.backoffPolicy}.

    The delay for attempt C{n} is C{min(maxDelay, initialDelay * factor **
    n) + jitter()}: as in Twisted, C{maxDelay} caps the exponential part and
    the jitter comes on top.  Any attempt number, however large, gives a
    finite delay.

    @param initialDelay: the base delay, in seconds.
    @param maxDelay: the cap on the exponential part, in seconds.
    @param factor: how much the delay grows with each attempt.
    @param jitter: a 0-argument callable whose result is added to each
        delay; C{random.random} by default.

    @raise ValueError: if a delay is negative, C{maxDelay < initialDelay} or
        C{factor < 1}.
    """
    _checkDelays(initialDelay, maxDelay)
    _checkFactor(factor)
    cap = _exponentialCap(initialDelay, maxDelay, factor)

    def policy(attempt: int) -> float:
        return cap(attempt) + jitter()

    return policy


def fullJitterPolicy(
    initialDelay: float = 1.0,
    maxDelay: float = 60.0,
    factor: float = 2.0,
    random: Callable[[], float] = random.random,
) -> Callable[[int], float]:
    """
    Exponential backoff with full jitter: a delay drawn uniformly from C{[0,
    min(maxDelay, initialDelay * factor ** attempt)]}.

    Clients that failed together spread over the whole window instead of
    bunching at its end, so a restarted server meets a trickle rather than a
    wave.  The delay never exceeds C{maxDelay}.

    @param random: a 0-argument callable returning a float in C{[0, 1)}.
    """
    _checkDelays(initialDelay, maxDelay)
    _checkFactor(factor)
    cap = _exponentialCap(initialDelay, maxDelay, factor)

    def policy(attempt: int) -> float:
        return cap(attempt) * random()

    return policy


def decorrelatedJitterPolicy(
    initialDelay: float = 1.0,
    maxDelay: float = 60.0,
    random: Callable[[], float] = random.random,
) -> Callable[[int], float]:
    """
    Decorrelated jitter: each delay is drawn uniformly from C{[initialDelay,
    3 * previous delay]} and capped at C{maxDelay}.

    The policy remembers its previous delay; attempt number 1 (the first
    retry after a success) starts it afresh from C{initialDelay}.  Every delay
    lies in C{[initialDelay, maxDelay]}.

    @param random: a 0-argument callable returning a float in C{[0, 1)}.
    """
    _checkDelays(initialDelay, maxDelay)
    previous = initialDelay

    def policy(attempt: int) -> float:
        nonlocal previous
        if attempt <= 1:
            previous = initialDelay
        upper = max(previous * 3, initialDelay)
        delay = min(maxDelay, initialDelay + (upper - initialDelay) * random())
        previous = delay
        return delay

    return policy


def limitRetries(policy: RetryPolicy, maxRetries: int) -> RetryPolicy:
    """
    Wrap C{policy} so that it gives up (returns C{None}) after C{maxRetries}
    consecutive failures.

    With C{maxRetries=0} the first failure is final.

    @raise ValueError: if C{maxRetries} is negative.
    """
    if maxRetries < 0:
        raise ValueError(f"maxRetries must be >= 0, not {maxRetries!r}")

    def limited(attempt: int) -> Optional[float]:
        if attempt > maxRetries:
            return None
        return policy(attempt)

    return limited
