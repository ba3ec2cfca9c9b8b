"""
Tests for L{reconnect.FailoverEndpoint} on a L{Clock} with fake endpoints:
the staggered pass, the first to connect wins and the rest are called off,
a whole pass fails only when every endpoint has, cooling and its cap, never
skipping everything, shuffling for a fleet, and ClientService waiting on its
policy only after a whole pass.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from helpers import NamesAsTheyAre, ResolvingMemoryReactor, outcome
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import (
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from zope.interface import implementer

from reconnect import AllEndpointsFailed, ClientService, FailoverEndpoint
from reconnect.testing import FakeAttempt, FakeEndpoint

STAGGER = 0.25


def failover(
    count: int = 3, **kwargs: Any
) -> tuple[FailoverEndpoint, list[FakeEndpoint], Clock]:
    clock = Clock()
    endpoints = [FakeEndpoint() for _ in range(count)]
    kwargs.setdefault("stagger", STAGGER)
    return FailoverEndpoint(endpoints, clock=clock, **kwargs), endpoints, clock


@contextmanager
def caughtEvents() -> Iterator[list[dict[str, Any]]]:
    """
    Every log event emitted meanwhile.
    """
    caught: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(caught.append)
    try:
        yield caught
    finally:
        globalLogPublisher.removeObserver(caught.append)


def retryingEvery5s(endpoint: IStreamClientEndpoint, clock: Clock) -> ClientService:
    """
    A service over C{endpoint}, not started, retrying after 5 s.
    """
    return ClientService(
        endpoint, Factory.forProtocol(Protocol), lambda n: 5.0, clock=clock
    )


def started(endpoints: list[FakeEndpoint]) -> list[int]:
    return [len(e.attempts) for e in endpoints]


def test_staggeredPass() -> None:
    """
    The first endpoint is tried at once; the next joins it only once
    C{stagger} seconds have passed with no connection; the first to connect
    wins, and the others are called off.
    """
    endpoint, fakes, clock = failover()
    passing = endpoint.connect(Factory.forProtocol(Protocol))
    assert started(fakes) == [1, 0, 0]
    clock.advance(STAGGER - 0.01)
    assert started(fakes) == [1, 0, 0]
    clock.advance(0.01)
    assert started(fakes) == [1, 1, 0]
    protocol = fakes[1].last.succeed()
    assert outcome(passing) is protocol
    assert fakes[0].last.cancelled
    clock.advance(10)
    assert started(fakes) == [1, 1, 0]
    assert clock.getDelayedCalls() == []
    assert endpoint.current == repr(fakes[1])


def test_failureStartsTheNextAtOnce() -> None:
    """
    An endpoint that fails does not make the next wait out the stagger.
    """
    endpoint, fakes, clock = failover()
    endpoint.connect(Factory.forProtocol(Protocol))
    fakes[0].last.fail()
    assert started(fakes) == [1, 1, 0]
    fakes[1].last.fail()
    assert started(fakes) == [1, 1, 1]


def test_wholePassFails() -> None:
    """
    Only when every endpoint has failed does the pass fail, with each
    endpoint's failure, in the order they were tried.
    """
    endpoint, fakes, clock = failover()
    passing = endpoint.connect(Factory.forProtocol(Protocol))
    clock.advance(STAGGER)
    fakes[1].last.fail(ConnectionRefusedError("second"))
    assert not passing.called
    fakes[0].last.fail(ConnectionRefusedError("first"))
    assert not passing.called
    fakes[2].last.fail(ConnectionRefusedError("third"))
    error = outcome(passing).value
    assert isinstance(error, AllEndpointsFailed)
    assert [why.value.osError for _, why in error.failures] == [  # type: ignore[attr-defined]
        "second",
        "first",
        "third",
    ]
    assert clock.getDelayedCalls() == []


def test_lateLoserIsRefused() -> None:
    """
    A connection that comes up after another won gets no protocol from the
    user's factory.
    """
    built: list[Protocol] = []

    class Counting(Factory):
        def buildProtocol(self, addr: Any) -> Protocol:
            built.append(Protocol())
            return built[-1]

    endpoint, fakes, clock = failover(2)
    endpoint.connect(Counting())
    clock.advance(STAGGER)
    fakes[1].last.succeed()
    assert fakes[0].last.cancelled
    assert len(built) == 1


def test_cancelThePass() -> None:
    """
    Cancelling the pass calls off every attempt and the stagger timer.
    """
    endpoint, fakes, clock = failover()
    passing = endpoint.connect(Factory.forProtocol(Protocol))
    clock.advance(STAGGER)
    passing.cancel()
    assert isinstance(outcome(passing).value, CancelledError)
    assert [e.last.cancelled for e in fakes[:2]] == [True, True]
    assert clock.getDelayedCalls() == []
    assert [h.failures for h in endpoint.health()] == [0, 0, 0]


def test_connectThatRaises() -> None:
    """
    An endpoint whose C{connect} raises counts as failed; the next starts.
    """

    class Raising(FakeEndpoint):
        def connect(self, factory: Any) -> Any:
            raise OSError("no")

    clock = Clock()
    second = FakeEndpoint()
    endpoint = FailoverEndpoint([Raising(), second], clock=clock)
    passing = endpoint.connect(Factory.forProtocol(Protocol))
    assert len(second.attempts) == 1
    second.last.succeed()
    assert passing.called


def failEveryAttempt(fakes: list[FakeEndpoint]) -> None:
    """
    Fail each undecided attempt (and those that failing starts) until none
    is left.
    """
    while True:
        undecided = [a for f in fakes for a in f.attempts if not a.deferred.called]
        if not undecided:
            return
        undecided[0].fail()


def test_coolingAndItsCap() -> None:
    """
    After C{failuresBeforeCooling} failures in a row an endpoint is tried
    after the others, for C{coolingPeriod} seconds, doubling with each
    further failure up to C{maxCoolingPeriod}; a success clears it.
    """
    endpoint, fakes, clock = failover(
        2, failuresBeforeCooling=2, coolingPeriod=10.0, maxCoolingPeriod=35.0
    )
    factory = Factory.forProtocol(Protocol)
    periods = []
    for _ in range(6):
        endpoint.connect(factory).addErrback(lambda f: f.trap(AllEndpointsFailed))
        failEveryAttempt(fakes)
        cooling = endpoint.health()[0].coolingUntil
        periods.append(None if cooling is None else cooling - clock.seconds())
    assert periods == [None, 10.0, 20.0, 35.0, 35.0, 35.0]
    clock.advance(40)
    passing = endpoint.connect(factory)
    assert started(fakes) == [7, 6]
    fakes[0].last.succeed()
    assert passing.called
    assert endpoint.health()[0].failuresInARow == 0
    assert endpoint.health()[0].coolingUntil is None


def test_coolingEndpointTriedLastNeverSkipped() -> None:
    """
    A cooling endpoint goes to the end of the pass, and is still tried
    when every other has failed: a pass skips nothing.
    """
    endpoint, fakes, clock = failover(2, failuresBeforeCooling=1, coolingPeriod=60.0)
    factory = Factory.forProtocol(Protocol)
    endpoint.connect(factory)
    fakes[0].last.fail()
    fakes[1].last.succeed()
    assert endpoint.health()[0].coolingUntil == 60.0
    endpoint.connect(factory)
    assert started(fakes) == [1, 2]
    fakes[1].last.fail()
    assert started(fakes) == [2, 2]


def test_shuffleSpreadsAFleet() -> None:
    """
    With C{order="shuffle"}, each client keeps one order of its own; when
    one server dies, the clients that preferred it spread evenly over the
    two others (each taking 40% to 60% of them).
    """
    rng = random.Random(1234)
    fakes = [FakeEndpoint() for _ in range(3)]
    firstChoices = Counter()
    fallbacks = Counter()
    for _ in range(2000):
        client = FailoverEndpoint(
            fakes, order="shuffle", clock=Clock(), random=rng.random
        )
        order = [h.description for h in client.health()]
        firstChoices[order[0]] += 1
        if order[0] == repr(fakes[0]):
            fallbacks[order[1]] += 1
    assert len(firstChoices) == 3
    assert all(600 <= n <= 730 for n in firstChoices.values()), firstChoices
    share = fallbacks[repr(fakes[1])] / sum(fallbacks.values())
    assert 0.4 <= share <= 0.6


def test_policyWaitsOnlyAfterAWholePass() -> None:
    """
    Under a ClientService, a failing endpoint does not cost a retry delay
    while another answers: the policy is asked once per failed pass.
    """
    endpoint, fakes, clock = failover(2)
    asked: list[int] = []

    def policy(attempt: int) -> float:
        asked.append(attempt)
        return 5.0

    service = ClientService(
        endpoint, Factory.forProtocol(Protocol), policy, clock=clock
    )
    service.startService()
    fakes[0].last.fail()
    fakes[1].last.succeed()
    assert service.state == "connected" and asked == []
    fakes[1].last.lose()
    assert asked == [1]
    clock.advance(5)
    fakes[0].last.fail()
    fakes[1].last.fail()
    assert asked == [1, 2] and service.state == "waiting"
    assert isinstance(service.lastFailure.value, AllEndpointsFailed)  # type: ignore[union-attr]
    service.stopService()


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"endpoints": []}, ValueError, "endpoints"),
        ({"endpoints": "tcp:a:1"}, TypeError, "endpoints"),
        ({"endpoints": [object()]}, TypeError, "endpoint"),
        ({"order": "random"}, ValueError, "order"),
        ({"stagger": -1}, ValueError, "stagger"),
        ({"failuresBeforeCooling": 0}, ValueError, "failuresBeforeCooling"),
        ({"coolingPeriod": 0}, ValueError, "coolingPeriod"),
        ({"coolingPeriod": 10, "maxCoolingPeriod": 5}, ValueError, "maxCoolingPeriod"),
    ],
)
def test_badArguments(
    kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    kwargs.setdefault("endpoints", [FakeEndpoint()])
    with pytest.raises(error, match=name):
        FailoverEndpoint(clock=Clock(), **kwargs)


def test_descriptions() -> None:
    """
    String descriptions are endpoints too, and the failover endpoint names
    them all in its C{repr} (and so in log lines).
    """
    endpoint = FailoverEndpoint(
        ["tcp:host=127.0.0.1:port=1", "tcp:host=127.0.0.1:port=2"],
        reactor=ResolvingMemoryReactor(),
        clock=Clock(),
    )
    assert repr(endpoint) == "failover(tcp:127.0.0.1:1, tcp:127.0.0.1:2)"


def test_readmeExampleRuns() -> None:
    """
    README's failover example runs as written.
    """
    import re

    from helpers import ROOT

    readme = (ROOT / "README.md").read_text()
    [example] = [
        block
        for block in re.findall(r"^```python\n(.*?)^```", readme, re.M | re.S)
        if "FailoverEndpoint(" in block
    ]
    namespace: dict[str, Any] = {}
    exec(example, namespace)
    assert repr(namespace["endpoint"]) == (
        "failover(tcp:127.0.0.1:7001, tcp:127.0.0.1:7002)"
    )
    assert namespace["service"].state == "init"


def test_hostnameResolvedAgainEachPass() -> None:
    """
    A C{HostnameEndpoint} among the endpoints resolves its name again on
    each pass, so a name whose answer changes is followed.
    """
    from twisted.internet.endpoints import HostnameEndpoint

    class ChangingAnswers(NamesAsTheyAre):
        def __init__(self, *answers: str) -> None:
            self.answers = list(answers)

        def addressOf(self, hostName: str) -> str:
            return self.answers.pop(0)

    reactor = ResolvingMemoryReactor()
    reactor.nameResolver = ChangingAnswers("10.0.0.1", "10.0.0.2")
    endpoint = FailoverEndpoint(
        [HostnameEndpoint(reactor, "db.example", 7000)], clock=reactor
    )
    for expected in ("10.0.0.1", "10.0.0.2"):
        passing = endpoint.connect(Factory.forProtocol(Protocol))
        reactor.advance(0)
        assert reactor.tcpClients[-1][:2] == (expected, 7000)
        passing.cancel()
        passing.addErrback(lambda f: f.trap(CancelledError))


@pytest.mark.parametrize("upFor, immediate", [(1.0, True), (0.5, False)])
def test_lostConnectionFailsOverAtOnce(upFor: float, immediate: bool) -> None:
    """
    Over a failover endpoint, a connection that was up a second or more is
    followed at once by a new pass, with no failure counted; one that ends
    sooner (a server that accepts and hangs up) meets the policy.
    """
    endpoint, fakes, clock = failover(2)
    service = retryingEvery5s(endpoint, clock)
    service.startService()
    fakes[0].last.succeed()
    clock.advance(upFor)
    fakes[0].last.lose()
    [retry] = clock.getDelayedCalls()
    assert retry.getTime() - clock.seconds() == (0.0 if immediate else 5.0)
    assert service.failedAttempts == (0 if immediate else 1)
    clock.advance(retry.getTime() - clock.seconds())
    assert service.state == "connecting"
    fakes[1].last.succeed()
    assert service.state == "connected"
    service.stopService()
    fakes[1].last.lose()


@pytest.mark.parametrize(
    "count, given, expected",
    [(2, None, True), (1, None, False), (2, False, False), (0, None, False)],
)
def test_immediateFailoverDefault(
    count: int, given: bool | None, expected: bool
) -> None:
    """
    C{immediateFailover} is on by default only over a failover endpoint
    with somewhere else to go; a plain endpoint keeps Twisted's behaviour;
    an explicit value wins.
    """
    endpoint: Any = failover(count)[0] if count else FakeEndpoint()
    service = ClientService(
        endpoint, Factory.forProtocol(Protocol), clock=Clock(), immediateFailover=given
    )
    assert service._machine._settings.immediateFailover is expected


def test_failback() -> None:
    """
    With C{failback}, while connected through another endpoint, the
    preferred one is tried every C{failback} seconds (a refused try waits
    for the next); once it accepts, the service reconnects, and moves back
    to it.  Stopped, nothing stays scheduled.
    """
    endpoint, fakes, clock = failover(2, failback=10.0, failuresBeforeCooling=1)
    service = retryingEvery5s(endpoint, clock)
    service.startService()
    fakes[0].last.fail()
    fakes[1].last.succeed()
    assert endpoint.current == repr(fakes[1])
    clock.advance(10)
    assert len(fakes[0].attempts) == 2
    fakes[0].last.fail()
    clock.advance(10)
    assert len(fakes[0].attempts) == 3
    probe = fakes[0].last.succeed()
    assert fakes[0].last.transport.disconnecting  # type: ignore[union-attr]
    assert probe is not None and service.state == "reconnecting"
    fakes[1].last.lose()
    clock.advance(0)
    assert len(fakes[0].attempts) == 4
    fakes[0].last.succeed()
    assert service.state == "connected" and endpoint.current == repr(fakes[0])
    assert clock.getDelayedCalls() == []
    stopped = service.stopService()
    fakes[0].last.lose()
    assert stopped.called
    assert clock.getDelayedCalls() == []


def test_stopEndsProbing() -> None:
    """
    Stopping the service stops the failback probe.
    """
    endpoint, fakes, clock = failover(2, failback=10.0)
    service = ClientService(endpoint, Factory.forProtocol(Protocol), clock=clock)
    service.startService()
    fakes[0].last.fail()
    fakes[1].last.succeed()
    assert len(clock.getDelayedCalls()) == 1
    service.stopService()
    fakes[1].last.lose()
    assert clock.getDelayedCalls() == []


@pytest.mark.parametrize("through", [0, 1])
def test_stoppedFromConnectionMadeChoosesNoEndpoint(through: int) -> None:
    """
    A service stopped from its protocol's C{connectionMade} aborts that
    connection: the endpoint says nothing of it (no C{endpointChosen}
    after the service stopped), keeps no C{current} for it, and starts no
    failback probe for it.
    """
    from twisted.logger import globalLogPublisher

    endpoint, fakes, clock = failover(2, failback=10.0)
    stops: list[Deferred[None]] = []

    class Stopper(Protocol):
        def connectionMade(self) -> None:
            stops.append(service.stopService())

    service = ClientService(endpoint, Factory.forProtocol(Stopper), clock=clock)
    caught: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(caught.append)
    try:
        service.startService()
        if through:
            fakes[0].last.fail()
        fakes[through].last.succeed()
    finally:
        globalLogPublisher.removeObserver(caught.append)
    assert service.state == "stopped" and outcome(stops[0]) is None
    assert fakes[through].last.transport.disconnecting  # type: ignore[union-attr]
    chosen = [e for e in caught if e.get("reconnectEvent") == "endpointChosen"]
    assert chosen == []
    assert endpoint.current is None
    assert not any(health.current for health in endpoint.health())
    assert clock.getDelayedCalls() == []


def test_lostEndpointGoesLast() -> None:
    """
    When the connection through an endpoint is lost, the next pass tries
    the others first (a dying server may still accept for a moment), and
    that one last; the pass after is in the usual order again.
    """
    endpoint, fakes, clock = failover(3)
    service = retryingEvery5s(endpoint, clock)
    service.startService()
    fakes[0].last.succeed()
    clock.advance(2)
    fakes[0].last.lose()
    clock.advance(0)
    assert started(fakes) == [1, 1, 0]
    fakes[1].last.fail()
    fakes[2].last.fail()
    assert started(fakes) == [2, 1, 1]
    fakes[0].last.fail()
    clock.advance(5)
    assert started(fakes) == [3, 1, 1]
    service.stopService()


@implementer(IStreamClientEndpoint)
class FakeServer:
    """
    A server on virtual time: accepts every connection at once while up;
    refuses them, having dropped every connection it had, once dead.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.up = True
        self.accepted = 0
        self.refused = 0
        self.connections: list[FakeAttempt] = []

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        if not self.up:
            self.refused += 1
            return fail(ConnectionRefusedError(self.name))
        attempt = FakeAttempt(factory)
        attempt.succeed()
        assert attempt.transport is not None
        attempt.transport.server = self.name  # type: ignore[attr-defined]
        self.accepted += 1
        self.connections.append(attempt)
        return attempt.deferred

    def die(self) -> None:
        self.up = False
        dropped, self.connections = self.connections, []
        for attempt in dropped:
            if not attempt.lost:
                attempt.lose()

    def settle(self) -> bool:
        """
        End each connection the client closed, as the reactor would.

        @return: whether there was one.
        """
        closed = [a for a in self.connections if a.transport.disconnecting]  # type: ignore[union-attr]
        for attempt in closed:
            self.connections.remove(attempt)
            attempt.lose()
        return bool(closed)

    def __repr__(self) -> str:
        return self.name


