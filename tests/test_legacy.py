"""
Tests for L{reconnect.ReconnectingClientFactory} and
L{reconnect.EndpointConnector} on a fake clock, with fake connectors and a
fake endpoint.
"""

from __future__ import annotations

import math
import pickle
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import error
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConnector
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.protocol import (
    ReconnectingClientFactory as TwistedReconnectingClientFactory,
)
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import implementer
from zope.interface.verify import verifyObject

from reconnect import (
    EndpointConnector,
    ISessionEndpoint,
    ReconnectingClientFactory,
    backoffPolicy,
    limitRetries,
)
from reconnect._legacy import EndpointAddress
from reconnect.testing import FakeEndpoint


@implementer(IConnector)
class FakeConnector:
    """
    A connector whose state the test sets, which counts connects and tells
    the factory of a stopped attempt as the reactor's connectors do.
    """

    def __init__(self, factory: Optional[ClientFactory] = None) -> None:
        self.factory = factory
        self.state = "disconnected"
        self.connects = 0
        self.reactor: Any = None

    def connect(self) -> None:
        self.connects += 1
        self.state = "connecting"

    def stopConnecting(self) -> None:
        if self.state != "connecting":
            raise error.NotConnectingError()
        self.state = "disconnected"
        assert self.factory is not None
        self.factory.clientConnectionFailed(self, Failure(error.UserError()))

    def disconnect(self) -> None:
        self.state = "disconnected"

    def failed(self) -> None:
        """
        The attempt failed: as the reactor's connectors do, be
        disconnected before the factory hears of it.
        """
        self.state = "disconnected"
        assert self.factory is not None
        self.factory.clientConnectionFailed(self, Failure(Exception()))

    def getDestination(self) -> Any:
        return None


def quiet(**attributes: Any) -> tuple[ReconnectingClientFactory, Clock, FakeConnector]:
    factory = ReconnectingClientFactory()
    factory.noisy = False
    factory.clock = Clock()
    for name, value in attributes.items():
        setattr(factory, name, value)
    return factory, factory.clock, FakeConnector(factory)


def scheduledDelays(clock: Clock) -> list[float]:
    return [call.getTime() - clock.seconds() for call in clock.getDelayedCalls()]


# -- ReconnectingClientFactory ------------------------------------------------


def test_defaults() -> None:
    """
    The class attributes have Twisted's names and defaults.
    """
    f = ReconnectingClientFactory
    assert f.initialDelay == 1.0
    assert f.maxDelay == 3600
    assert f.factor == pytest.approx(math.e)
    assert f.jitter == 0.11962656492
    assert f.maxRetries is None
    assert f.continueTrying == 1
    assert f.retries == 0
    assert f.delay == 1.0
    assert f.connector is None
    assert f.clock is None
    assert ReconnectingClientFactory().noisy is True
    assert issubclass(f, ClientFactory)


def test_sameAttributesAsTwisted() -> None:
    """
    Every public attribute and method of Twisted's factory is here too.
    """
    theirs = {n for n in dir(TwistedReconnectingClientFactory) if not n.startswith("_")}
    ours = set(dir(ReconnectingClientFactory))
    assert theirs <= ours


@pytest.mark.parametrize("event", ["clientConnectionFailed", "clientConnectionLost"])
def test_retryAfterGrowingDelay(event: str) -> None:
    """
    A failure or a loss schedules a reconnect after C{initialDelay}; each
    further one waits C{factor} times longer, up to C{maxDelay}.
    """
    factory, clock, connector = quiet(jitter=0, factor=2.0, maxDelay=5.0)
    expected = [1.0, 2.0, 4.0, 5.0, 5.0]
    for n, delay in enumerate(expected):
        connector.state = "disconnected"
        getattr(factory, event)(connector, Failure(error.ConnectionRefusedError()))
        assert scheduledDelays(clock) == [delay]
        assert factory.retries == n + 1
        clock.advance(delay)
        assert connector.connects == n + 1
    assert factory.connector is connector


@settings(max_examples=50)
@given(st.integers(min_value=0, max_value=2**32), st.floats(0.5, 50.0))
def test_jitteredDelayBounded(seed: int, jitter: float) -> None:
    """
    However wide the jitter, the delay is never negative (the reactor would
    refuse it) and never above C{maxDelay}.
    """
    import random

    random.seed(seed)
    factory, clock, connector = quiet(jitter=jitter, maxDelay=30.0)
    for _ in range(20):
        connector.failed()
        (delay,) = scheduledDelays(clock)
        assert 0.0 <= delay <= 30.0 + 1e-9
        clock.advance(delay)


