"""
Tests for L{reconnect.SRVEndpoint} on a L{Clock}, with a resolver the test
answers for and fake endpoints for the servers: RFC 2782 order (a property
of the pure ordering function), the lookup and its TTL, the fallback to the
domain, the C{"."} record, and the pass over the servers with their health
carried from pass to pass.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from helpers import outcome
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError, DNSLookupError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.names import dns
from twisted.names.common import ResolverBase
from twisted.names.error import DNSNameError, DNSServerError

from reconnect import (
    AllEndpointsFailed,
    ClientService,
    NoServiceRecords,
    ServiceNotOffered,
    SRVEndpoint,
)
from reconnect._srvlookup import ABANDON_QUERY_AFTER, SERVE_STALE_AFTER
from reconnect._srvorder import SRVTarget, rfc2782Order
from reconnect.testing import FakeEndpoint

NAME = b"_saystuff._tcp.example.test"


def srv(
    host: str, port: int, priority: int = 0, weight: int = 0, ttl: int = 60
) -> dns.RRHeader:
    return dns.RRHeader(
        NAME,
        dns.SRV,
        dns.IN,
        ttl,
        dns.Record_SRV(priority, weight, port, host.encode(), ttl),
    )


class ScriptedResolver(ResolverBase):
    """
    A resolver whose next answer the test sets; each lookup waits for the
    test to release it when C{hold} is set.
    """

    def __init__(self) -> None:
        super().__init__()
        self.answer: Any = []
        self.lookups: list[bytes] = []
        self.hold = False
        self.held: list[Deferred[Any]] = []

    def _lookup(self, name: bytes, cls: int, type: int, timeout: Any) -> Deferred[Any]:
        self.lookups.append(name)
        if self.hold:
            held: Deferred[Any] = Deferred()
            self.held.append(held)
            return held
        if isinstance(self.answer, Exception):
            return fail(self.answer)
        return succeed((list(self.answer), [], []))


class FakeServers(SRVEndpoint):
    """
    An L{SRVEndpoint} whose servers are fake endpoints, one per host and
    port, made as the endpoint asks for them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fakes: dict[tuple[str, int], FakeEndpoint] = {}

    def _endpointFor(self, host: str, port: int) -> IStreamClientEndpoint:
        return self.fakes.setdefault((host, port), FakeEndpoint())


def srvEndpoint(**kwargs: Any) -> tuple[FakeServers, ScriptedResolver, Clock]:
    clock = Clock()
    resolver = ScriptedResolver()
    kwargs.setdefault("stagger", 0.25)
    endpoint = FakeServers(
        clock, "saystuff", "example.test", resolver=resolver, clock=clock, **kwargs
    )
    return endpoint, resolver, clock


def trying(endpoint: FakeServers) -> list[tuple[str, int]]:
    """
    The servers with an attempt under way.
    """
    return [
        place
        for place, fake in endpoint.fakes.items()
        for attempt in fake.attempts
        if not attempt.deferred.called
    ]


def cancelled(passing: Deferred[Any]) -> None:
    passing.cancel()
    assert outcome(passing).check(CancelledError)


factory = Factory.forProtocol(Protocol)

# ---------------------------------------------------------------- the order

targets = st.lists(
    st.builds(
        SRVTarget,
        priority=st.integers(0, 3),
        weight=st.integers(0, 20),
        port=st.integers(1, 65535),
        host=st.sampled_from(["a.test", "b.test", "c.test", "d.test"]),
    ),
    max_size=8,
)


@given(targets, st.randoms(use_true_random=False))
def test_orderIsAPermutationByPriority(given: list[SRVTarget], rng: Any) -> None:
    """
    Every target comes out once, and priorities never go down.
    """
    ordered = rfc2782Order(given, rng.randint)
    assert Counter(ordered) == Counter(given)
    priorities = [t.priority for t in ordered]
    assert priorities == sorted(priorities)


@given(targets, st.data())
def test_zeroWeightsOnlyByTheDrawOfZero(given: list[SRVTarget], data: Any) -> None:
    """
    Within a priority, a target of weight 0 is chosen while one of positive
    weight is left only when the draw was 0 (the RFC's "very small
    chance"); one draw is made for each choice, after the draws of the
    shuffle of that priority's targets of weight 0 (one fewer than they).
    """
    draws: list[int] = []

    def randint(low: int, high: int) -> int:
        drawn: int = data.draw(st.integers(low, high))
        draws.append(drawn)
        return drawn

    ordered = rfc2782Order(given, randint)
    choices: list[int] = []
    for priority in sorted({t.priority for t in given}):
        group = [t for t in given if t.priority == priority]
        shuffling = max(0, sum(1 for t in group if t.weight == 0) - 1)
        del draws[:shuffling]
        choices += draws[: len(group)]
        del draws[: len(group)]
    assert draws == []
    left = Counter(given)
    for target, drawn in zip(ordered, choices, strict=True):
        left[target] -= 1
        weightedLeft = any(
            t.weight and t.priority == target.priority and n for t, n in left.items()
        )
        if target.weight == 0 and weightedLeft:
            assert drawn == 0