def test_herdOnVirtualTime() -> None:
    """
    2,000 services, each over the same three servers in an order of its own
    (C{order="shuffle"}), share one clock.  When one server dies, every
    service it served reconnects at once, and each survivor takes 40% to 60%
    of those reconnects.
    """
    clock = Clock()
    rng = random.Random(2026)
    servers = [FakeServer(name) for name in "abc"]
    services = []
    for _ in range(2000):
        endpoint = FailoverEndpoint(
            servers, order="shuffle", clock=clock, random=rng.random
        )
        service = ClientService(endpoint, Factory.forProtocol(Protocol), clock=clock)
        service.startService()
        services.append(service)
    assert sum(server.accepted for server in servers) == 2000
    clock.advance(10)
    before = [server.accepted for server in servers]
    victims = before[0]
    assert 600 <= victims <= 730
    servers[0].die()
    clock.advance(0)
    assert all(service.state == "connected" for service in services)
    moved = [
        server.accepted - was for server, was in zip(servers, before, strict=False)
    ]
    assert moved[0] == 0 and moved[1] + moved[2] == victims
    assert all(0.4 <= share / victims <= 0.6 for share in moved[1:]), moved
    for service in services:
        service.stopService()


def test_calledOffEndpointsGoBackIntoThePass() -> None:
    """
    When a later endpoint builds its protocol (claiming the pass, so that
    the earlier one is called off) and then fails before its connection is
    handed over, the endpoint it called off goes back into the pass: the
    pass fails only once every endpoint has, and here the first connects.
    """
    endpoint, fakes, clock = failover(2)
    built: list[Protocol] = []

    class Counting(Factory):
        def buildProtocol(self, addr: Any) -> Protocol:
            built.append(Protocol())
            return built[-1]

    passing = endpoint.connect(Counting())
    clock.advance(STAGGER)
    assert started(fakes) == [1, 1]
    late = fakes[1].last
    late.factory.buildProtocol(None)  # type: ignore[arg-type]
    assert fakes[0].last.cancelled
    late.fail(ConnectionRefusedError("handshake failed"))
    assert not passing.called
    assert started(fakes) == [2, 1]
    protocol = fakes[0].last.succeed()
    assert outcome(passing) is protocol
    assert endpoint.current == repr(fakes[0])
    assert [h.failures for h in endpoint.health()] == [0, 1]
    assert clock.getDelayedCalls() == []