def test_maxRetries() -> None:
    factory, clock, connector = quiet(maxRetries=2, jitter=0)
    for _ in range(2):
        connector.failed()
        clock.advance(100)
    connector.failed()
    assert clock.getDelayedCalls() == []
    assert connector.connects == 2


def test_retryWithoutConnector() -> None:
    factory, clock, connector = quiet()
    with pytest.raises(ValueError, match="no connector"):
        factory.retry()


def test_stopTryingWhileWaiting() -> None:
    factory, clock, connector = quiet()
    connector.failed()
    factory.stopTrying()
    assert clock.getDelayedCalls() == []
    clock.advance(10_000)
    assert connector.connects == 0
    assert not factory.continueTrying


def test_stopTryingWhileConnecting() -> None:
    """
    stopTrying stops the attempt under way; the resulting failure schedules
    nothing.
    """
    factory, clock, connector = quiet()
    connector.failed()
    clock.advance(100)
    assert connector.state == "connecting"
    factory.stopTrying()
    assert connector.state == "disconnected"
    assert clock.getDelayedCalls() == []


def test_stopTryingWhileConnected() -> None:
    factory, clock, connector = quiet()
    connector.failed()
    clock.advance(100)
    connector.state = "connected"
    factory.stopTrying()
    factory.clientConnectionLost(connector, Failure(error.ConnectionDone()))
    assert clock.getDelayedCalls() == []
    assert connector.connects == 1


def test_resetDelay() -> None:
    factory, clock, connector = quiet(jitter=0)
    for _ in range(3):
        connector.failed()
        clock.advance(1000)
    factory.stopTrying()
    factory.resetDelay()
    assert (factory.delay, factory.retries, factory.continueTrying) == (1.0, 0, 1)
    connector.failed()
    assert scheduledDelays(clock) == [1.0]
    factory.stopTrying()


def test_resetDelayOnConnect() -> None:
    """
    With C{resetDelayOnConnect}, building a protocol (a connection was made)
    resets the delay, so a protocol need not call L{resetDelay} itself.
    """
    factory, clock, connector = quiet(jitter=0, resetDelayOnConnect=True)
    factory.protocol = Protocol
    for _ in range(3):
        connector.failed()
        clock.advance(1000)
    assert factory.retries == 3
    factory.buildProtocol(None)
    assert (factory.delay, factory.retries) == (1.0, 0)
    plain, _, _ = quiet(jitter=0)
    plain.protocol = Protocol
    plain.retries = 3
    plain.buildProtocol(None)
    assert plain.retries == 3


def test_retryPolicy() -> None:
    """
    A C{retryPolicy} decides the delays from the retry count; when it gives
    up, no retry is scheduled.
    """
    factory, clock, connector = quiet(
        retryPolicy=limitRetries(backoffPolicy(jitter=lambda: 0.0), 2)
    )
    connector.failed()
    assert scheduledDelays(clock) == [1.5]
    clock.advance(1.5)
    connector.failed()
    assert scheduledDelays(clock) == [2.25]
    clock.advance(2.25)
    connector.failed()
    assert clock.getDelayedCalls() == []


def test_clockDefaultsToConnectorsReactor() -> None:
    factory = ReconnectingClientFactory()
    factory.noisy = False
    connector = FakeConnector(factory)
    connector.reactor = Clock()
    connector.failed()
    assert len(connector.reactor.getDelayedCalls()) == 1
    factory.stopTrying()


def test_noisyLogs() -> None:
    from twisted.logger import formatEvent, globalLogPublisher

    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        factory, clock, connector = quiet(jitter=0, maxRetries=1)
        factory.noisy = True
        connector.failed()
        clock.advance(10)
        connector.failed()
        factory.stopTrying()
        factory.retry(connector)
    finally:
        globalLogPublisher.removeObserver(events.append)
    text = [formatEvent(e) for e in events]
    assert any("will retry in 1 seconds" in t for t in text)
    assert any("after 2 retries" in t for t in text)
    assert any("on explicit request" in t for t in text)


class Configured(ReconnectingClientFactory):
    initialDelay = 2.0