def test_zeroWeightsDrawnAtRandom() -> None:
    """
    Over 2,000 orders, a priority whose weights are all 0 puts each of its
    three servers first about a third of the time, and among two servers
    of weight 0 beside a weighted one, the draw of 0 picks each about as
    often: not the first by name every time, which would send a whole
    fleet of clients to one server.
    """
    allZero = [SRVTarget(0, 0, 7, h) for h in ("c.test", "a.test", "b.test")]
    rng = random.Random(2782)
    firsts = Counter(rfc2782Order(allZero, rng.randint)[0].host for _ in range(2000))
    assert set(firsts) == {"a.test", "b.test", "c.test"}
    for count in firsts.values():
        assert abs(count / 2000 - 1 / 3) < 0.05, firsts
    mixed = [
        SRVTarget(0, 0, 7, "z0.test"),
        SRVTarget(0, 0, 7, "y0.test"),
        SRVTarget(0, 10, 7, "w.test"),
    ]
    zeroFirst = Counter(
        order[0].host
        for order in (rfc2782Order(mixed, rng.randint) for _ in range(2000))
        if order[0].weight == 0
    )
    assert set(zeroFirst) == {"y0.test", "z0.test"}
    assert abs(zeroFirst["y0.test"] - zeroFirst["z0.test"]) < 0.3 * sum(
        zeroFirst.values()
    ), zeroFirst
    second = Counter(rfc2782Order(mixed, rng.randint)[1].host for _ in range(2000))
    assert abs(second["y0.test"] / 2000 - second["z0.test"] / 2000) < 0.06, second


def test_orderFollowsTheDraws() -> None:
    """
    The running sum over the weights (ascending) picks the first whose
    sum reaches the draw; the draw's range shrinks as targets are chosen.
    """
    a, b, c = (SRVTarget(10, w, 1, h) for w, h in ((10, "a"), (20, "b"), (0, "c")))
    asked: list[tuple[int, int]] = []
    draws = iter([11, 10, 0])

    def randint(low: int, high: int) -> int:
        asked.append((low, high))
        return next(draws)

    assert rfc2782Order([a, b, c], randint) == [b, a, c]
    assert asked == [(0, 30), (0, 10), (0, 0)]


def test_lowerPriorityFirstWhateverTheWeight() -> None:
    heavy = SRVTarget(20, 1000, 1, "heavy")
    light = SRVTarget(10, 0, 1, "light")
    assert rfc2782Order([heavy, light], random.Random(1).randint) == [light, heavy]


def test_drawBeyondTheTotalIsAnError() -> None:
    with pytest.raises(ValueError, match="beyond the total"):
        rfc2782Order([SRVTarget(0, 1, 1, "a")], lambda low, high: high + 1)


def test_weightsHonouredOverTwoThousandChoices() -> None:
    """
    Over 2,000 orders, each server is first in a share within 5% of its
    weight's share (the RFC's draw from 0 to the total, both included,
    gives the lightest one draw more than its weight).
    """
    weighted = [SRVTarget(0, w, 1, h) for w, h in ((10, "a"), (30, "b"), (60, "c"))]
    rng = random.Random(2782)
    firsts = Counter(rfc2782Order(weighted, rng.randint)[0].host for _ in range(2000))
    for target in weighted:
        assert abs(firsts[target.host] / 2000 - target.weight / 100) < 0.05, firsts


# --------------------------------------------------------------- the lookup


def test_looksUpTheServiceName() -> None:
    endpoint, resolver, clock = srvEndpoint()
    resolver.answer = [srv("a.test", 7)]
    endpoint.connect(factory)
    assert resolver.lookups == [NAME]
    assert endpoint.name == NAME


def test_textDomainIsIDNA() -> None:
    endpoint = SRVEndpoint(Clock(), "xmpp-client", "\u00e9chec.example.org")
    assert endpoint.name == b"_xmpp-client._tcp.xn--chec-9oa.example.org"


