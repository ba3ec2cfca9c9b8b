"""
Tests for the retry policies in L{reconnect._backoff}.
"""

import math
import pickle
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.application.internet import backoffPolicy as twistedBackoffPolicy

from reconnect import (
    backoffPolicy,
    decorrelatedJitterPolicy,
    fullJitterPolicy,
    limitRetries,
)
from reconnect._backoff import checkedDelay, ownPolicy

attempts = st.integers(min_value=0, max_value=10**6)
delays = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False)
anyFloat = st.floats(allow_nan=False)
factors = st.floats(min_value=1.0, max_value=100.0, allow_nan=False)
unit = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


def noJitter() -> float:
    return 0.0


@st.composite
def bounds(draw: st.DrawFn) -> tuple[float, float]:
    initial = draw(delays)
    maximum = draw(st.floats(min_value=initial, max_value=2e6, allow_nan=False))
    return initial, maximum


def test_defaultsMatchTwisted() -> None:
    """
    With the same jitter, the default policy gives Twisted's delays.
    """
    ours = backoffPolicy(jitter=noJitter)
    theirs = twistedBackoffPolicy(jitter=noJitter)
    for attempt in range(0, 500):
        assert ours(attempt) == theirs(attempt)


@given(anyFloat, anyFloat, anyFloat, st.integers(min_value=0, max_value=10**9), unit)
def test_valueForValueWithTwisted(
    initial: float, maximum: float, factor: float, attempt: int, jitter: float
) -> None:
    """
    For any arguments Twisted's C{backoffPolicy} takes (an infinite
    C{maxDelay}, C{initialDelay} above C{maxDelay}, a shrinking factor,
    negative numbers) ours takes them too, and gives the same delay, or
    raises what Twisted's raises.
    """
    ours = backoffPolicy(initial, maximum, factor, jitter=lambda: jitter)
    theirs = twistedBackoffPolicy(initial, maximum, factor, jitter=lambda: jitter)
    try:
        expected: object = theirs(attempt)
    except Exception as e:
        with pytest.raises(type(e)):
            ours(attempt)
        return
    got = ours(attempt)
    assert got == expected or (math.isnan(got) and math.isnan(expected))  # type: ignore[arg-type]


def test_twistedExponentStopsAtAttempt100() -> None:
    """
    As in Twisted, the exponent stops growing at attempt 100: a slow factor
    does not reach a far cap.
    """
    policy = backoffPolicy(1.0, 60.0, 1.01, jitter=noJitter)
    assert policy(412) == policy(100) == pytest.approx(2.7048, abs=1e-4)


def test_firstDelays() -> None:
    """
    The delay grows by C{factor} from C{initialDelay} and stops at
    C{maxDelay}.
    """
    policy = backoffPolicy(initialDelay=2.0, maxDelay=10.0, factor=2.0, jitter=noJitter)
    assert [policy(n) for n in range(5)] == [2.0, 4.0, 8.0, 10.0, 10.0]


def test_jitterAddedAfterCap() -> None:
    """
    C{maxDelay} caps the exponential part; the jitter comes on top, as in
    Twisted.
    """
    policy = backoffPolicy(initialDelay=1.0, maxDelay=5.0, jitter=lambda: 0.75)
    assert policy(1000) == 5.75


@given(bounds(), factors, attempts, unit)
def test_backoffBounded(
    limits: tuple[float, float], factor: float, attempt: int, jitter: float
) -> None:
    """
    Every delay is finite and between C{min(initialDelay, maxDelay)} and
    C{maxDelay} plus the jitter, for any attempt number.
    """
    initial, maximum = limits
    policy = backoffPolicy(initial, maximum, factor, jitter=lambda: jitter)
    delay = policy(attempt)
    assert math.isfinite(delay)
    assert initial + jitter <= delay + 1e-9
    assert delay <= maximum + jitter + 1e-9


@given(bounds(), factors, st.integers(min_value=0, max_value=2000))
def test_backoffNonDecreasing(
    limits: tuple[float, float], factor: float, attempt: int
) -> None:
    """
    Without jitter, a later attempt never waits less than an earlier one.
    """
    policy = backoffPolicy(*limits, factor=factor, jitter=noJitter)
    assert policy(attempt) <= policy(attempt + 1)


def test_hugeAttemptNumbers() -> None:
    """
    Attempt numbers far beyond what float exponentiation can take give the
    cap, not an C{OverflowError} or infinity.
    """
    for policy in [
        backoffPolicy(jitter=noJitter),
        fullJitterPolicy(random=lambda: 0.999),
    ]:
        for attempt in [10**3, 10**6, 10**100]:
            assert math.isfinite(policy(attempt))
            assert policy(attempt) <= 60.0


@given(bounds(), factors, attempts, unit)
def test_fullJitterBounded(
    limits: tuple[float, float], factor: float, attempt: int, draw: float
) -> None:
    """
    Full jitter stays within C{[0, min(maxDelay, initialDelay * factor **
    attempt)]}.
    """
    initial, maximum = limits
    policy = fullJitterPolicy(initial, maximum, factor, random=lambda: draw)
    delay = policy(attempt)
    assert 0 <= delay <= maximum
    top = fullJitterPolicy(initial, maximum, factor, random=lambda: 1.0)(attempt)
    assert delay <= top


def test_fullJitterUsesRandom() -> None:
    """
    Full jitter scales the capped exponential by the random draw.
    """
    policy = fullJitterPolicy(initialDelay=1.0, maxDelay=100.0, random=lambda: 0.5)
    assert [policy(n) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]


