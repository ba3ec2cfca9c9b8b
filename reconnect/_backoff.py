"""
Retry policies: how long to wait before the next connection attempt.

A retry policy is a callable that takes the number of consecutive failed
attempts (1 for the first retry) and returns the seconds to wait, or C{None}
to say that no further attempt should be made.  L{backoffPolicy} is the one
Twisted's C{ClientService} uses; the two jittered policies spread a herd of
clients that lost the same server more evenly.

The policies made here are values, not closures: they pickle, they compare
by what they compute, they stay plain callables when set as a class
attribute (a C{ReconnectingClientFactory} subclass's C{retryPolicy}), and
one policy object may serve many services: a policy that remembers its last
delay gives each service its own copy (see L{ownPolicy}).
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable
from typing import Optional, cast

from ._checks import checkCallable, checkNumber, isFinite

RetryPolicy = Callable[[int], Optional[float]]
"""
The type of a retry policy: attempt number in, seconds (or C{None}, "give
up") out.
"""

Draw = Callable[[], float]

# Twisted's backoffPolicy stops growing the exponent at this attempt number.
_TWISTED_EXPONENT_CAP = 100


def _draw(source: Optional[Draw]) -> float:
    """
    One number from C{source}, or from the random module when it is
    C{None}.  Looking C{random.random} up at each call, rather than keeping
    it, keeps the default policies picklable and keeps unpickled copies on
    the one shared generator instead of each on a copy of its state.
    """
    return _random.random() if source is None else source()


def _source(draw: Draw) -> Optional[Draw]:
    return None if draw is _random.random else draw


def _checkTypes(**arguments: object) -> None:
    """
    Check that each argument is a number, before any comparison could fail
    with a message that names none.

    @raise TypeError: naming the first that is not.
    """
    for name, value in arguments.items():
        checkNumber(name, value)


def _checkDelays(initialDelay: float, maxDelay: float) -> None:
    """
    Reject delays that would make a policy retry at once forever, or never.

    @raise ValueError: naming the offending argument.
    """
    if not (initialDelay > 0 and isFinite(initialDelay)):
        raise ValueError(
            f"initialDelay must be a finite number > 0, not {initialDelay!r}"
        )
    if not (maxDelay >= initialDelay and isFinite(maxDelay)):
        raise ValueError(
            f"maxDelay must be finite and >= initialDelay ({initialDelay!r}), "
            f"not {maxDelay!r}"
        )


def _checkFactor(factor: float) -> None:
    """
    Reject a growth factor that would shrink the delay.

    @raise ValueError: naming the argument.
    """
    if not (factor >= 1 and isFinite(factor)):
        raise ValueError(f"factor must be a finite number >= 1, not {factor!r}")


class _Policy:
    """
    What the policies here share.  Each names its constructor's arguments in
    C{_fields}; from them come equality, a readable C{repr} and pickling
    (an unpickled policy is built anew from its arguments, so it starts
    with nothing remembered).
    """

    __slots__: tuple[str, ...] = ()
    _fields: tuple[str, ...] = ()

    def _parameters(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Policy)
        return other._parameters() == self._parameters()

    def __hash__(self) -> int:
        return hash((type(self), self._parameters()))

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={value!r}"
            for name, value in zip(self._fields, self._parameters(), strict=True)
        )
        return f"{type(self).__name__}({shown})"

    def __reduce__(self) -> tuple[type[_Policy], tuple[object, ...]]:
        return type(self), self._parameters()

    def fresh(self) -> _Policy:
        """
        The policy one more service should use: this one, unless it
        remembers something between calls.
        """
        return self


def ownPolicy(policy: RetryPolicy) -> RetryPolicy:
    """
    The copy of C{policy} that one service (or factory) should keep: a
    policy from this module that remembers its previous delay is copied, so
    that services sharing it do not pace each other; any other callable is
    used as it is.
    """
    if isinstance(policy, _Policy):
        return cast(RetryPolicy, policy.fresh())
    return policy


class TwistedBackoff(_Policy):
    """
    The policy L{backoffPolicy} makes; see there.
    """

    __slots__ = _fields = ("initialDelay", "maxDelay", "factor", "jitter")

    def __init__(
        self,
        initialDelay: float,
        maxDelay: float,
        factor: float,
        jitter: Optional[Draw],
    ) -> None:
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.factor = factor
        self.jitter = jitter

    def __call__(self, attempt: int) -> float:
        try:
            exponential = self.initialDelay * (
                self.factor ** min(_TWISTED_EXPONENT_CAP, attempt)
            )
            delay = min(exponential, self.maxDelay)
        except OverflowError:
            delay = self.maxDelay
        return delay + _draw(self.jitter)


def backoffPolicy(
    initialDelay: float = 1.0,
    maxDelay: float = 60.0,
    factor: float = 1.5,
    jitter: Draw = _random.random,
) -> RetryPolicy:
    """
    Exponential backoff: Twisted's
    C{twisted.application.internet.backoffPolicy}, value for value.

    The delay for attempt C{n} is C{min(initialDelay * factor ** min(n,
    100), maxDelay) + jitter()}: as in Twisted, the exponent stops growing
    at attempt 100, C{maxDelay} caps the exponential part (or stands in for
    it when it overflows) and the jitter comes on top.

    Like Twisted's, it takes any numbers, and so it can give delays a
    service will not use (a negative C{initialDelay}, say): the service then
    gives up, as it does for any policy that returns nonsense.  The policies
    that are new here check their values instead.  Unlike Twisted's, it
    refuses at once what is not a number (a string, C{None}, a C{bool}) or
    a C{jitter} that is not callable, naming the argument: with those,
    Twisted's fails at its first call, with a message that names none.

    @param initialDelay: the base delay, in seconds.
    @param maxDelay: the cap on the exponential part, in seconds.
    @param factor: how much the delay grows with each attempt.
    @param jitter: a 0-argument callable whose result is added to each
        delay; C{random.random} by default.
    @raise TypeError: if an argument is not a number (C{jitter}: not
        callable), naming it.
    """
    _checkTypes(initialDelay=initialDelay, maxDelay=maxDelay, factor=factor)
    checkCallable("jitter", jitter)
    return TwistedBackoff(initialDelay, maxDelay, factor, _source(jitter))


def _lastGrowingAttempt(initialDelay: float, maxDelay: float, factor: float) -> int:
    """
    The attempt number from which C{initialDelay * factor ** attempt} is at
    or above C{maxDelay}: past it the delay is the cap, with no arithmetic
    that could overflow.
    """
    if factor == 1 or initialDelay == maxDelay:
        return 0
    return math.ceil(math.log(maxDelay / initialDelay) / math.log(factor))


class FullJitter(_Policy):
    """
    The policy L{fullJitterPolicy} makes; see there.
    """

    _fields = ("initialDelay", "maxDelay", "factor", "random")
    __slots__ = (*_fields, "_lastGrowing")

    def __init__(
        self,
        initialDelay: float,
        maxDelay: float,
        factor: float,
        random: Optional[Draw],
    ) -> None:
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.factor = factor
        self.random = random
        self._lastGrowing = _lastGrowingAttempt(initialDelay, maxDelay, factor)

    def __call__(self, attempt: int) -> float:
        if attempt >= self._lastGrowing:
            window = self.maxDelay
        else:
            window = min(self.maxDelay, self.initialDelay * self.factor**attempt)
        return window * _draw(self.random)


def fullJitterPolicy(
    initialDelay: float = 1.0,
    maxDelay: float = 60.0,
    factor: float = 2.0,
    random: Draw = _random.random,
) -> RetryPolicy:
    """
    Exponential backoff with full jitter: a delay drawn uniformly from C{[0,
    min(maxDelay, initialDelay * factor ** attempt)]}.

    Clients that failed together spread over the whole window instead of
    bunching at its end, so a restarted server meets a trickle rather than a
    wave.  The delay never exceeds C{maxDelay}.

    @param initialDelay: the base delay, in seconds; more than 0, so that
        the window grows and a client does not retry at once for ever.
    @param random: a 0-argument callable returning a float in C{[0, 1)}.
    @raise TypeError: if an argument is not a number (C{random}: not
        callable), naming it.
    @raise ValueError: if C{initialDelay} is not more than 0, C{maxDelay} is
        less than it or infinite, or C{factor} is less than 1; the message
        names the argument.
    """
    _checkTypes(initialDelay=initialDelay, maxDelay=maxDelay, factor=factor)
    checkCallable("random", random)
    _checkDelays(initialDelay, maxDelay)
    _checkFactor(factor)
    return FullJitter(initialDelay, maxDelay, factor, _source(random))


class DecorrelatedJitter(_Policy):
    """
    The policy L{decorrelatedJitterPolicy} makes; see there.  It remembers
    its previous delay, so each service that is handed it uses a copy of
    its own (L{fresh}).
    """

    _fields = ("initialDelay", "maxDelay", "random")
    __slots__ = (*_fields, "_previous")

    def __init__(
        self, initialDelay: float, maxDelay: float, random: Optional[Draw]
    ) -> None:
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.random = random
        self._previous = initialDelay

    def fresh(self) -> DecorrelatedJitter:
        return DecorrelatedJitter(self.initialDelay, self.maxDelay, self.random)

    def __call__(self, attempt: int) -> float:
        if attempt <= 1:
            self._previous = self.initialDelay
        upper = max(self._previous * 3, self.initialDelay)
        spread = (upper - self.initialDelay) * _draw(self.random)
        delay = min(self.maxDelay, self.initialDelay + spread)
        self._previous = delay
        return delay


def decorrelatedJitterPolicy(
    initialDelay: float = 1.0,
    maxDelay: float = 60.0,
    random: Draw = _random.random,
) -> RetryPolicy:
    """
    Decorrelated jitter: each delay is drawn uniformly from C{[initialDelay,
    3 * previous delay]} and capped at C{maxDelay}.

    The policy remembers its previous delay; attempt number 1 (the first
    retry after a success) starts it afresh from C{initialDelay}.  Every delay
    lies in C{[initialDelay, maxDelay]}.  Services handed the same policy
    object each use a copy, so one's delays do not depend on another's.

    @param initialDelay: the least delay, in seconds; more than 0.
    @param random: a 0-argument callable returning a float in C{[0, 1)}.
    @raise TypeError: if an argument is not a number (C{random}: not
        callable), naming it.
    @raise ValueError: if C{initialDelay} is not more than 0, or
        C{maxDelay} is less than it or infinite.
    """
    _checkTypes(initialDelay=initialDelay, maxDelay=maxDelay)
    checkCallable("random", random)
    _checkDelays(initialDelay, maxDelay)
    return DecorrelatedJitter(initialDelay, maxDelay, _source(random))


class LimitedRetries(_Policy):
    """
    The policy L{limitRetries} makes; see there.
    """

    __slots__ = _fields = ("policy", "maxRetries")

    def __init__(self, policy: RetryPolicy, maxRetries: int) -> None:
        self.policy = policy
        self.maxRetries = maxRetries

    def fresh(self) -> LimitedRetries:
        return LimitedRetries(ownPolicy(self.policy), self.maxRetries)

    def __call__(self, attempt: int) -> Optional[float]:
        if attempt > self.maxRetries:
            return None
        return self.policy(attempt)


def limitRetries(policy: RetryPolicy, maxRetries: int) -> RetryPolicy:
    """
    Wrap C{policy} so that it gives up (returns C{None}) after C{maxRetries}
    consecutive failures.

    With C{maxRetries=0} the first failure is final.

    @raise TypeError: if C{maxRetries} is not an integer, or C{policy} is
        not callable.
    @raise ValueError: if C{maxRetries} is negative.
    """
    if not callable(policy):
        raise TypeError(f"policy must be callable, not {policy!r}")
    if isinstance(maxRetries, bool) or not isinstance(maxRetries, int):
        raise TypeError(f"maxRetries must be an int, not {maxRetries!r}")
    if maxRetries < 0:
        raise ValueError(f"maxRetries must be >= 0, not {maxRetries!r}")
    return LimitedRetries(policy, maxRetries)


def checkedDelay(delay: object) -> Optional[float]:
    """
    What a service makes of a policy's answer: C{None} (give up) or a
    finite number of seconds C{>= 0}.

    @raise TypeError: if C{delay} is neither C{None} nor a number.
    @raise ValueError: if it is a number that is negative or not finite.
    """
    if delay is None:
        return None
    if isinstance(delay, bool) or not isinstance(delay, (int, float)):
        raise TypeError(
            f"retry policy returned {delay!r}: not a number of seconds or None"
        )
    if not (isFinite(delay) and delay >= 0):
        raise ValueError(
            f"retry policy returned {delay!r}: not a finite number of seconds >= 0"
        )
    return float(delay)