def test_answerKeptForItsTTL() -> None:
    """
    An answer is used again until its lowest TTL has passed; then the
    records are looked up again.
    """
    endpoint, resolver, clock = srvEndpoint()
    resolver.answer = [srv("a.test", 7, ttl=60), srv("b.test", 7, ttl=30)]
    cancelled(endpoint.connect(factory))
    clock.advance(29)
    cancelled(endpoint.connect(factory))
    assert len(resolver.lookups) == 1
    clock.advance(1)
    cancelled(endpoint.connect(factory))
    assert len(resolver.lookups) == 2
    assert not clock.getDelayedCalls()


def test_ttlZeroIsNotKept() -> None:
    endpoint, resolver, clock = srvEndpoint()
    resolver.answer = [srv("a.test", 7, ttl=0)]
    cancelled(endpoint.connect(factory))
    cancelled(endpoint.connect(factory))
    assert len(resolver.lookups) == 2


def test_newRecordsUsedAndRemovedOnesDropped() -> None:
    """
    A server the records newly list is tried on the next pass; one no
    longer listed is no longer tried, and its health is forgotten.
    """
    endpoint, resolver, clock = srvEndpoint()
    resolver.answer = [srv("a.test", 7, ttl=0), srv("b.test", 7, priority=1, ttl=0)]
    cancelled(endpoint.connect(factory))
    assert [h.description for h in endpoint.health()] == [
        "tcp:a.test:7",
        "tcp:b.test:7",
    ]
    resolver.answer = [srv("b.test", 7, ttl=0), srv("c.test", 8, priority=1, ttl=0)]
    passing = endpoint.connect(factory)
    assert trying(endpoint) == [("b.test", 7)]
    endpoint.fakes["b.test", 7].last.fail()
    assert trying(endpoint) == [("c.test", 8)]
    cancelled(passing)
    assert sorted(endpoint._endpoints) == [("b.test", 7), ("c.test", 8)]
    assert sorted(endpoint._health._records) == [("b.test", 7), ("c.test", 8)]


def test_nxdomainFallsBackToDefaultPort() -> None:
    endpoint, resolver, clock = srvEndpoint(defaultPort=5222)
    resolver.answer = DNSNameError(NAME)
    passing = endpoint.connect(factory)
    assert trying(endpoint) == [("example.test", 5222)]
    cancelled(passing)


def test_emptyAnswerFallsBackToDefaultPort() -> None:
    endpoint, resolver, clock = srvEndpoint(defaultPort=5222)
    resolver.answer = []
    passing = endpoint.connect(factory)
    assert trying(endpoint) == [("example.test", 5222)]
    cancelled(passing)


def test_noRecordsAndNoDefaultPortIsAClearError() -> None:
    endpoint, resolver, clock = srvEndpoint()
    resolver.answer = DNSNameError(NAME)
    failure = outcome(endpoint.connect(factory))
    assert failure.check(NoServiceRecords)
    assert "no SRV record" in failure.getErrorMessage()
    assert "defaultPort" in failure.getErrorMessage()
    assert not endpoint.fakes


def test_serversForgottenWhenNoneIsListed() -> None:
    """
    Records that list servers, then say the service is not offered: the
    servers' health is forgotten with them.
    """
    endpoint, resolver, clock = srvEndpoint(defaultPort=5222)
    resolver.answer = [srv("a.test", 7, ttl=0)]
    cancelled(endpoint.connect(factory))
    assert [h.description for h in endpoint.health()] == ["tcp:a.test:7"]
    resolver.answer = [srv(".", 0, ttl=0)]
    assert outcome(endpoint.connect(factory)).check(ServiceNotOffered)
    assert endpoint.health() == []
    assert endpoint._health._records == {}


def test_dotRecordMeansNotOffered() -> None:
    """
    A lone record whose target is C{"."} fails the attempt, saying that
    the service is not offered, even with a default port to fall back to.
    """
    endpoint, resolver, clock = srvEndpoint(defaultPort=5222)
    resolver.answer = [srv(".", 0)]
    failure = outcome(endpoint.connect(factory))
    assert failure.check(ServiceNotOffered)
    assert failure.check(DNSLookupError)
    assert "not offered" in failure.getErrorMessage()
    assert not endpoint.fakes


def test_lookupFailureFailsTheAttempt() -> None:
    endpoint, resolver, clock = srvEndpoint(defaultPort=5222)
    resolver.answer = DNSServerError(NAME)
    assert outcome(endpoint.connect(factory)).check(DNSServerError)
    assert not endpoint.fakes