def test_pickleRoundTrip() -> None:
    """
    Pickling keeps how to reconnect and drops where it stands: the
    unpickled factory starts as a fresh one.
    """
    factory = Configured()
    factory.noisy = False
    factory.maxDelay = 42
    factory.clock = Clock()
    connector = FakeConnector(factory)
    connector.failed()
    factory.stopTrying()
    copy = pickle.loads(pickle.dumps(factory))
    assert copy.maxDelay == 42
    assert copy.initialDelay == 2.0
    assert copy.connector is None
    assert copy.clock is None
    assert copy.retries == 0
    assert copy.continueTrying == 1
    assert copy.delay == ReconnectingClientFactory.delay
    assert copy._callID is None


def test_pickleWithPendingCall() -> None:
    """
    A factory with a retry scheduled pickles; the call is not carried over.
    """
    factory, clock, connector = quiet()
    connector.failed()
    state = factory.__getstate__()
    for name in ("_callID", "clock", "connector", "retries", "delay"):
        assert name not in state
    factory.stopTrying()


# -- EndpointConnector --------------------------------------------------------


class RecordingClientFactory(ClientFactory):
    protocol = Protocol

    def __init__(self) -> None:
        self.events: list[Any] = []

    def startFactory(self) -> None:
        self.events.append("startFactory")

    def stopFactory(self) -> None:
        self.events.append("stopFactory")

    def startedConnecting(self, connector: IConnector) -> None:
        self.events.append("startedConnecting")

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        self.events.append(("failed", reason.type))

    def clientConnectionLost(self, connector: IConnector, reason: Failure) -> None:
        self.events.append(("lost", reason.type))


def test_connectorProvidesIConnector() -> None:
    assert verifyObject(IConnector, EndpointConnector(FakeEndpoint(), ClientFactory()))


def test_connectorSuccessAndLoss() -> None:
    endpoint = FakeEndpoint()
    factory = RecordingClientFactory()
    connector = EndpointConnector(endpoint, factory)
    connector.connect()
    assert connector.state == "connecting"
    assert factory.events == ["startFactory", "startedConnecting"]
    endpoint.last.succeed()
    assert connector.state == "connected"
    connector.disconnect()
    assert endpoint.last.transport.disconnecting
    endpoint.last.lose()
    assert connector.state == "disconnected"
    assert factory.events[2:] == [("lost", error.ConnectionDone), "stopFactory"]


def test_connectorFailure() -> None:
    endpoint = FakeEndpoint()
    factory = RecordingClientFactory()
    connector = EndpointConnector(endpoint, factory)
    connector.connect()
    endpoint.last.fail()
    assert connector.state == "disconnected"
    assert factory.events[2:] == [
        ("failed", error.ConnectionRefusedError),
        "stopFactory",
    ]


def test_stopConnectingFailsWithUserError() -> None:
    endpoint = FakeEndpoint()
    factory = RecordingClientFactory()
    connector = EndpointConnector(endpoint, factory)
    connector.connect()
    connector.stopConnecting()
    assert endpoint.last.cancelled
    assert factory.events[2:] == [("failed", error.UserError), "stopFactory"]
    with pytest.raises(error.NotConnectingError):
        connector.stopConnecting()


def test_disconnectWhileConnectingStops() -> None:
    endpoint = FakeEndpoint()
    factory = RecordingClientFactory()
    connector = EndpointConnector(endpoint, factory)
    connector.connect()
    connector.disconnect()
    assert endpoint.last.cancelled
    assert factory.events[-2:] == [("failed", error.UserError), "stopFactory"]


@pytest.mark.parametrize("connected", [False, True])
def test_connectInWrongState(connected: bool) -> None:
    endpoint = FakeEndpoint()
    connector = EndpointConnector(endpoint, RecordingClientFactory())
    connector.connect()
    if connected:
        endpoint.last.succeed()
    with pytest.raises(RuntimeError):
        connector.connect()