@given(bounds(), st.lists(unit, min_size=1, max_size=50))
def test_decorrelatedBounded(limits: tuple[float, float], draws: list[float]) -> None:
    """
    Every decorrelated delay lies within C{[initialDelay, maxDelay]}, and
    never exceeds three times the one before.
    """
    initial, maximum = limits
    source = iter(draws)
    policy = decorrelatedJitterPolicy(initial, maximum, random=lambda: next(source))
    previous = initial
    for attempt in range(1, len(draws) + 1):
        delay = policy(attempt)
        assert initial - 1e-9 <= delay <= maximum + 1e-9
        assert delay <= max(3 * previous, initial) + 1e-9
        previous = delay


def test_decorrelatedRestartsAtFirstAttempt() -> None:
    """
    Attempt 1 (the first retry after a success) starts from
    C{initialDelay} again, whatever came before.
    """
    policy = decorrelatedJitterPolicy(1.0, 1000.0, random=lambda: 1.0)
    assert [policy(n) for n in (1, 2, 3)] == [3.0, 9.0, 27.0]
    assert policy(1) == 3.0


@pytest.mark.parametrize(
    "make, kwargs, name",
    [
        (fullJitterPolicy, {"initialDelay": 0}, "initialDelay"),
        (fullJitterPolicy, {"initialDelay": -1.0}, "initialDelay"),
        (fullJitterPolicy, {"initialDelay": math.nan}, "initialDelay"),
        (fullJitterPolicy, {"initialDelay": 5.0, "maxDelay": 1.0}, "maxDelay"),
        (fullJitterPolicy, {"factor": 0.9}, "factor"),
        (fullJitterPolicy, {"maxDelay": math.inf}, "maxDelay"),
        (decorrelatedJitterPolicy, {"initialDelay": 0.0}, "initialDelay"),
        (decorrelatedJitterPolicy, {"initialDelay": -0.1}, "initialDelay"),
        (decorrelatedJitterPolicy, {"maxDelay": math.inf}, "maxDelay"),
    ],
)
def test_badArguments(make: object, kwargs: dict[str, float], name: str) -> None:
    """
    A bad argument raises L{ValueError} naming that argument.
    """
    with pytest.raises(ValueError, match=name):
        make(**kwargs)  # type: ignore[operator]


def test_limitRetries() -> None:
    """
    L{limitRetries} passes attempts up to the limit through and returns
    L{None} ("give up") after it.
    """
    policy = limitRetries(backoffPolicy(jitter=noJitter), 2)
    assert policy(1) == 1.5
    assert policy(2) == 2.25
    assert policy(3) is None
    assert limitRetries(policy, 0)(1) is None
    with pytest.raises(ValueError, match="maxRetries"):
        limitRetries(policy, -1)


def test_limitRetriesArgumentTypes() -> None:
    """
    A count that is not an C{int}, or a policy that is not callable, is a
    C{TypeError} at the call.
    """
    with pytest.raises(TypeError, match="maxRetries"):
        limitRetries(backoffPolicy(), "3")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="maxRetries"):
        limitRetries(backoffPolicy(), 2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="policy"):
        limitRetries(5, 3)  # type: ignore[arg-type]


EVERY_POLICY = [
    backoffPolicy(),
    backoffPolicy(2.0, 30.0, 2.0, jitter=noJitter),
    fullJitterPolicy(),
    decorrelatedJitterPolicy(0.5, 10.0),
    limitRetries(decorrelatedJitterPolicy(), 3),
]


def stableId(policy: object) -> str:
    """
    The policy's C{repr} without the addresses of the functions it holds:
    every pytest-xdist worker must collect the same test ids.
    """
    return re.sub(r" at 0x[0-9a-f]+", "", repr(policy))


@pytest.mark.parametrize("policy", EVERY_POLICY, ids=stableId)
def test_policiesPickle(policy: object) -> None:
    """
    Every policy pickles (the default random source included) and comes
    back equal to itself.
    """
    copy = pickle.loads(pickle.dumps(policy))
    assert copy == policy
    assert repr(copy) == repr(policy)


class Holder:
    """
    A class that keeps policies as class attributes, as a
    C{ReconnectingClientFactory} subclass does.
    """

    full = fullJitterPolicy(random=lambda: 0.5)
    twisted = backoffPolicy(jitter=noJitter)


def test_policiesAreNotMethods() -> None:
    """
    A policy set as a class attribute is not bound to the instance: called
    through an instance it still takes the attempt number alone.
    """
    holder = Holder()
    assert holder.full(1) == 1.0
    assert holder.twisted(1) == 1.5


def test_sharedDecorrelatedPolicyIsCopiedPerUser() -> None:
    """
    One decorrelated policy handed to several users: each gets its own copy
    through L{ownPolicy}, so one user's delays do not move another's.
    """
    shared = limitRetries(decorrelatedJitterPolicy(1.0, 1000.0, random=lambda: 1.0), 9)
    first, second = ownPolicy(shared), ownPolicy(shared)
    assert [first(n) for n in (1, 2, 3)] == [3.0, 9.0, 27.0]
    assert second(2) == 3.0
    stateless = fullJitterPolicy()
    assert ownPolicy(stateless) is stateless

    def custom(attempt: int) -> float:
        return 1.0

    assert ownPolicy(custom) is custom


@pytest.mark.parametrize("delay", [0, 0.0, 2, 3.5, None])
def test_checkedDelayAccepts(delay: object) -> None:
    """
    C{None} and finite numbers C{>= 0} are what a policy may answer.
    """
    assert checkedDelay(delay) == delay


@pytest.mark.parametrize(
    "delay, error",
    [
        (-1, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        ("1", TypeError),
        (True, TypeError),
        (object(), TypeError),
    ],
)
def test_checkedDelayRejects(delay: object, error: type[Exception]) -> None:
    """
    Anything else is an error that names what the policy returned.
    """
    with pytest.raises(error, match="retry policy returned"):
        checkedDelay(delay)