def test_failedLookupUsesTheLastAnswer() -> None:
    """
    Past its TTL, the last answer still stands in for a lookup that fails
    (a timeout, a server failure), but not for one that says the name is
    gone.
    """
    endpoint, resolver, clock = srvEndpoint()
    resolver.answer = [srv("a.test", 7, ttl=10)]
    cancelled(endpoint.connect(factory))
    clock.advance(60)
    resolver.answer = DNSServerError(NAME)
    passing = endpoint.connect(factory)
    assert len(resolver.lookups) == 2
    assert trying(endpoint) == [("a.test", 7)]
    cancelled(passing)
    resolver.answer = DNSNameError(NAME)
    assert outcome(endpoint.connect(factory)).check(NoServiceRecords)
    resolver.answer = DNSServerError(NAME)
    assert outcome(endpoint.connect(factory)).check(NoServiceRecords)


def test_cancelDuringLookup() -> None:
    endpoint, resolver, clock = srvEndpoint()
    resolver.hold = True
    passing = endpoint.connect(factory)
    cancelled(passing)
    assert not endpoint.fakes
    resolver.held[0].callback(([srv("a.test", 7)], [], []))
    assert not endpoint.fakes


def test_cancelDuringLookupWithAnEarlierAnswer() -> None:
    """
    With an earlier answer kept (serve-stale), a caller that cancels while
    the lookup is under way gets C{CancelledError}, and no pass starts: the
    cancel is not a DNS failure to answer from the earlier records.
    """
    endpoint, resolver, clock = srvEndpoint()
    resolver.answer = [srv("a.test", 7, ttl=0)]
    first = endpoint.connect(factory)
    endpoint.fakes["a.test", 7].last.succeed()
    assert outcome(first) is not None
    resolver.hold = True
    cancelled(endpoint.connect(factory))
    assert trying(endpoint) == []
    assert len(endpoint.fakes["a.test", 7].attempts) == 1
    assert not clock.getDelayedCalls()


def test_stopDuringLookupWithAnEarlierAnswer() -> None:
    """
    A service whose connection dropped is stopped while its new lookup is
    under way, an earlier answer being kept: the stop fires, and no attempt
    nor pass is left behind, nor anything on the clock.
    """
    endpoint, resolver, clock = srvEndpoint()
    resolver.answer = [srv("a.test", 7, ttl=0), srv("b.test", 7, priority=1, ttl=0)]
    service = ClientService(endpoint, factory, clock=clock)
    service.startService()
    endpoint.fakes["a.test", 7].last.succeed()
    clock.advance(2)
    resolver.hold = True
    endpoint.fakes["a.test", 7].last.lose()
    clock.advance(0)
    assert len(resolver.held) == 1
    stopped = service.stopService()
    assert outcome(stopped) is None
    assert trying(endpoint) == []
    assert [len(fake.attempts) for fake in endpoint.fakes.values()] == [1, 0]
    assert not clock.getDelayedCalls()


def test_lateLookupAnsweredFromTheEarlierAnswer() -> None:
    """
    With an earlier answer, a lookup DNS has not answered within
    C{serveStaleAfter} seconds is answered from it, and so is every lookup
    made while the query is still under way; the query goes on, and its
    answer is kept for the passes after it.
    """
    endpoint, resolver, clock = srvEndpoint(serveStaleAfter=2.0)
    resolver.answer = [srv("a.test", 7, ttl=10)]
    cancelled(endpoint.connect(factory))
    clock.advance(60)
    resolver.hold = True
    passing = endpoint.connect(factory)
    clock.advance(1.9)
    assert trying(endpoint) == []
    clock.advance(0.1)
    assert trying(endpoint) == [("a.test", 7)]
    cancelled(passing)
    assert not clock.getDelayedCalls()
    cancelled(endpoint.connect(factory))
    assert len(resolver.held) == 1
    assert len(endpoint.fakes["a.test", 7].attempts) == 3
    resolver.held[0].callback(([srv("b.test", 8, ttl=10)], [], []))
    cancelled(endpoint.connect(factory))
    assert len(resolver.lookups) == 2
    assert len(endpoint.fakes["b.test", 8].attempts) == 1


def servedStaleWhileQuerying() -> tuple[FakeServers, ScriptedResolver, Clock]:
    """
    An endpoint whose answer (C{a.test:7}, of TTL 0) is out of date and
    whose query for a new one hangs; a connect made while it hangs was
    cancelled C{SERVE_STALE_AFTER} seconds later.
    """
    endpoint, resolver, clock = srvEndpoint()
    resolver.answer = [srv("a.test", 7, ttl=0)]
    cancelled(endpoint.connect(factory))
    resolver.hold = True
    late = endpoint.connect(factory)
    clock.advance(SERVE_STALE_AFTER)
    cancelled(late)
    return endpoint, resolver, clock