def test_uncancellableAttemptIsAbortedWhenItConnects() -> None:
    """
    An endpoint whose attempt cannot be cancelled may connect after
    stopConnecting: that connection is aborted, and the factory hears
    nothing more.
    """

    class Uncancellable(FakeEndpoint):
        def connect(self, protocolFactory: Any) -> Deferred[Any]:
            super().connect(protocolFactory)
            self.last.deferred = Deferred()
            return self.last.deferred

    endpoint = Uncancellable()
    factory = RecordingClientFactory()
    connector = EndpointConnector(endpoint, factory)
    connector.connect()
    attempt = endpoint.last
    connector.stopConnecting()
    attempt.succeed()
    assert attempt.transport.disconnected
    assert connector.state == "disconnected"
    assert factory.events[2:] == [("failed", error.UserError), "stopFactory"]


def test_getDestination() -> None:
    endpoint = FakeEndpoint()
    connector = EndpointConnector(endpoint, RecordingClientFactory())
    assert connector.getDestination() == EndpointAddress(endpoint)
    connector.connect()
    endpoint.last.succeed()
    assert connector.getDestination() == endpoint.last.transport.getPeer()
    assert "connected" in repr(connector)


def destinationCases() -> list[tuple[str, Any, Any]]:
    from twisted.internet.address import IPv4Address, IPv6Address
    from twisted.internet.endpoints import (
        HostnameEndpoint,
        TCP4ClientEndpoint,
        TCP6ClientEndpoint,
        UNIXClientEndpoint,
        clientFromString,
    )
    from twisted.internet.testing import MemoryReactor

    reactor = MemoryReactor()
    return [
        (
            "tcp4",
            TCP4ClientEndpoint(reactor, "10.0.0.1", 7001),
            IPv4Address("TCP", "10.0.0.1", 7001),
        ),
        (
            "tcp6",
            TCP6ClientEndpoint(reactor, "::1", 7002),
            IPv6Address("TCP", "::1", 7002),
        ),
        (
            "hostname",
            HostnameEndpoint(reactor, "db.example", 7003),
            IPv4Address("TCP", "db.example", 7003),
        ),
        (
            "tls",
            clientFromString(reactor, "tls:example.com:443"),
            IPv4Address("TCP", "example.com", 443),
        ),
        ("unix", UNIXClientEndpoint(reactor, "/tmp/sock"), None),
        ("other", FakeEndpoint(), None),
    ]


@pytest.mark.parametrize(
    "endpoint, expected",
    [case[1:] for case in destinationCases()],
    ids=[case[0] for case in destinationCases()],
)
def test_getDestinationHasHostAndPort(endpoint: Any, expected: Any) -> None:
    """
    Not connected, the destination of a connector over Twisted's TCP and
    hostname endpoints, TLS-wrapped or not, has the C{host} and C{port}
    legacy code reads (as C{reactor.connectTCP}'s connector's has); over
    any other endpoint, it is an L{EndpointAddress}.
    """
    destination = EndpointConnector(endpoint, ClientFactory()).getDestination()
    if expected is None:
        assert destination == EndpointAddress(endpoint)
    else:
        assert destination == expected
        assert (destination.host, destination.port) == (  # type: ignore[attr-defined]
            expected.host,
            expected.port,
        )


def test_reconnectingFactoryOverEndpoint() -> None:
    """
    A L{ReconnectingClientFactory} retries over an endpoint: failures and
    losses reach it, and after stopTrying and disconnect nothing more
    happens.
    """
    clock = Clock()
    endpoint = FakeEndpoint()
    factory = ReconnectingClientFactory.forProtocol(Protocol)
    factory.noisy = False
    factory.jitter = 0
    connector = EndpointConnector(endpoint, factory, reactor=clock)
    connector.connect()
    endpoint.last.fail()
    clock.advance(1.0)
    assert len(endpoint.attempts) == 2
    endpoint.last.succeed()
    factory.resetDelay()
    endpoint.last.lose()
    clock.advance(1.0)
    assert len(endpoint.attempts) == 3
    endpoint.last.succeed()
    factory.stopTrying()
    connector.disconnect()
    endpoint.last.lose()
    clock.advance(10_000)
    assert len(endpoint.attempts) == 3
    assert clock.getDelayedCalls() == []