def test_calledOffEndpointFailsTooThenThePassFails() -> None:
    """
    The called-off endpoint, back in the pass, failing too: now every
    endpoint has failed, and the pass fails naming both.
    """
    endpoint, fakes, clock = failover(2)
    passing = endpoint.connect(Factory.forProtocol(Protocol))
    clock.advance(STAGGER)
    fakes[1].last.factory.buildProtocol(None)  # type: ignore[arg-type]
    fakes[1].last.fail(ConnectionRefusedError("second"))
    fakes[0].last.fail(ConnectionRefusedError("first"))
    error = outcome(passing).value
    assert isinstance(error, AllEndpointsFailed)
    assert [where for where, _ in error.failures] == [repr(fakes[1]), repr(fakes[0])]


def test_lateConnectionOfACalledOffAttemptIsRefused() -> None:
    """
    An endpoint whose attempt ignores being called off, and connects later
    while the pass is still on (after the winner failed), is not handed the
    user's factory: only its new attempt counts.
    """

    class Deaf(FakeEndpoint):
        def connect(self, factory: Any) -> Deferred[Any]:
            super().connect(factory)
            self.last.deferred = Deferred()
            return self.last.deferred

    clock = Clock()
    deaf, other = Deaf(), FakeEndpoint()
    endpoint = FailoverEndpoint([deaf, other], clock=clock, stagger=STAGGER)
    passing = endpoint.connect(Factory.forProtocol(Protocol))
    clock.advance(STAGGER)
    other.last.factory.buildProtocol(None)  # type: ignore[arg-type]
    other.last.fail()
    assert len(deaf.attempts) == 2
    assert deaf.attempts[0].factory.buildProtocol(None) is None  # type: ignore[arg-type]
    protocol = deaf.last.succeed()
    assert outcome(passing) is protocol