def test_queryThatNeverEndsIsAbandoned() -> None:
    """
    A resolver with no timeout of its own leaves a query hanging: once it
    has been under way for C{ABANDON_QUERY_AFTER} seconds, the next lookup
    calls it off and asks again, so that the records are not left
    unrefreshed for ever.
    """
    endpoint, resolver, clock = servedStaleWhileQuerying()
    clock.advance(ABANDON_QUERY_AFTER - SERVE_STALE_AFTER - 1)
    cancelled(endpoint.connect(factory))
    assert len(resolver.held) == 1
    clock.advance(1)
    passing = endpoint.connect(factory)
    assert resolver.held[0].called
    assert len(resolver.held) == 2
    resolver.held[1].callback(([srv("b.test", 8, ttl=0)], [], []))
    assert trying(endpoint) == [("b.test", 8)]
    cancelled(passing)
    assert not clock.getDelayedCalls()


def test_noDeadlineWithoutAnEarlierAnswer() -> None:
    """
    With nothing to serve instead, a lookup waits for DNS, however long.
    """
    endpoint, resolver, clock = srvEndpoint()
    resolver.hold = True
    passing = endpoint.connect(factory)
    assert not clock.getDelayedCalls()
    resolver.held[0].callback(([srv("a.test", 7)], [], []))
    assert trying(endpoint) == [("a.test", 7)]
    cancelled(passing)


def test_earlierAnswerTooOldIsNotServed() -> None:
    """
    An answer older than C{maxStaleAge} past its TTL is no longer served:
    a failed lookup fails the pass, and a late one is waited for.
    """
    endpoint, resolver, clock = srvEndpoint(maxStaleAge=100)
    resolver.answer = [srv("a.test", 7, ttl=10)]
    cancelled(endpoint.connect(factory))
    clock.advance(109)
    resolver.answer = DNSServerError(NAME)
    passing = endpoint.connect(factory)
    assert trying(endpoint) == [("a.test", 7)]
    cancelled(passing)
    clock.advance(1)
    assert outcome(endpoint.connect(factory)).check(DNSServerError)
    resolver.hold = True
    passing = endpoint.connect(factory)
    assert not clock.getDelayedCalls()
    cancelled(passing)
    assert resolver.held[0].called


def test_serviceReconnectsWhileDNSHangs() -> None:
    """
    DNS stops answering (queries hang, as with a nameserver that is down)
    and the connection drops: a service whose C{attemptTimeout} is shorter
    than the resolver's own retries connects again, through the server of
    the earlier answer, with no attempt timed out and no connection left
    behind.
    """
    endpoint, resolver, clock = srvEndpoint()
    resolver.answer = [srv("a.test", 7, ttl=0)]
    service = ClientService(
        endpoint, factory, clock=clock, attemptTimeout=5, retryPolicy=lambda n: 1.0
    )
    service.startService()
    endpoint.fakes["a.test", 7].last.succeed()
    clock.advance(2)
    resolver.hold = True
    endpoint.fakes["a.test", 7].last.lose()
    clock.advance(1.0)  # the policy's delay: one server, no failover
    clock.advance(SERVE_STALE_AFTER)
    endpoint.fakes["a.test", 7].last.succeed()
    assert service.state == "connected"
    assert not any(a.cancelled for a in endpoint.fakes["a.test", 7].attempts)
    assert [a.deferred.called for a in endpoint.fakes["a.test", 7].attempts] == [
        True,
        True,
    ]
    stopped = service.stopService()
    assert outcome(stopped) is None
    assert not clock.getDelayedCalls()


def test_concurrentLookupsMakeOneQuery() -> None:
    """
    Lookups made while one is under way wait for it; each caller has a
    C{Deferred} of its own, whose cancel calls off no other; the query is
    called off once every caller has cancelled.
    """
    endpoint, resolver, clock = srvEndpoint()
    resolver.hold = True
    passes = [endpoint.connect(factory) for _ in range(3)]
    assert len(resolver.held) == 1
    cancelled(passes[0])
    assert not resolver.held[0].called
    resolver.held[0].callback(([srv("a.test", 7)], [], []))
    assert len(endpoint.fakes["a.test", 7].attempts) == 2
    for passing in passes[1:]:
        cancelled(passing)
    resolver.answer = [srv("a.test", 7, ttl=0)]
    clock.advance(60)
    more = [endpoint.connect(factory) for _ in range(2)]
    assert len(resolver.held) == 2
    for passing in more:
        cancelled(passing)
    assert resolver.held[1].called
    assert not clock.getDelayedCalls()