def test_connectorFailsBack() -> None:
    """
    Over a L{FailoverEndpoint} with C{failback}, an L{EndpointConnector} on
    a backup moves back once the preferred endpoint answers a probe: it
    closes its connection (the factory hears C{clientConnectionLost}, and
    is not stopped) and connects again at once, to the preferred one.
    Nothing stays scheduled, and once the factory is stopped the endpoint
    keeps nothing of the connector.
    """
    from reconnect import FailoverEndpoint

    clock = Clock()
    preferred, backup = FakeEndpoint(), FakeEndpoint()
    endpoint = FailoverEndpoint([preferred, backup], failback=10.0, clock=clock)
    factory = RecordingClientFactory()
    connector = EndpointConnector(endpoint, factory, reactor=clock)
    connector.connect()
    preferred.last.fail()
    backup.last.succeed()
    assert connector.state == "connected"
    clock.advance(10)
    assert len(preferred.attempts) == 2
    preferred.last.succeed()  # the probe: closed at once
    assert backup.last.transport.disconnecting
    backup.last.lose()
    assert connector.state == "connecting"
    assert len(preferred.attempts) == 3
    preferred.last.succeed()
    assert connector.state == "connected"
    assert endpoint.current == repr(preferred)
    assert factory.events == [
        "startFactory",
        "startedConnecting",
        ("lost", error.ConnectionDone),
        "startedConnecting",
    ]
    assert clock.getDelayedCalls() == []
    connector.disconnect()
    preferred.last.lose()
    assert factory.events[-1] == "stopFactory"
    assert clock.getDelayedCalls() == []


def movedBack(
    factory: ClientFactory,
) -> tuple[Clock, FakeEndpoint, FakeEndpoint, EndpointConnector]:
    """
    C{factory} over an L{EndpointConnector} on a C{FailoverEndpoint}
    (failback after 10 s) that failed over to its backup and has just moved
    back: the preferred endpoint's connection is made, the backup's lost.
    """
    from reconnect import FailoverEndpoint

    clock = Clock()
    preferred, backup = FakeEndpoint(), FakeEndpoint()
    endpoint = FailoverEndpoint([preferred, backup], failback=10.0, clock=clock)
    connector = EndpointConnector(endpoint, factory, reactor=clock)
    connector.connect()
    preferred.last.fail()
    backup.last.succeed()
    clock.advance(10)
    preferred.last.succeed()
    backup.last.lose()
    return clock, preferred, backup, connector


def test_reconnectingFactoryFailsBackOnce() -> None:
    """
    A L{ReconnectingClientFactory} over a connector that moves back makes
    no extra attempt: the retry it schedules on the loss finds the
    connector already connecting, and does nothing.
    """
    factory = ReconnectingClientFactory.forProtocol(Protocol)
    factory.noisy = False
    factory.jitter = 0
    clock, preferred, backup, connector = movedBack(factory)
    preferred.last.succeed()
    assert connector.state == "connected"
    clock.advance(100)
    assert (len(preferred.attempts), len(backup.attempts)) == (3, 1)
    factory.stopTrying()
    connector.disconnect()
    preferred.last.lose()
    assert clock.getDelayedCalls() == []


def test_connectorStoppingTryingDoesNotMove() -> None:
    """
    A factory that stops trying when it hears of the loss is not connected
    again by a failback move.
    """

    class Quitter(ReconnectingClientFactory):
        noisy = False

        def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
            self.stopTrying()

    clock, preferred, backup, connector = movedBack(Quitter.forProtocol(Protocol))
    assert connector.state == "disconnected"
    assert len(preferred.attempts) == 2
    assert clock.getDelayedCalls() == []


# ------------------------------------ the endpoint session across retries


@implementer(ISessionEndpoint)
class SessionsKept:
    """
    A session endpoint over one fake endpoint that records when sessions
    open and close, and what each was told.
    """

    failsOver = False

    def __init__(self) -> None:
        self.fake = FakeEndpoint()
        self.events: list[str] = []

    def connect(self, factory: Any) -> Any:
        return self.fake.connect(factory)

    def openSession(self, move: Any) -> Any:
        self.events.append("open")
        owner = self

        class Session:
            def connect(self, factory: Any) -> Any:
                return owner.fake.connect(factory)

            def connectionEnded(self, secondsUp: float) -> None:
                owner.events.append("ended")

            def close(self) -> None:
                owner.events.append("close")

        return Session()


def _retrying(clock: Clock, **attributes: Any) -> ReconnectingClientFactory:
    factory = ReconnectingClientFactory.forProtocol(Protocol)
    factory.noisy = False
    factory.jitter = 0
    factory.clock = clock
    for name, value in attributes.items():
        setattr(factory, name, value)
    return factory