@pytest.mark.parametrize("upFor, immediate", [(2.5, True), (0.5, False)])
def test_immediateFailoverSaysWhatHappens(upFor: float, immediate: bool) -> None:
    """
    A lost connection followed at once by a new pass says so (event
    C{failingOver}: how long it was up, and that it connects again at once,
    with no failure counted), not that a "retry 0" is scheduled "in 0.0
    seconds"; one that meets the policy keeps Twisted's sentence.  It is
    one sentence, whatever the reason's text.
    """
    from twisted.logger import formatEvent

    endpoint, fakes, clock = failover(2)
    service = retryingEvery5s(endpoint, clock)
    with caughtEvents() as caught:
        service.startService()
        fakes[0].last.succeed()
        clock.advance(upFor)
        fakes[0].last.lose()
    [event] = [
        e for e in caught if e.get("reconnectEvent") in ("disconnected", "failingOver")
    ]
    text = formatEvent(event)
    if immediate:
        assert event["reconnectEvent"] == "failingOver"
        assert event["seconds"] == upFor
        assert "Scheduling retry" not in text
        assert f"lost after {upFor} seconds" in text and "at once" in text
        # One sentence, the reason's own text ending it: no "cleanly.. ".
        reason = event["reason"]
        assert reason == "Connection was closed cleanly."
        assert text.endswith(": " + reason)
        assert re.search(r"\.(\s|$)", text[: -len(reason)]) is None
    else:
        assert event["reconnectEvent"] == "disconnected"
        assert text.startswith("Scheduling retry 1 to connect ")
        assert " in 5.0 seconds. Connection lost: " in text
    [retry] = clock.getDelayedCalls()
    assert retry.getTime() - clock.seconds() == (0.0 if immediate else 5.0)
    service.stopService()
    assert clock.getDelayedCalls() == []