def test_cancelledLookupsDoNotCancelTheLateOnesServed() -> None:
    """
    Callers served from the earlier answer after the deadline are done
    with the query: the query goes on for the next pass.
    """
    endpoint, resolver, clock = servedStaleWhileQuerying()
    assert not resolver.held[0].called


# ----------------------------------------------------------------- the pass


def test_passInRFCOrderWithStagger() -> None:
    """
    Priority 0 first, then after C{stagger} the next; the first to connect
    wins and the others are called off.
    """
    endpoint, resolver, clock = srvEndpoint()
    resolver.answer = [srv("backup.test", 7, priority=10), srv("main.test", 7)]
    passing = endpoint.connect(factory)
    assert trying(endpoint) == [("main.test", 7)]
    clock.advance(0.25)
    assert trying(endpoint) == [("main.test", 7), ("backup.test", 7)]
    endpoint.fakes["backup.test", 7].last.succeed()
    assert isinstance(outcome(passing), Protocol)
    assert trying(endpoint) == []
    assert endpoint.current == "tcp:backup.test:7"
    assert not clock.getDelayedCalls()


def test_passFailsWithEveryFailure() -> None:
    endpoint, resolver, clock = srvEndpoint()
    resolver.answer = [srv("a.test", 7), srv("b.test", 8, priority=1)]
    passing = endpoint.connect(factory)
    endpoint.fakes["a.test", 7].last.fail(ConnectionRefusedError())
    endpoint.fakes["b.test", 8].last.fail(ConnectionRefusedError())
    failure = outcome(passing)
    assert failure.check(AllEndpointsFailed)
    assert [where for where, _ in failure.value.failures] == [
        "tcp:a.test:7",
        "tcp:b.test:8",
    ]


def test_healthKeptPerServerAcrossPasses() -> None:
    """
    A server that failed C{failuresBeforeCooling} times in a row is tried
    after the others on the following passes, though the records put it
    first.
    """
    endpoint, resolver, clock = srvEndpoint(failuresBeforeCooling=1)
    resolver.answer = [srv("a.test", 7), srv("b.test", 7, priority=1)]
    first = endpoint.connect(factory)
    endpoint.fakes["a.test", 7].last.fail()
    endpoint.fakes["b.test", 7].last.succeed()
    assert outcome(first) is not None
    passing = endpoint.connect(factory)
    assert trying(endpoint) == [("b.test", 7)]
    cooling = {h.description: h.coolingUntil for h in endpoint.health()}
    assert cooling["tcp:a.test:7"] is not None
    cancelled(passing)


def test_serviceOverSRV() -> None:
    """
    L{ClientService} connects through it, and after losing the connection
    tries the others before the server it was on.
    """
    endpoint, resolver, clock = srvEndpoint()
    resolver.answer = [srv("a.test", 7), srv("b.test", 7, priority=1)]
    service = ClientService(endpoint, factory, clock=clock, retryPolicy=lambda n: 1.0)
    service.startService()
    endpoint.fakes["a.test", 7].last.succeed()
    assert outcome(service.whenConnected()) is not None
    endpoint.fakes["a.test", 7].last.lose()
    clock.advance(1.0)
    assert trying(endpoint) == [("b.test", 7)]
    endpoint.fakes["b.test", 7].last.succeed()
    assert endpoint.current == "tcp:b.test:7"
    service.stopService()
    assert not clock.getDelayedCalls()


def test_eachClientHasItsOwnLostServer() -> None:
    """
    Two services over one endpoint: the one whose connection to C{a} ended
    tries C{b} first; the other, whose connection is still up, is not
    affected, and its next pass starts at C{a} as the records say.  What
    is known about the servers is shared.
    """
    endpoint, resolver, clock = srvEndpoint(failuresBeforeCooling=1)
    resolver.answer = [srv("a.test", 7), srv("b.test", 7, priority=1)]
    one = ClientService(endpoint, factory, clock=clock, retryPolicy=lambda n: 1.0)
    other = ClientService(endpoint, factory, clock=clock, retryPolicy=lambda n: 1.0)
    one.startService()
    other.startService()
    for attempt in endpoint.fakes["a.test", 7].attempts:
        attempt.succeed()
    oneAttempt, otherAttempt = endpoint.fakes["a.test", 7].attempts
    oneAttempt.lose()
    clock.advance(1.0)
    assert trying(endpoint) == [("b.test", 7)]
    endpoint.fakes["b.test", 7].last.fail()
    assert [h.failuresInARow for h in endpoint.health()] == [0, 1]
    otherAttempt.lose()
    clock.advance(1.0)
    assert trying(endpoint)[-1] == ("a.test", 7)
    one.stopService()
    other.stopService()
    assert not clock.getDelayedCalls()