@pytest.mark.parametrize(
    "factoryClass", [ReconnectingClientFactory, TwistedReconnectingClientFactory]
)
def test_lostServerGoesLastAcrossAReconnectingFactorysRetry(factoryClass: Any) -> None:
    """
    Over a L{FailoverEndpoint}, an L{EndpointConnector} whose reconnecting
    factory (ours or Twisted's) retries after losing a steady connection
    tries the other server first, as a L{ClientService} does: its session
    (which remembers the lost server) is kept across the retry, though the
    factory is stopped and started again around it.
    """
    from reconnect import FailoverEndpoint

    clock = Clock()
    a, b = FakeEndpoint(), FakeEndpoint()
    endpoint = FailoverEndpoint([a, b], clock=clock)
    factory = factoryClass.forProtocol(Protocol)
    factory.noisy = False
    factory.jitter = 0
    factory.clock = clock
    connector = EndpointConnector(endpoint, factory, reactor=clock)
    connector.connect()
    a.last.succeed()
    clock.advance(5)
    a.last.lose()
    assert (len(a.attempts), len(b.attempts)) == (1, 0)
    # The factory's first delay differs between Twisted releases (24.7
    # grows it before the first retry): step until the retry has come.
    for _ in range(int(factory.maxDelay * 10)):
        if len(a.attempts) + len(b.attempts) > 1:
            break
        clock.advance(0.1)
    assert (len(a.attempts), len(b.attempts)) == (1, 1)
    b.last.succeed()
    factory.stopTrying()
    connector.disconnect()
    b.last.lose()
    assert clock.getDelayedCalls() == []


def test_sessionKeptWhileARetryIsPending() -> None:
    """
    The session opens once, is told of each loss, stays open across the
    factory's retries (the factory is still stopped and started around
    each, as over the reactor's connectors), and is closed once the
    factory stops trying during a retry's delay.
    """
    clock = Clock()
    endpoint = SessionsKept()
    factory = _retrying(clock)
    starts: list[str] = []
    factory.startFactory = lambda: starts.append("start")  # type: ignore[method-assign]
    factory.stopFactory = lambda: starts.append("stop")  # type: ignore[method-assign]
    connector = EndpointConnector(endpoint, factory, reactor=clock)
    connector.connect()
    endpoint.fake.last.fail()
    clock.advance(factory.initialDelay)
    endpoint.fake.last.succeed()
    clock.advance(5)
    endpoint.fake.last.lose()
    assert endpoint.events == ["open", "ended"]
    assert starts == ["start", "stop", "start", "stop"]
    factory.stopTrying()
    assert endpoint.events == ["open", "ended", "close"]
    assert clock.getDelayedCalls() == []


@pytest.mark.parametrize("how", ["maxRetries", "notReconnecting", "continueTrying"])
def test_sessionClosedWhenNoRetryFollows(how: str) -> None:
    """
    The session is closed when no retry follows: the factory gave up
    (C{maxRetries}), is not a reconnecting one, or had C{continueTrying}
    cleared without C{stopTrying} (closed when its retry comes due).
    """
    clock = Clock()
    endpoint = SessionsKept()
    factory: Any
    if how == "notReconnecting":
        factory = RecordingClientFactory()
    else:
        factory = _retrying(clock, maxRetries=0 if how == "maxRetries" else None)
    connector = EndpointConnector(endpoint, factory, reactor=clock)
    connector.connect()
    if how == "continueTrying":
        endpoint.fake.last.fail()
        assert endpoint.events == ["open"]
        factory.continueTrying = 0
        clock.advance(factory.initialDelay)
    else:
        endpoint.fake.last.fail()
    assert endpoint.events == ["open", "close"]
    assert clock.getDelayedCalls() == []
    connector.connect()
    assert endpoint.events == ["open", "close", "open"]


def test_disconnectWhileDisconnectedClosesTheSession() -> None:
    clock = Clock()
    endpoint = SessionsKept()
    factory = _retrying(clock)
    connector = EndpointConnector(endpoint, factory, reactor=clock)
    connector.connect()
    endpoint.fake.last.fail()
    assert endpoint.events == ["open"]
    connector.disconnect()
    assert endpoint.events == ["open", "close"]
    with pytest.raises(error.NotConnectingError):
        connector.stopConnecting()
    assert endpoint.events == ["open", "close"]
    factory.stopTrying()