def reachableFrom(*roots: object) -> list[object]:
    """
    Every object reachable from C{roots} through instances and containers
    (not through classes, modules or functions, which reach everything).
    """
    import gc
    import types

    opaque = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)
    seen: dict[int, object] = {}
    todo = list(roots)
    while todo:
        thing = todo.pop()
        if id(thing) in seen or isinstance(thing, opaque):
            continue
        seen[id(thing)] = thing
        todo.extend(gc.get_referents(thing))
    return list(seen.values())


def test_stoppedServicesAreNotKept() -> None:
    """
    Services over one failover endpoint, started, stopped and dropped, are
    not kept by it: nothing reachable from the endpoint or the clock is a
    service (no failback listener, no probe), whether they were on the
    preferred endpoint or on another.
    """
    endpoint, fakes, clock = failover(2, failback=10.0)
    for n in range(20):
        service = retryingEvery5s(endpoint, clock)
        service.startService()
        if n % 2:
            fakes[0].last.fail()
        fakes[n % 2].last.succeed()
        assert service.state == "connected"
        service.stopService()
        fakes[n % 2].last.lose()
        assert service.state == "stopped"
    for fake in fakes:
        fake.attempts.clear()  # they hold the services' factories
    assert clock.getDelayedCalls() == []
    kept = [o for o in reachableFrom(endpoint, clock) if isinstance(o, ClientService)]
    assert kept == []