def test_steadyConnectionLostIsReplacedAtOnce() -> None:
    """
    A connection that was up for a while and ended is replaced by a new
    pass at once, with no wait on the retry policy: the records list
    other servers (the endpoint says it fails over).
    """
    endpoint, resolver, clock = srvEndpoint()
    resolver.answer = [srv("a.test", 7), srv("b.test", 7, priority=1)]
    service = ClientService(endpoint, factory, clock=clock, retryPolicy=lambda n: 60)
    service.startService()
    endpoint.fakes["a.test", 7].last.succeed()
    clock.advance(5)
    endpoint.fakes["a.test", 7].last.lose()
    clock.advance(0)
    assert trying(endpoint) == [("b.test", 7)]
    service.stopService()
    assert not clock.getDelayedCalls()


@pytest.mark.parametrize(
    "records, defaultPort, immediately",
    [
        ([srv("only.test", 7)], None, False),
        ([], 5222, False),
        ([srv("a.test", 7), srv("b.test", 7, priority=1)], None, True),
        ([srv("a.test", 7), srv("a.test", 7, priority=1)], None, False),
    ],
)
def test_failsOverAtOnceOnlyWithSeveralServers(
    records: list[dns.RRHeader], defaultPort: int | None, immediately: bool
) -> None:
    """
    A steady connection that is lost is replaced at once only when the
    last answer listed more than one server; with one (one record, the
    same one twice, or the C{defaultPort} fallback), the service waits out
    its retry policy, so that a server that restarts does not get its
    whole fleet back in the same instant.
    """
    endpoint, resolver, clock = srvEndpoint(defaultPort=defaultPort)
    resolver.answer = records
    service = ClientService(endpoint, factory, clock=clock, retryPolicy=lambda n: 30)
    service.startService()
    [first] = trying(endpoint)
    endpoint.fakes[first].last.succeed()
    clock.advance(5)
    endpoint.fakes[first].last.lose()
    clock.advance(0)
    assert bool(trying(endpoint)) == immediately
    assert service.failedAttempts == (0 if immediately else 1)
    clock.advance(30)
    assert trying(endpoint)
    service.stopService()
    assert not clock.getDelayedCalls()


def test_failsOverFollowsTheRecords() -> None:
    """
    C{failsOver} is asked at each lost connection: records that go from
    two servers to one make a service over the endpoint wait out its
    policy from then on.
    """
    endpoint, resolver, clock = srvEndpoint()
    resolver.answer = [srv("a.test", 7, ttl=0), srv("b.test", 7, priority=1, ttl=0)]
    service = ClientService(endpoint, factory, clock=clock, retryPolicy=lambda n: 30)
    service.startService()
    assert bool(endpoint.failsOver)
    endpoint.fakes["a.test", 7].last.succeed()
    clock.advance(5)
    resolver.answer = [srv("b.test", 7, ttl=0)]
    endpoint.fakes["a.test", 7].last.lose()
    clock.advance(0)
    endpoint.fakes["b.test", 7].last.succeed()
    assert not endpoint.failsOver
    clock.advance(5)
    endpoint.fakes["b.test", 7].last.lose()
    clock.advance(0)
    assert trying(endpoint) == []
    clock.advance(30)
    assert trying(endpoint) == [("b.test", 7)]
    service.stopService()
    assert not clock.getDelayedCalls()


def test_stopDuringThePassCallsItOff() -> None:
    """
    A service stopped while its pass runs (the lookup answered, the stagger
    timer set) calls the pass off: every attempt is cancelled and nothing
    stays scheduled.  (The service cancels only a C{Deferred} that has not
    fired, so the endpoint must not hand it one chained to the lookup's.)
    """
    endpoint, resolver, clock = srvEndpoint()
    resolver.answer = [srv("a.test", 7), srv("b.test", 7, priority=1)]
    service = ClientService(endpoint, factory, clock=clock)
    service.startService()
    assert trying(endpoint) == [("a.test", 7)]
    service.stopService()
    assert trying(endpoint) == []
    assert not clock.getDelayedCalls()


def test_stoppedFromConnectionMadeKeepsNoCurrent() -> None:
    """
    A service stopped from its protocol's C{connectionMade} aborts that
    connection: the endpoint does not take its server for the current one.
    """
    endpoint, resolver, clock = srvEndpoint()
    resolver.answer = [srv("a.test", 7)]
    stops: list[Deferred[None]] = []

    class Stopper(Protocol):
        def connectionMade(self) -> None:
            stops.append(service.stopService())

    service = ClientService(endpoint, Factory.forProtocol(Stopper), clock=clock)
    service.startService()
    endpoint.fakes["a.test", 7].last.succeed()
    assert service.state == "stopped" and outcome(stops[0]) is None
    assert endpoint.current is None
    assert not any(health.current for health in endpoint.health())
    assert not clock.getDelayedCalls()


def test_sessions() -> None:
    endpoint, resolver, clock = srvEndpoint()
    with pytest.raises(TypeError, match="move must be callable"):
        endpoint.openSession(None)  # type: ignore[arg-type]
    session = endpoint.openSession(lambda: None)
    resolver.answer = [srv("a.test", 7)]
    passing = session.connect(factory)
    endpoint.fakes["a.test", 7].last.succeed()
    assert outcome(passing) is not None
    assert endpoint.current == "tcp:a.test:7"
    session.close()
    session.close()
    assert not clock.getDelayedCalls()


# ---------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((1, "example.test"), {}, TypeError, "service"),
        (("_xmpp", "example.test"), {}, ValueError, "underscore"),
        (("xmpp", "."), {}, ValueError, "domain"),
        (("xmpp", "example..test"), {}, ValueError, "not a domain name"),
        (("xmpp", None), {}, TypeError, "domain"),
        (("xmpp", "example.test"), {"protocol": "_tcp"}, ValueError, "protocol"),
        (("xmpp", "example.test"), {"defaultPort": 0}, ValueError, "defaultPort"),
        (("xmpp", "example.test"), {"defaultPort": "80"}, TypeError, "defaultPort"),
        (("xmpp", "example.test"), {"stagger": -1}, ValueError, "stagger"),
        (("xmpp", "example.test"), {"resolver": object()}, TypeError, "resolver"),
        (("xmpp", "example.test"), {"serveStaleAfter": -1}, ValueError, "serveStale"),
        (("xmpp", "example.test"), {"serveStaleAfter": None}, TypeError, "serveStale"),
        (("xmpp", "example.test"), {"maxStaleAge": "1"}, TypeError, "maxStaleAge"),
    ],
)
def test_badArguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        SRVEndpoint(Clock(), *args, **kwargs)


def test_repr() -> None:
    assert repr(SRVEndpoint(Clock(), "saystuff", "example.test")) == (
        "srv(_saystuff._tcp.example.test)"
    )


@pytest.mark.parametrize(
    "name, module",
    [
        ("SRVEndpoint", "reconnect._srv"),
        ("SRVConnector", "reconnect._srvconnector"),
        ("NoServiceRecords", "reconnect._srvlookup"),
        ("ServiceNotOffered", "reconnect._srvlookup"),
    ],
)
def test_exported(name: str, module: str) -> None:
    import importlib

    import reconnect

    assert name in reconnect.__all__
    assert getattr(reconnect, name) is getattr(importlib.import_module(module), name)


def test_failedHandshakeGoesOnInTheSamePass() -> None:
    """
    Over TLS, a server whose handshake fails (its certificate is not
    accepted) fails in the pass: it is recorded as failed, and the same
    pass goes on to the next server, through which the service connects.
    """
    endpoint, resolver, clock = srvEndpoint()
    resolver.answer = [srv("a.test", 7), srv("b.test", 7, priority=1)]
    service = ClientService(endpoint, factory, clock=clock, retryPolicy=lambda n: 1.0)
    service.startService()
    connected = service.whenConnected(failAfterFailures=1)
    endpoint.fakes["a.test", 7].last.succeed(tls=True)
    endpoint.fakes["a.test", 7].last.lose(ConnectionRefusedError("bad certificate"))
    assert trying(endpoint) == [("b.test", 7)]
    endpoint.fakes["b.test", 7].last.succeed(tls=True)
    endpoint.fakes["b.test", 7].last.completeHandshake()
    assert outcome(connected) is not None
    assert endpoint.current == "tcp:b.test:7"
    health = {h.description: (h.failuresInARow, h.connects) for h in endpoint.health()}
    assert health == {"tcp:a.test:7": (1, 0), "tcp:b.test:7": (0, 1)}
    assert service.stats().failures == 0
    service.stopService()
    endpoint.fakes["b.test", 7].last.lose()
    assert not clock.getDelayedCalls()