def advance(clock: Clock, seconds: int) -> None:
    """
    Advance C{clock} a second at a time, so that what each call schedules
    runs too.
    """
    for _ in range(seconds):
        clock.advance(1)


def settle(servers: list[FakeServer]) -> None:
    """
    End every connection the clients closed, and those that follows, until
    none is left.
    """
    while any([server.settle() for server in servers]):
        pass


def startedOver(
    endpoint: FailoverEndpoint, clock: Clock, count: int, forgetLost: bool = False
) -> tuple[list[ClientService], dict[int, str | None]]:
    """
    C{count} services over C{endpoint}, started, each retrying after 1 s;
    and the server each is connected to, by its index, kept once the
    connection is lost unless C{forgetLost} (then L{None}).
    """
    on: dict[int, str | None] = {}
    services = [
        ClientService(
            endpoint,
            Factory.forProtocol(Protocol),
            lambda n: 1.0,
            clock=clock,
            onConnected=lambda p, i=i: on.__setitem__(i, p.transport.server),
            onDisconnected=(
                (lambda p, r, i=i: on.__setitem__(i, None)) if forgetLost else None
            ),
        )
        for i in range(count)
    ]
    for service in services:
        service.startService()
    return services, on


def twoStartedOver(
    endpoint: IStreamClientEndpoint, clock: Clock
) -> list[ClientService]:
    """
    Two services over C{endpoint}, started, each retrying after 5 s.
    """
    services = [retryingEvery5s(endpoint, clock) for _ in range(2)]
    for service in services:
        service.startService()
    return services


def test_stoppingOneServiceLeavesTheOthersProbing() -> None:
    """
    Two services over one C{FailoverEndpoint(failback=10)}, both on the
    backup: stopping one leaves the other probing the preferred endpoint,
    and it moves back once that answers.
    """
    clock = Clock()
    preferred, backup = FakeServer("preferred"), FakeServer("backup")
    preferred.up = False
    endpoint = FailoverEndpoint([preferred, backup], failback=10.0, clock=clock)
    services, on = startedOver(endpoint, clock, 2)
    assert on == {0: "backup", 1: "backup"}
    services[0].stopService()
    settle([preferred, backup])
    refusedBefore = preferred.refused
    advance(clock, 100)
    assert preferred.refused - refusedBefore == 10
    preferred.up = True
    clock.advance(10)
    settle([preferred, backup])
    assert on == {0: "backup", 1: "preferred"}
    assert services[1].state == "connected"
    services[1].stopService()
    settle([preferred, backup])
    assert clock.getDelayedCalls() == []


def test_aHundredServicesOverOneEndpoint() -> None:
    """
    A hundred services over one shuffled C{FailoverEndpoint} with
    failback, three servers killed in turn: each service fails over on its
    own, from its own preferred server down its own order, and back to its
    own preferred once the servers return; the servers' health is shared
    (a server refusing every client cools for all).  Stopping half the
    services leaves the rest probing, each for itself, and the stopped ones
    make no attempt and keep nothing scheduled.
    """
    clock = Clock()
    rng = random.Random(23)
    servers = [FakeServer(name) for name in "abc"]
    byName = {server.name: server for server in servers}
    endpoint = FailoverEndpoint(
        servers, order="shuffle", failback=10.0, clock=clock, random=rng.random
    )
    services, on = startedOver(endpoint, clock, 100, forgetLost=True)
    preferredOf = dict(on)
    assert all(Counter(preferredOf.values())[name] >= 20 for name in "abc")
    clock.advance(2)

    servers[0].die()
    clock.advance(0)
    assert all(on[i] == preferredOf[i] for i in on if preferredOf[i] != "a")
    assert all(on[i] in ("b", "c") for i in on)
    movedFromA = {on[i] for i in on if preferredOf[i] == "a"}
    assert movedFromA == {"b", "c"}, "each went down its own order"
    clock.advance(2)
    servers[1].die()
    clock.advance(0)
    assert set(on.values()) == {"c"}
    # b's clients went to c before trying b again; a refused a third of
    # them, and cools for every client.
    cooling = {h.description: h.coolingUntil is not None for h in endpoint.health()}
    assert cooling == {"a": True, "b": False, "c": False}

    for server in servers[:2]:
        server.up = True
    clock.advance(10)
    settle(servers)
    assert on == preferredOf
    assert all(service.state == "connected" for service in services)
    assert clock.getDelayedCalls() == []

    stopped, running = services[::2], services[1::2]
    for service in stopped:
        service.stopService()
    settle(servers)
    clock.advance(2)
    servers[0].die()
    clock.advance(0)
    onA = [i for i in range(1, 100, 2) if preferredOf[i] == "a"]
    assert onA and all(on[i] in ("b", "c") for i in onA)
    refusedBefore = servers[0].refused
    advance(clock, 100)
    assert servers[0].refused - refusedBefore == 10 * len(onA)
    assert len(clock.getDelayedCalls()) == len(onA)
    servers[0].up = True
    clock.advance(10)
    settle(servers)
    assert all(on[i] == preferredOf[i] for i in range(1, 100, 2))
    assert all(on[i] is None for i in range(0, 100, 2))
    assert all(service.state == "stopped" for service in stopped)
    assert all(service.state == "connected" for service in running)
    for service in running:
        service.stopService()
    settle(servers)
    assert clock.getDelayedCalls() == []
    assert sum(len(byName[n].connections) for n in "abc") == 0


def guideSessionExample() -> dict[str, Any]:
    """
    The guide's own endpoint over several servers, run as written.
    """
    import re

    from helpers import ROOT

    guide = (ROOT / "docs" / "guide.md").read_text()
    [example] = [
        block
        for block in re.findall(r"^```python\n(.*?)^```", guide, re.M | re.S)
        if "class RoundRobin" in block
    ]
    namespace: dict[str, Any] = {}
    exec(example, namespace)
    return namespace


def test_ownSessionEndpoint() -> None:
    """
    ClientService drives the guide's own L{ISessionEndpoint}: each service
    opens a session of its own at start and connects through it, tells it
    when a connection ended by itself (and so moves to the next server, at
    once, C{failsOver} being true), and not when it is stopped; stopping
    one changes nothing for the other.
    """
    from zope.interface.verify import verifyObject

    from reconnect import IEndpointSession, ISessionEndpoint

    RoundRobin = guideSessionExample()["RoundRobin"]
    fakes = [FakeEndpoint(), FakeEndpoint()]
    endpoint = RoundRobin(fakes)
    assert verifyObject(ISessionEndpoint, endpoint)
    assert verifyObject(IEndpointSession, endpoint.openSession(lambda: None))
    clock = Clock()
    services = twoStartedOver(endpoint, clock)
    assert started(fakes) == [2, 0]
    for attempt in fakes[0].attempts:
        attempt.succeed()
    clock.advance(2)
    fakes[0].attempts[0].lose()
    clock.advance(0)
    assert started(fakes) == [2, 1]
    fakes[1].last.succeed()
    assert [s.state for s in services] == ["connected", "connected"]
    services[1].stopService()
    fakes[0].attempts[1].lose()
    services[1].startService()
    assert started(fakes) == [3, 1]
    services[0].stopService()
    services[1].stopService()
    fakes[1].last.lose()
    assert fakes[0].last.cancelled
    assert [s.state for s in services] == ["stopped", "stopped"]
    assert clock.getDelayedCalls() == []


def test_sessionEndpointThatRaises() -> None:
    """
    An endpoint's session is user code: if C{openSession} raises, the
    service connects to the endpoint itself; if C{connectionEnded} or
    C{close} raise, the service goes on. Each is logged once.
    """
    from reconnect import IEndpointSession, ISessionEndpoint

    fake = FakeEndpoint()

    @implementer(IEndpointSession)
    class Raising:
        def connect(self, factory: Any) -> Any:
            return fake.connect(factory)

        def connectionEnded(self, secondsUp: float) -> None:
            raise RuntimeError("connectionEnded")

        def close(self) -> None:
            raise RuntimeError("close")

    @implementer(IStreamClientEndpoint, ISessionEndpoint)
    class Endpoint:
        failsOver = False
        refuse = True

        def connect(self, factory: Any) -> Any:
            return fake.connect(factory)

        def openSession(self, move: Any) -> Raising:
            if self.refuse:
                raise RuntimeError("openSession")
            return Raising()

    endpoint = Endpoint()
    clock = Clock()
    service = retryingEvery5s(endpoint, clock)
    with caughtEvents() as caught:
        service.startService()
        fake.last.succeed()
        service.stopService()
        fake.last.lose()
        endpoint.refuse = False
        service.startService()
        fake.last.succeed()
        fake.last.lose()
        assert service.state == "waiting"
        clock.advance(5)
        fake.last.succeed()
        stopped = service.stopService()
        fake.last.lose()
    assert outcome(stopped) is None
    failed = [
        str(e["log_failure"].value)
        for e in caught
        if e.get("reconnectEvent") == "callbackFailed"
    ]
    assert failed == ["openSession", "connectionEnded", "close"]


def test_lostGoesLastForItsOwnClientOnly() -> None:
    """
    The endpoint one client just lost goes last in that client's next
    pass, and in no other client's.
    """
    endpoint, fakes, clock = failover(3)
    services = twoStartedOver(endpoint, clock)
    for attempt in fakes[0].attempts:
        attempt.succeed()
    clock.advance(2)
    fakes[0].attempts[0].lose()
    # Before the first client's next pass, the second starts again.
    services[1].stopService()
    fakes[0].attempts[1].lose()
    services[1].startService()
    assert started(fakes) == [3, 0, 0]
    fakes[0].last.succeed()
    clock.advance(0)
    assert started(fakes) == [3, 1, 0]
    fakes[1].last.succeed()
    assert [s.state for s in services] == ["connected", "connected"]
    for service in services:
        service.stopService()
    fakes[1].last.lose()
    fakes[0].last.lose()


def test_passOverServersThatChange() -> None:
    """
    What an endpoint whose servers change from pass to pass (DNS SRV) is
    given: L{runPass} over candidates made for each pass, with records from
    one shared L{HealthBook} keyed by server, so that a server's health
    carries over while it is listed, and L{HealthBook.retain} forgets the
    servers no longer listed.
    """
    from reconnect._pass import HealthBook, runPass

    clock = Clock()
    health = HealthBook(clock, "srv(test)", failuresBeforeCooling=1)
    servers = {key: FakeEndpoint() for key in ("a", "b", "c")}

    def candidates(keys: str) -> list[Any]:
        health.retain(keys)
        return [(servers[k], health.record(k, f"tcp:{k}:1")) for k in keys]

    won: list[str] = []
    factory = Factory.forProtocol(Protocol)
    passing = runPass(
        health.passOrder(candidates("ab")),
        factory,
        health,
        STAGGER,
        lambda record: won.append(record.description),
    )
    servers["a"].last.fail()
    servers["b"].last.succeed()
    assert passing.called and won == ["tcp:b:1"]
    cooling = health.record("a", "tcp:a:1")
    assert cooling.coolingUntil is not None
    order = health.passOrder(candidates("cab"))
    assert [record.key for _, record in order] == ["c", "b", "a"]
    health.retain("bc")
    assert health.record("a", "tcp:a:1").failures == 0
    failed = runPass([], factory, health, STAGGER)
    assert isinstance(outcome(failed).value, AllEndpointsFailed)
    assert clock.getDelayedCalls() == []


# -- over TLS: the pass is won once the handshake is done ---------------------


class RefusedCertificate(Exception):
    """
    Stands for the TLS error a failed handshake ends a connection with.
    """


def serviceOverFailover(
    **kwargs: Any,
) -> tuple[ClientService, FailoverEndpoint, list[FakeEndpoint], Clock]:
    endpoint, endpoints, clock = failover(**kwargs)
    service = ClientService(
        endpoint, Factory.forProtocol(Protocol), clock=clock, retryPolicy=lambda n: 1.0
    )
    service.startService()
    return service, endpoint, endpoints, clock


def test_failedHandshakeGoesOnInTheSamePass() -> None:
    """
    A server whose TLS handshake fails (its certificate is not accepted)
    fails in the pass, as one that refused: it is recorded as failed, and
    the same pass goes on to the next server, through which the service
    connects, with no failed attempt counted.  A server counts as
    connected, in its record, once its handshake is done.
    """
    service, endpoint, endpoints, clock = serviceOverFailover()
    connected = service.whenConnected(failAfterFailures=1)
    endpoints[0].last.succeed(tls=True)
    assert [h.connects for h in endpoint.health()] == [0, 0, 0]
    assert started(endpoints) == [1, 0, 0]
    clock.advance(STAGGER)
    assert started(endpoints) == [1, 0, 0]  # the pass waits for the handshake
    endpoints[0].last.lose(RefusedCertificate())
    assert started(endpoints) == [1, 1, 0]
    assert not connected.called
    endpoints[1].last.succeed(tls=True)
    endpoints[1].last.completeHandshake()
    assert outcome(connected) is not None
    assert endpoint.current == endpoint.health()[1].description
    assert [(h.failuresInARow, h.connects) for h in endpoint.health()] == [
        (1, 0),
        (0, 1),
        (0, 0),
    ]
    assert service.stats().failures == 0
    service.stopService()
    endpoints[1].last.lose()
    assert not clock.getDelayedCalls()


def test_failedHandshakesEveryServerFailTheAttempt() -> None:
    """
    When every server's handshake fails, the pass fails once, with each
    server's error, and the service counts one failed attempt.
    """
    service, endpoint, endpoints, clock = serviceOverFailover()
    connected = service.whenConnected(failAfterFailures=1)
    for fake in endpoints:
        fake.last.succeed(tls=True)
        fake.last.lose(RefusedCertificate(fake))
    failure = outcome(connected)
    assert failure.check(AllEndpointsFailed)
    assert [f.value.args for _, f in failure.value.failures] == [
        (fake,) for fake in endpoints
    ]
    assert service.stats().failures == 1
    assert [h.failuresInARow for h in endpoint.health()] == [1, 1, 1]
    service.stopService()
    assert not clock.getDelayedCalls()


def test_stopWhileThePassWaitsForTheHandshake() -> None:
    """
    Stopping the service while the pass waits for a server's handshake
    calls the pass off: the connection is aborted, no other server is
    tried, and the service stops once it has ended.
    """
    service, endpoint, endpoints, clock = serviceOverFailover()
    endpoints[0].last.succeed(tls=True)
    stopped = service.stopService()
    transport = endpoints[0].last.transport
    assert transport is not None and transport.disconnecting
    endpoints[0].last.lose(RefusedCertificate())
    assert started(endpoints) == [1, 0, 0]
    assert stopped.called
    assert service.state == "stopped"
    assert not clock.getDelayedCalls()


def test_plainConnectIsWonAtConnect() -> None:
    """
    A plain C{connect()} with a factory of the caller's is won when the
    server connects, as with any endpoint: nothing tells the pass of the
    handshake.
    """
    endpoint, endpoints, clock = failover()
    connecting = endpoint.connect(Factory.forProtocol(Protocol))
    endpoints[0].last.succeed(tls=True)
    assert outcome(connecting) is not None
    assert endpoint.health()[0].connects == 1
