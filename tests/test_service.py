"""
Tests for L{reconnect.ClientService}: every edge of its machine, the points
where it must behave as Twisted's does, and what it does better.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Optional

import pytest
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.error import (
    ConnectionDone,
    ConnectionRefusedError,
    DNSLookupError,
)
from twisted.internet.interfaces import (
    IFileDescriptorReceiver,
    IHalfCloseableProtocol,
    IProtocol,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import implementer

import reconnect._machine
from reconnect import (
    AttemptTimedOut,
    ClientService,
    GaveUpConnecting,
    limitRetries,
)
from reconnect._machine import _ClientMachine
from reconnect.testing import FakeEndpoint

LONG = 1000.0


def fixedDelay(attempt: int) -> float:
    return 1.0


class Recorder(Protocol):
    """
    A protocol that remembers what happened to it.
    """

    def __init__(self) -> None:
        self.made = 0
        self.lostReason: Optional[Failure] = None

    def connectionMade(self) -> None:
        self.made += 1

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lostReason = reason


class RecordingFactory(Factory):
    protocol = Recorder

    def __init__(self) -> None:
        self.built: list[Recorder] = []
        self.starts = 0
        self.stops = 0

    def buildProtocol(self, addr: Any) -> Recorder:
        protocol = Recorder()
        protocol.factory = self
        self.built.append(protocol)
        return protocol

    def doStart(self) -> None:
        self.starts += 1

    def doStop(self) -> None:
        self.stops += 1


class Harness:
    """
    A L{ClientService} on a L{Clock} and a L{FakeEndpoint}.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.clock = Clock()
        self.endpoint = FakeEndpoint()
        self.factory = RecordingFactory()
        kwargs.setdefault("retryPolicy", fixedDelay)
        self.service = ClientService(
            self.endpoint, self.factory, clock=self.clock, **kwargs
        )

    def start(self) -> Harness:
        self.service.startService()
        return self

    def connect(self) -> Recorder:
        """
        Make the current attempt succeed; return the user's protocol.
        """
        self.endpoint.last.succeed()
        return self.factory.built[-1]

    @property
    def machine(self) -> Any:
        return self.service._machine

    def feed(self, name: str, *args: object) -> None:
        """
        Send one input straight to the machine.
        """
        self.machine.dispatch(getattr(self.machine, name), *args)


@pytest.fixture(params=["compiled", "automat"])
def harnesses(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[Harness]]:
    """
    Harnesses made by a test; when it ends, each must have nothing left on
    its clock once stopped.

    Every test runs twice: with the machine's compiled inputs, and with
    automat's own, which must behave the same.
    """
    compiled = reconnect._machine._compiled
    if request.param == "automat" and compiled is not None:
        for name, original in compiled.replaced.items():
            monkeypatch.setattr(_ClientMachine, name, original)
    made: list[Harness] = []
    yield made
    for harness in made:
        stopped = harness.service.stopService()
        if harness.service.state == "disconnecting":
            for attempt in harness.endpoint.attempts:
                if attempt.transport is not None and not attempt.lost:
                    attempt.lose()
        assert stopped.called
        assert harness.clock.getDelayedCalls() == []


@pytest.fixture
def make(harnesses: list[Harness]) -> Any:
    def make(**kwargs: Any) -> Harness:
        harness = Harness(**kwargs)
        harnesses.append(harness)
        return harness

    return make


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def result(d: Deferred[Any]) -> Any:
    """
    The result of a fired L{Deferred}; fails the test if it has not fired.
    """
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "Deferred has not fired"
    if isinstance(results[0], Failure):
        d.addErrback(lambda _: None)
    return results[0]


def failureOf(d: Deferred[Any], *types: type[BaseException]) -> Failure:
    outcome = result(d)
    assert isinstance(outcome, Failure), outcome
    assert outcome.check(*types), outcome
    return outcome


# -- init -------------------------------------------------------------------


def test_initStartConnects(make: Any) -> None:
    """
    init --start--> connecting: one attempt is made.
    """
    h = make()
    assert h.service.state == "init"
    h.start()
    assert h.service.state == "connecting"
    assert len(h.endpoint.attempts) == 1


def test_initStop(make: Any) -> None:
    """
    init --stop--> stopped: the Deferred fires at once, and later waiters
    fail with L{CancelledError}.
    """
    h = make()
    assert result(h.service.stopService()) is None
    assert h.service.state == "stopped"
    failureOf(h.service.whenConnected(), CancelledError)


def test_initWhenConnected(make: Any) -> None:
    """
    init --whenConnected--> init: the waiter fires with the first connection
    once the service is started.
    """
    h = make()
    waiter = h.service.whenConnected()
    assert not waiter.called
    h.start()
    protocol = h.connect()
    assert result(waiter) is protocol


# -- connecting -------------------------------------------------------------


def test_connectingStartIsIgnored(make: Any) -> None:
    """
    connecting --start--> connecting: no second attempt; through the service,
    a duplicate start is logged as Twisted logs it.
    """
    h = make().start()
    h.feed("start")
    assert len(h.endpoint.attempts) == 1


def test_duplicateStartLogged(make: Any, logs: list[dict[str, Any]]) -> None:
    """
    A second C{startService} logs "Duplicate ClientService.startService"
    and makes no attempt.
    """
    from twisted.logger import formatEvent

    h = make().start()
    h.service.startService()
    assert len(h.endpoint.attempts) == 1
    messages = [formatEvent(e) for e in logs]
    assert any("Duplicate ClientService.startService" in m for m in messages)


def test_connectingStop(make: Any) -> None:
    """
    connecting --stop--> disconnecting --_connectionFailed--> stopped: the
    attempt is cancelled, the stop Deferred fires and waiters are cancelled.
    """
    h = make().start()
    waiter = h.service.whenConnected()
    stopped = h.service.stopService()
    assert h.endpoint.last.cancelled
    assert result(stopped) is None
    assert h.service.state == "stopped"
    failureOf(waiter, CancelledError)


def test_connectingWhenConnected(make: Any) -> None:
    """
    connecting --whenConnected--> connecting --_connectionMade--> connected:
    waiters fire with the user's protocol (not the proxy).
    """
    h = make().start()
    waiters = [h.service.whenConnected() for _ in range(3)]
    protocol = h.connect()
    assert h.service.state == "connected"
    assert [result(w) for w in waiters] == [protocol] * 3
    assert isinstance(protocol, Recorder)


def test_connectingFailedWaitsAndRetries(make: Any) -> None:
    """
    connecting --_connectionFailed--> waiting --_reconnect--> connecting: the
    delay comes from the policy, with the count of failures in a row.
    """
    seen: list[int] = []

    def policy(attempt: int) -> float:
        seen.append(attempt)
        return 5.0

    h = make(retryPolicy=policy).start()
    h.endpoint.last.fail()
    assert h.service.state == "waiting"
    h.clock.advance(4.9)
    assert len(h.endpoint.attempts) == 1
    h.clock.advance(0.1)
    assert h.service.state == "connecting"
    h.endpoint.last.fail()
    h.clock.advance(5)
    assert seen == [1, 2]
    assert len(h.endpoint.attempts) == 3


def test_connectingGiveUp(make: Any) -> None:
    """
    connecting --_giveUp--> gaveUp: when the policy returns L{None}, waiters
    fail with L{GaveUpConnecting} carrying the last failure, and nothing
    stays scheduled.
    """
    h = make(retryPolicy=limitRetries(fixedDelay, 1)).start()
    waiter = h.service.whenConnected()
    h.endpoint.last.fail()
    h.clock.advance(1)
    h.endpoint.last.fail(DNSLookupError("nowhere"))
    assert h.service.state == "gaveUp"
    assert h.clock.getDelayedCalls() == []
    gaveUp = failureOf(waiter, GaveUpConnecting).value
    assert gaveUp.failure.check(DNSLookupError)
    assert gaveUp.attempts == 2
    assert "nowhere" in str(gaveUp)


# -- waiting ----------------------------------------------------------------


def test_waitingStartIsIgnored(make: Any) -> None:
    h = make().start()
    h.endpoint.last.fail()
    h.feed("start")
    assert h.service.state == "waiting"
    assert len(h.endpoint.attempts) == 1


def test_waitingStop(make: Any) -> None:
    """
    waiting --stop--> stopped: the retry is called off at once.
    """
    h = make().start()
    waiter = h.service.whenConnected()
    h.endpoint.last.fail()
    assert result(h.service.stopService()) is None
    assert h.service.state == "stopped"
    assert h.clock.getDelayedCalls() == []
    failureOf(waiter, CancelledError)


def test_waitingWhenConnected(make: Any) -> None:
    h = make().start()
    h.endpoint.last.fail()
    waiter = h.service.whenConnected()
    h.clock.advance(1)
    protocol = h.connect()
    assert result(waiter) is protocol


# -- connected --------------------------------------------------------------


def test_connectedStartIsIgnored(make: Any) -> None:
    h = make().start()
    h.connect()
    h.feed("start")
    assert h.service.state == "connected"


def test_connectedStop(make: Any) -> None:
    """
    connected --stop--> disconnecting --_clientDisconnected--> stopped: the
    connection is closed, and the stop Deferred waits for it to end.
    """
    h = make().start()
    protocol = h.connect()
    stopped = h.service.stopService()
    assert h.endpoint.last.transport.disconnecting
    assert not stopped.called
    assert h.service.state == "disconnecting"
    h.endpoint.last.lose()
    assert result(stopped) is None
    assert h.service.state == "stopped"
    assert protocol.lostReason is not None


def test_connectedWhenConnected(make: Any) -> None:
    h = make().start()
    protocol = h.connect()
    assert result(h.service.whenConnected()) is protocol


def test_connectedLostReconnects(make: Any) -> None:
    """
    connected --_clientDisconnected--> waiting: the next connection is made
    after the policy's delay for one failure.
    """
    seen: list[int] = []
    h = make(retryPolicy=lambda n: seen.append(n) or 2.0).start()
    first = h.connect()
    h.endpoint.last.lose()
    assert h.service.state == "waiting"
    assert seen == [1]
    h.clock.advance(2)
    second = h.connect()
    assert first is not second
    assert result(h.service.whenConnected()) is second


def test_connectedGiveUp(make: Any) -> None:
    """
    connected --_giveUp--> gaveUp: a policy that allows no retry gives up
    when the connection ends.
    """
    h = make(retryPolicy=limitRetries(fixedDelay, 0)).start()
    h.connect()
    h.endpoint.last.lose()
    assert h.service.state == "gaveUp"
    failureOf(h.service.whenConnected(), GaveUpConnecting)


# -- disconnecting ----------------------------------------------------------


def test_disconnectingStartRestarts(make: Any) -> None:
    """
    disconnecting --start--> restarting --_clientDisconnected--> connecting:
    the old stop Deferred fires, and a new attempt is made.
    """
    h = make().start()
    h.connect()
    stopped = h.service.stopService()
    h.service.startService()
    assert h.service.state == "restarting"
    assert len(h.endpoint.attempts) == 1
    h.endpoint.attempts[0].lose()
    assert result(stopped) is None
    assert h.service.state == "connecting"
    assert len(h.endpoint.attempts) == 2


def test_disconnectingStopAgain(make: Any) -> None:
    """
    disconnecting --stop--> disconnecting: every stop Deferred fires once the
    connection ends.
    """
    h = make().start()
    h.connect()
    first = h.service.stopService()
    second = h.service.stopService()
    assert not first.called and not second.called
    h.endpoint.last.lose()
    assert result(first) is None and result(second) is None


def test_disconnectingWhenConnected(make: Any) -> None:
    h = make().start()
    h.connect()
    h.service.stopService()
    waiter = h.service.whenConnected()
    assert not waiter.called
    h.endpoint.last.lose()
    failureOf(waiter, CancelledError)


# -- restarting -------------------------------------------------------------


def test_restartingStop(make: Any) -> None:
    """
    restarting --stop--> disconnecting: stopping again cancels the restart.
    """
    h = make().start()
    h.connect()
    h.service.stopService()
    h.service.startService()
    stopped = h.service.stopService()
    assert h.service.state == "disconnecting"
    h.endpoint.last.lose()
    assert result(stopped) is None
    assert h.service.state == "stopped"
    assert len(h.endpoint.attempts) == 1


def test_restartingStart(make: Any) -> None:
    h = make().start()
    h.connect()
    h.service.stopService()
    h.service.startService()
    h.feed("start")
    assert h.service.state == "restarting"


def test_restartingWhenConnected(make: Any) -> None:
    """
    A waiter from while restarting gets the connection made after it.
    """
    h = make().start()
    h.connect()
    h.service.stopService()
    h.service.startService()
    waiter = h.service.whenConnected()
    h.endpoint.last.lose()
    assert not waiter.called
    protocol = h.connect()
    assert result(waiter) is protocol


def test_restartWhileConnecting(make: Any) -> None:
    """
    restarting --_connectionFailed--> connecting: stop and start while an
    attempt is under way cancel it and make a fresh one.  (Twisted's machine
    has no transition for this.)
    """
    h = make().start()
    stops: list[Deferred[None]] = []
    states: list[str] = []

    def stopAndStart() -> None:
        stops.append(h.service.stopService())
        h.service.startService()
        h.machine.dispatch(lambda: states.append(h.service.state))

    h.machine.dispatch(stopAndStart)
    assert states == ["restarting"]
    assert h.endpoint.attempts[0].cancelled
    assert result(stops[0]) is None
    assert h.service.state == "connecting"
    assert len(h.endpoint.attempts) == 2


# -- stopped and gaveUp -----------------------------------------------------


def test_stoppedStartConnectsAfresh(make: Any) -> None:
    """
    stopped --start--> connecting, with the failure count back at zero.
    """
    seen: list[int] = []
    h = make(retryPolicy=lambda n: seen.append(n) or 1.0).start()
    h.endpoint.last.fail()
    h.clock.advance(1)
    h.endpoint.last.fail()
    h.service.stopService()
    h.service.startService()
    h.endpoint.last.fail()
    assert seen == [1, 2, 1]


def test_stoppedStopAndWhenConnected(make: Any) -> None:
    h = make().start()
    h.service.stopService()
    assert result(h.service.stopService()) is None
    failureOf(h.service.whenConnected(), CancelledError)


def test_gaveUpThenStopAndStart(make: Any) -> None:
    """
    gaveUp --stop--> stopped --start--> connecting: after giving up the
    service can be stopped and started again; a start while given up
    changes nothing.
    """
    h = make(retryPolicy=limitRetries(fixedDelay, 0)).start()
    h.endpoint.last.fail()
    assert h.service.state == "gaveUp"
    h.feed("start")
    assert h.service.state == "gaveUp"
    assert result(h.service.stopService()) is None
    assert h.service.state == "stopped"
    h.service.startService()
    assert h.service.state == "connecting"
    assert len(h.endpoint.attempts) == 2


# -- compatibility with Twisted's ClientService -----------------------------


@pytest.mark.parametrize("failAfter", [1, 2, 3])
def test_failAfterFailures(make: Any, failAfter: int) -> None:
    """
    C{whenConnected(failAfterFailures=n)} fails with the n-th failure after
    the call, and the service keeps trying.
    """
    h = make().start()
    waiter = h.service.whenConnected(failAfterFailures=failAfter)
    for _ in range(failAfter - 1):
        h.endpoint.last.fail()
        assert not waiter.called
        h.clock.advance(1)
    h.endpoint.last.fail(DNSLookupError(str(failAfter)))
    failureOf(waiter, DNSLookupError)
    assert h.service.state == "waiting"


def test_failAfterFailuresNotCountingDisconnects(make: Any) -> None:
    """
    A lost connection is not a failed attempt for C{failAfterFailures}.
    """
    h = make().start()
    h.connect()
    h.endpoint.last.lose()
    waiter = h.service.whenConnected(failAfterFailures=1)
    assert not waiter.called
    h.clock.advance(1)
    h.endpoint.last.fail()
    failureOf(waiter, ConnectionRefusedError)


def test_retryMessageLogged(make: Any, logs: list[dict[str, Any]]) -> None:
    """
    Each retry, after a failed attempt or a lost connection, is logged with
    Twisted's sentence, word for word, followed by why.
    """
    from twisted.logger import formatEvent

    h = make().start()
    h.endpoint.last.fail()
    twisted = f"Scheduling retry 1 to connect {h.endpoint} in 1.0 seconds. "
    assert formatEvent(logs[-1]).startswith(twisted + "Attempt failed: ")
    h.clock.advance(1.0)
    h.endpoint.last.succeed()
    h.endpoint.last.lose()
    assert formatEvent(logs[-1]).startswith(twisted + "Connection lost: ")


def test_factoryStartAndStop(make: Any) -> None:
    """
    The factory handed to the endpoint passes C{doStart} and C{doStop}
    through to the user's factory.
    """
    h = make().start()
    passed = h.endpoint.last.factory
    passed.doStart()
    passed.doStop()
    assert (h.factory.starts, h.factory.stops) == (1, 1)


def test_markerInterfacesVisible(make: Any) -> None:
    """
    The protocol the reactor sees provides the half-close and
    file-descriptor interfaces that the user's protocol provides, and no
    others of theirs when it provides none.
    """

    @implementer(IHalfCloseableProtocol, IFileDescriptorReceiver)
    class Fancy(Protocol):
        pass

    h = make().start()
    h.factory.buildProtocol = lambda addr: Fancy()  # type: ignore[method-assign]
    proxy = h.endpoint.last.succeed()
    assert IHalfCloseableProtocol.providedBy(proxy)
    assert IFileDescriptorReceiver.providedBy(proxy)
    assert IProtocol.providedBy(proxy)
    h.endpoint.last.lose()
    h.clock.advance(1)
    h.factory.buildProtocol = lambda addr: Protocol()  # type: ignore[method-assign]
    plain = h.endpoint.last.succeed()
    assert not IHalfCloseableProtocol.providedBy(plain)
    assert IProtocol.providedBy(plain)


def test_proxyPassesDataAndAttributes(make: Any) -> None:
    h = make().start()
    proxy = h.endpoint.last.succeed()
    received: list[bytes] = []
    protocol = h.factory.built[-1]
    protocol.dataReceived = received.append  # type: ignore[method-assign]
    proxy.dataReceived(b"hello")
    assert received == [b"hello"]
    assert proxy.made == 1
    assert "Recorder" in repr(proxy)


def test_proxySetsAttributesOnTheProtocol(make: Any) -> None:
    """
    The proxy keeps no attributes of its own beyond its slots: what is set
    on it (by C{prepareConnection}, say) is set on the user's protocol, so
    the protocol C{whenConnected} hands out has it; deleting works the
    same way.
    """
    h = make().start()
    proxy = h.endpoint.last.succeed()
    proxy.greeting = "hello"
    protocol = h.factory.built[-1]
    assert protocol.greeting == "hello"
    assert h.service.whenConnected().result is protocol
    del proxy.greeting
    assert not hasattr(protocol, "greeting")
    assert type(proxy).__dictoffset__ == 0


def test_factoryReturningNoneRetries(make: Any) -> None:
    """
    A factory that builds no protocol makes the attempt fail; the service
    keeps trying, as Twisted's does.
    """
    h = make().start()
    h.factory.buildProtocol = lambda addr: None  # type: ignore[method-assign]
    with pytest.raises(ValueError):
        h.endpoint.last.succeed()
    assert h.service.state == "waiting"
    h.clock.advance(1)
    assert len(h.endpoint.attempts) == 2


def test_prepareConnectionCalledWithProtocol(make: Any) -> None:
    """
    C{prepareConnection} gets, as in Twisted, what the service's factory
    built: the proxy, which passes everything on to the user's protocol.
    Waiters get the user's protocol, only once its Deferred fires; its
    result is ignored.
    """
    preparing: Deferred[str] = Deferred()
    seen: list[object] = []

    def prepare(protocol: IProtocol) -> Deferred[str]:
        seen.append(protocol)
        return preparing

    h = make(prepareConnection=prepare).start()
    waiter = h.service.whenConnected()
    protocol = h.connect()
    [proxy] = seen
    assert proxy._protocol is protocol
    assert proxy.made == protocol.made == 1
    assert not waiter.called
    assert h.service.state == "connecting"
    preparing.callback("ignored")
    assert result(waiter) is protocol


def test_prepareConnectionFailureDropsConnection(make: Any) -> None:
    """
    A failing C{prepareConnection} counts as a failed attempt; its
    connection is aborted and its later loss is not mistaken for the
    service's connection ending.
    """

    def prepare(protocol: IProtocol) -> None:
        raise ZeroDivisionError()

    h = make(prepareConnection=prepare).start()
    waiter = h.service.whenConnected(failAfterFailures=1)
    h.connect()
    failureOf(waiter, ZeroDivisionError)
    first = h.endpoint.last
    assert first.transport.disconnected
    assert h.service.state == "waiting"
    first.lose()
    assert h.service.state == "waiting"
    assert len(h.clock.getDelayedCalls()) == 1


# -- re-entrancy --------------------------------------------------------------


def test_stopFromWhenConnectedCallback(make: Any) -> None:
    """
    A C{whenConnected} callback may stop the service (Twisted's raises
    C{RuntimeError} here).
    """
    h = make().start()
    stops: list[Deferred[None]] = []
    h.service.whenConnected().addCallback(
        lambda p: stops.append(h.service.stopService())
    )
    h.connect()
    assert h.service.state == "disconnecting"
    h.endpoint.last.lose()
    assert result(stops[0]) is None


def test_stopFromFailAfterFailuresErrback(make: Any) -> None:
    h = make().start()
    h.service.whenConnected(failAfterFailures=1).addErrback(
        lambda f: h.service.stopService()
    )
    h.endpoint.last.fail()
    assert h.service.state == "stopped"
    assert h.clock.getDelayedCalls() == []


def test_stopFromRetryPolicy(make: Any) -> None:
    """
    The Twisted idiom of stopping from inside the policy works.
    """
    h = make(retryPolicy=lambda n: h.service.stopService() and 1.0)
    h.start()
    h.endpoint.last.fail()
    assert h.service.state == "stopped"


def test_stopFromPrepareConnection(make: Any) -> None:
    h = make(prepareConnection=lambda p: h.service.stopService())
    h.start()
    waiter = h.service.whenConnected()
    h.connect()
    assert h.service.state == "stopped"
    failureOf(waiter, CancelledError)
    assert h.endpoint.last.transport.disconnecting


def test_stopFromConnectionMade(make: Any) -> None:
    """
    A protocol may stop the service from its C{connectionMade}: the attempt
    is cancelled and its connection closed.
    """
    h = make().start()
    h.factory.built = []

    class Stopper(Protocol):
        def connectionMade(self) -> None:
            h.service.stopService()

    h.factory.buildProtocol = lambda addr: Stopper()  # type: ignore[method-assign]
    h.endpoint.last.succeed()
    assert h.service.state == "stopped"
    assert h.endpoint.last.transport.disconnecting


def test_stopAndStartFromConnectionLost(make: Any) -> None:
    """
    A protocol may stop, and start again, from its C{connectionLost}.
    """
    h = make().start()

    class Restarter(Protocol):
        def connectionLost(self, reason: Failure = connectionDone) -> None:
            h.service.stopService()
            h.service.startService()

    h.factory.buildProtocol = lambda addr: Restarter()  # type: ignore[method-assign]
    h.endpoint.last.succeed()
    h.endpoint.last.lose()
    assert h.service.state == "connecting"
    assert len(h.endpoint.attempts) == 2


def test_startFromStopCallback(make: Any) -> None:
    h = make().start()
    h.endpoint.last.fail()
    h.service.stopService().addCallback(lambda _: h.service.startService())
    assert h.service.state == "connecting"
    assert len(h.endpoint.attempts) == 2


def test_whenConnectedFromWhenConnectedCallback(make: Any) -> None:
    h = make().start()
    inner: list[Deferred[IProtocol]] = []
    h.service.whenConnected().addCallback(
        lambda p: inner.append(h.service.whenConnected())
    )
    protocol = h.connect()
    assert result(inner[0]) is protocol


def test_stopFromOnConnected(make: Any) -> None:
    h = make(onConnected=lambda p: h.service.stopService())
    h.start()
    h.connect()
    assert h.service.state == "disconnecting"


# -- beyond Twisted ----------------------------------------------------------


def test_attemptTimeoutWhileConnecting(make: Any) -> None:
    """
    An attempt that hangs is cancelled after C{attemptTimeout} and counts as
    failed with L{AttemptTimedOut}.
    """
    h = make(attemptTimeout=10.0).start()
    waiter = h.service.whenConnected(failAfterFailures=1)
    h.clock.advance(9.9)
    assert not waiter.called
    h.clock.advance(0.1)
    assert h.endpoint.attempts[0].cancelled
    assert failureOf(waiter, AttemptTimedOut).value.timeout == 10.0
    assert h.service.state == "waiting"
    h.clock.advance(1)
    assert len(h.endpoint.attempts) == 2


def test_attemptTimeoutWhilePreparing(make: Any) -> None:
    """
    The time limit covers C{prepareConnection}: a handshake that never ends
    is cancelled and its connection aborted.
    """
    cancelled: list[bool] = []
    h = make(
        attemptTimeout=5.0,
        prepareConnection=lambda p: Deferred(lambda d: cancelled.append(True)),
    ).start()
    h.connect()
    h.clock.advance(5)
    assert cancelled == [True]
    assert h.endpoint.attempts[0].transport.disconnected
    assert h.service.state == "waiting"
    assert isinstance(h.service.lastFailure.value, AttemptTimedOut)


def test_attemptTimeoutCancelledOnSuccess(make: Any) -> None:
    h = make(attemptTimeout=5.0).start()
    h.connect()
    assert h.clock.getDelayedCalls() == []


def test_isFatalGivesUpAtOnce(make: Any) -> None:
    h = make(isFatal=lambda f: f.check(DNSLookupError) is not None).start()
    waiter = h.service.whenConnected()
    h.endpoint.last.fail()
    assert h.service.state == "waiting"
    h.clock.advance(1)
    h.endpoint.last.fail(DNSLookupError("no such host"))
    assert h.service.state == "gaveUp"
    failureOf(waiter, GaveUpConnecting)
    assert h.clock.getDelayedCalls() == []


def test_onConnectedAndOnDisconnected(make: Any) -> None:
    events: list[tuple[str, object, object]] = []
    h = make(
        onConnected=lambda p: events.append(("up", p, None)),
        onDisconnected=lambda p, r: events.append(("down", p, r.type)),
    ).start()
    protocol = h.connect()
    h.endpoint.last.lose()
    assert events == [("up", protocol, None), ("down", protocol, ConnectionDone)]


def test_lifecycleCallbackErrorsLogged(make: Any, logs: list[dict[str, Any]]) -> None:
    """
    An exception in a lifecycle callback is logged and does not stop the
    service from working.
    """

    def broken(protocol: IProtocol) -> None:
        raise RuntimeError("oops")

    h = make(onConnected=broken).start()
    protocol = h.connect()
    assert h.service.state == "connected"
    assert result(h.service.whenConnected()) is protocol
    assert any(e.get("log_failure") for e in logs)


def test_flapDamping(make: Any) -> None:
    """
    With C{resetAfter}, a connection that drops at once does not reset the
    failure count, so a flapping server meets a growing delay; one that stays
    up long enough does reset it.
    """
    seen: list[int] = []
    h = make(resetAfter=30.0, retryPolicy=lambda n: seen.append(n) or 1.0).start()
    for _ in range(3):
        h.connect()
        h.endpoint.last.lose()
        h.clock.advance(1)
    assert seen == [1, 2, 3]
    h.connect()
    h.clock.advance(30)
    h.endpoint.last.lose()
    assert seen == [1, 2, 3, 1]


def test_withoutFlapDampingEveryConnectResets(make: Any) -> None:
    seen: list[int] = []
    h = make(retryPolicy=lambda n: seen.append(n) or 1.0).start()
    for _ in range(3):
        h.connect()
        h.endpoint.last.lose()
        h.clock.advance(1)
    assert seen == [1, 1, 1]


@pytest.mark.parametrize(
    "kwargs, name",
    [({"attemptTimeout": 0}, "attemptTimeout"), ({"resetAfter": -1}, "resetAfter")],
)
def test_badOptions(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        ClientService(FakeEndpoint(), Factory(), clock=Clock(), **kwargs)


def test_defaultPolicyIsBackoff(make: Any) -> None:
    """
    Without a policy, the first retry waits Twisted's default: between 1.5
    and 2.5 seconds.
    """
    h = make(retryPolicy=None).start()
    h.endpoint.last.fail()
    (call,) = h.clock.getDelayedCalls()
    assert 1.5 <= call.getTime() <= 2.5


def test_noReactorNeededWithClock() -> None:
    """
    Constructing a service with a clock imports no reactor.
    """
    import subprocess
    import sys

    code = (
        "import sys, reconnect\n"
        "from twisted.internet.task import Clock\n"
        "from twisted.internet.protocol import Factory\n"
        "from reconnect.testing import FakeEndpoint\n"
        "reconnect.ClientService(FakeEndpoint(), Factory(), clock=Clock())\n"
        "assert 'twisted.internet.reactor' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_succeedHelper() -> None:
    """
    L{succeed} is used as a prepareConnection result in user code; a
    prepareConnection returning an already-fired Deferred connects at once.
    """
    clock = Clock()
    endpoint = FakeEndpoint(immediately=True)
    service = ClientService(
        endpoint,
        Factory.forProtocol(Protocol),
        clock=clock,
        prepareConnection=lambda p: succeed(None),
    )
    service.startService()
    assert service.state == "connected"
    service.stopService()
    endpoint.last.lose()
    assert service.state == "stopped"


# -- reconnect() -------------------------------------------------------------------


def test_reconnectWhileConnected(make: Any, logs: list[dict[str, Any]]) -> None:
    """
    C{reconnect()} closes the connection and, once it has ended, connects
    again at once: no delay, no failure counted; a waiter made meanwhile
    gets the new connection.
    """
    h = make().start()
    old = h.connect()
    h.service.reconnect()
    assert h.service.state == "reconnecting"
    assert h.endpoint.last.transport.disconnecting
    waiter = h.service.whenConnected()
    h.endpoint.last.lose()
    assert h.service.state == "connecting"
    assert len(h.endpoint.attempts) == 2
    new = h.connect()
    assert result(waiter) is new is not old
    stats = h.service.stats()
    assert (stats.failures, stats.failedAttempts, stats.connects) == (0, 0, 2)
    assert [e["reconnectEvent"] for e in logs if e.get("reconnectEvent")].count(
        "reconnecting"
    ) == 1


def test_handOverWhileConnected(make: Any) -> None:
    """
    With C{retireConnection}, C{reconnect()} keeps the connection until a
    new one is up; then the new one is the service's and the old protocol
    goes to C{retireConnection}, whose closing the service does not count
    as a disconnect to act on.
    """
    retired: list[Any] = []
    h = make(retireConnection=retired.append).start()
    old = h.connect()
    h.service.reconnect()
    assert h.service.state == "handingOver"
    assert not old.transport.disconnecting
    assert result(h.service.whenConnected()) is old
    h.service.reconnect()
    assert len(h.endpoint.attempts) == 2
    new = h.connect()
    assert h.service.state == "connected"
    assert retired == [old] and not old.transport.disconnecting
    assert result(h.service.whenConnected()) is new
    stats = h.service.stats()
    assert (stats.connects, stats.disconnects, stats.failures) == (2, 1, 0)
    h.endpoint.attempts[0].lose()
    assert h.service.state == "connected" and len(h.endpoint.attempts) == 2


def test_handOverThatFailsKeepsTheConnection(make: Any) -> None:
    """
    A hand-over whose attempt fails leaves the connection as it was, with
    no failure counted.
    """
    h = make(retireConnection=lambda protocol: None).start()
    old = h.connect()
    h.service.reconnect()
    h.endpoint.last.fail()
    assert h.service.state == "connected"
    assert result(h.service.whenConnected()) is old
    assert h.service.stats().failures == 0
    assert h.clock.getDelayedCalls() == []


def test_connectionLostWhileHandingOver(make: Any) -> None:
    """
    If the current connection ends during a hand-over, the hand-over is
    called off and the service goes on as after any lost connection.
    """
    h = make(retireConnection=lambda protocol: None).start()
    h.connect()
    h.service.reconnect()
    handOver = h.endpoint.last
    h.endpoint.attempts[0].lose()
    assert handOver.cancelled
    assert h.service.state == "waiting"


def test_stopWaitsForRetiredConnections(make: Any) -> None:
    """
    Stopping closes a retired connection still open, and fires once it has
    ended too.
    """
    h = make(retireConnection=lambda protocol: None).start()
    h.connect()
    h.service.reconnect()
    h.connect()
    stopped = h.service.stopService()
    first, second = h.endpoint.attempts
    assert first.transport.disconnecting and second.transport.disconnecting
    second.lose()
    assert not stopped.called
    first.lose()
    assert stopped.called


def test_stopWhileHandingOver(make: Any) -> None:
    """
    Stopping during a hand-over cancels its attempt and closes the
    connection.
    """
    h = make(retireConnection=lambda protocol: None).start()
    h.connect()
    h.service.reconnect()
    stopped = h.service.stopService()
    assert h.endpoint.last.cancelled
    h.endpoint.attempts[0].lose()
    assert stopped.called and h.service.state == "stopped"


def test_reconnectWhileWaiting(make: Any) -> None:
    """
    While waiting out a retry delay, C{reconnect()} connects now.
    """
    h = make().start()
    h.endpoint.last.fail()
    assert h.service.state == "waiting"
    h.service.reconnect()
    assert h.service.state == "connecting"
    assert len(h.endpoint.attempts) == 2
    assert h.clock.getDelayedCalls() == []


@pytest.mark.parametrize("before", ["init", "connecting", "stopped"])
def test_reconnectElsewhereDoesNothing(make: Any, before: str) -> None:
    """
    Not yet started, already connecting or stopped: C{reconnect()} changes
    nothing.
    """
    h = make()
    if before != "init":
        h.start()
    if before == "stopped":
        h.service.stopService()
    attempts = len(h.endpoint.attempts)
    h.service.reconnect()
    assert h.service.state == before
    assert len(h.endpoint.attempts) == attempts


# -- dropConnection: a connection found dead ----------------------------------


@pytest.mark.parametrize("handsOver", [False, True])
def test_dropConnectionReconnectsAtOnce(make: Any, handsOver: bool) -> None:
    """
    C{dropConnection()} aborts the connection (never make-before-break)
    and, once it has ended, connects again at once, counting no failure.
    """
    h = make(
        immediateFailover=False,
        retireConnection=(lambda protocol: None) if handsOver else None,
    ).start()
    h.connect()
    h.service.dropConnection()
    assert h.service.state == "reconnecting"
    assert h.endpoint.last.transport.disconnected  # aborted
    assert len(h.endpoint.attempts) == 1
    h.endpoint.last.lose()
    assert h.service.state == "connecting"
    assert len(h.endpoint.attempts) == 2
    assert h.service.failedAttempts == 0 and h.service.stats().failures == 0


@pytest.mark.parametrize("immediateFailover", [False, True])
def test_dropConnectionAsAFailure(make: Any, immediateFailover: bool) -> None:
    """
    C{dropConnection(n)}: the connection's end is a failed attempt, at
    least the n-th in a row; the policy's delay for it paces the next
    attempt, with immediate failover too, and the policy may give up.
    """
    asked: list[int] = []

    def policy(failures: int) -> Optional[float]:
        asked.append(failures)
        return None if failures > 3 else 7.0

    h = make(retryPolicy=policy, immediateFailover=immediateFailover).start()
    h.connect()
    h.clock.advance(5)
    h.service.dropConnection(3)
    assert h.service.state == "dropping"
    assert h.endpoint.last.transport.disconnected
    h.endpoint.last.lose()
    assert (h.service.state, asked, h.service.failedAttempts) == ("waiting", [3], 3)
    (retry,) = h.clock.getDelayedCalls()
    assert retry.getTime() - h.clock.seconds() == 7.0
    h.clock.advance(7)
    h.connect()
    h.service.dropConnection(2)
    h.endpoint.last.lose()
    assert h.service.state == "waiting" and asked[-1] == 2
    h.clock.advance(7)
    h.connect()
    h.service.dropConnection(4)
    h.endpoint.last.lose()
    assert h.service.state == "gaveUp"


def test_dropConnectionWhileHandingOver(make: Any) -> None:
    """
    Found dead while a hand-over's attempt runs: the attempt is called off
    and the service connects again once the dead connection has ended.
    """
    h = make(retireConnection=lambda protocol: None).start()
    h.connect()
    h.service.reconnect()
    assert h.service.state == "handingOver"
    dead, handOver = h.endpoint.attempts
    h.service.dropConnection()
    assert handOver.cancelled and dead.transport.disconnected
    assert h.service.state == "reconnecting"
    dead.lose()
    assert h.service.state == "connecting" and len(h.endpoint.attempts) == 3


def test_dropConnectionWhileStopping(make: Any) -> None:
    """
    Stopping, with a connection that does not close: a drop aborts it, and
    the service goes on stopping.
    """
    h = make().start()
    h.connect()
    stopped = h.service.stopService()
    h.service.dropConnection(1)
    assert h.service.state == "disconnecting"
    assert h.endpoint.last.transport.disconnected
    h.endpoint.last.lose()
    assert h.service.state == "stopped" and result(stopped) is None
    assert h.service.failedAttempts == 0


@pytest.mark.parametrize("before", ["init", "connecting", "waiting", "stopped"])
def test_dropConnectionWithoutOneDoesNothing(make: Any, before: str) -> None:
    """
    With no connection, C{dropConnection} changes nothing.
    """
    h = make()
    if before != "init":
        h.start()
    if before == "waiting":
        h.endpoint.last.fail()
    if before == "stopped":
        h.service.stopService()
    attempts, calls = len(h.endpoint.attempts), h.clock.getDelayedCalls()
    h.service.dropConnection()
    h.service.dropConnection(2)
    assert h.service.state == before
    assert len(h.endpoint.attempts) == attempts
    assert h.clock.getDelayedCalls() == calls


def test_dropConnectionArguments(make: Any) -> None:
    h = make()
    with pytest.raises(TypeError, match="failuresInARow"):
        h.service.dropConnection(1.0)
    with pytest.raises(ValueError, match="failuresInARow"):
        h.service.dropConnection(-1)


def test_stopWhileReconnecting(make: Any) -> None:
    """
    Stopped while its connection closes for a reconnect, the service stops
    once it has closed, and makes no new attempt.
    """
    h = make().start()
    h.connect()
    h.service.reconnect()
    stopped = h.service.stopService()
    assert h.service.state == "disconnecting"
    h.endpoint.last.lose()
    assert stopped.called and h.service.state == "stopped"
    assert len(h.endpoint.attempts) == 1


# -- user work that outlives its attempt (issue 21, items 1 and 3) ------------


def alarming(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    The events at warning level or above, or carrying a traceback: what no
    supported call may log.
    """
    from twisted.logger import LogLevel

    return [
        e
        for e in events
        if "log_failure" in e
        or e.get("log_level") in (LogLevel.warn, LogLevel.error, LogLevel.critical)
    ]


class ChainedLogin:
    """
    A C{prepareConnection} of the usual shape: a Deferred that has fired
    but waits on one it chained, C{succeed(None).addCallback(lambda _:
    login())}.

    @ivar outer: what each call returned.
    @ivar inner: the login Deferred of each call.
    @ivar cancelled: the login Deferreds whose canceller ran.
    """

    def __init__(self, cancellerRaises: bool = False) -> None:
        self.cancellerRaises = cancellerRaises
        self.outer: list[Deferred[object]] = []
        self.inner: list[Deferred[object]] = []
        self.cancelled: list[Deferred[object]] = []

    def _cancel(self, login: Deferred[object]) -> None:
        self.cancelled.append(login)
        if self.cancellerRaises:
            raise ValueError("this login cannot be called off")

    def login(self) -> Deferred[object]:
        login: Deferred[object] = Deferred(self._cancel)
        self.inner.append(login)
        return login

    def __call__(self, protocol: IProtocol) -> Deferred[object]:
        outer: Deferred[object] = succeed(None)
        outer.addCallback(lambda _: self.login())
        self.outer.append(outer)
        return outer


def endAttempt(h: Harness, how: str) -> None:
    """
    End the attempt under way (connected, preparing): its time runs out, the
    service is stopped, or its connection is lost.
    """
    if how == "timeout":
        h.clock.advance(5)
    elif how == "stop":
        h.service.stopService()
    else:
        h.endpoint.last.lose()


ENDINGS = ["timeout", "stop", "lost"]


@pytest.mark.parametrize("how", ENDINGS)
def test_chainedPrepareCancelledWhenAttemptEnds(
    make: Any, logs: list[dict[str, Any]], how: str
) -> None:
    """
    A C{prepareConnection} Deferred that has fired but waits on an inner
    one is cancelled when its attempt ends (times out, is stopped, or loses
    its connection): the cancellation reaches the inner Deferred, and
    nothing is left unhandled.
    """
    import gc

    prepare = ChainedLogin()
    h = make(attemptTimeout=5.0, prepareConnection=prepare).start()
    h.connect()
    assert h.service.state == "connecting"
    endAttempt(h, how)
    assert prepare.cancelled == prepare.inner
    assert len(prepare.cancelled) == 1
    assert h.service.state == ("stopped" if how == "stop" else "waiting")
    # Every failure in the chain was consumed by the attempt.
    assert result(prepare.outer[0]) is None
    gc.collect()
    assert alarming(logs) == []


@pytest.mark.parametrize("how", ENDINGS)
@pytest.mark.parametrize("outcome", ["succeeds", "fails"])
def test_prepareResultAfterAttemptEndedIsIgnored(
    make: Any, logs: list[dict[str, Any]], how: str, outcome: str
) -> None:
    """
    A C{prepareConnection} whose work cannot be called off (its canceller
    raises: logged once) and ends after its attempt did: what it ends with
    is ignored, not an C{AssertionError} logged as an unhandled error.
    """
    import gc

    prepare = ChainedLogin(cancellerRaises=True)
    h = make(attemptTimeout=5.0, prepareConnection=prepare).start()
    h.connect()
    endAttempt(h, how)
    assert len(prepare.cancelled) == 1
    logged = alarming(logs)
    assert [e["log_failure"].type for e in logged] == [ValueError]
    state = h.service.state
    (login,) = prepare.inner
    if outcome == "succeeds":
        login.callback("logged in")
    else:
        login.errback(Failure(ConnectionDone("gone")))
    assert h.service.state == state
    assert result(prepare.outer[0]) is None
    gc.collect()
    assert alarming(logs) == logged
    h.clock.advance(1)
    if how != "stop":
        assert len(h.endpoint.attempts) == 2


def test_connectionLostWhilePreparingIsAFailedAttempt(make: Any) -> None:
    """
    A connection lost while C{prepareConnection} is still at work fails
    the attempt: it counts for C{failAfterFailures}, the work is cancelled
    and the next attempt follows the policy.  (Twisted's machine has no
    transition for it and raises.)
    """
    cancelled: list[Deferred[None]] = []

    def prepare(protocol: object) -> Deferred[None]:
        return Deferred(cancelled.append)

    h = make(prepareConnection=prepare).start()
    waiter = h.service.whenConnected(failAfterFailures=1)
    h.connect()
    h.endpoint.last.lose(ConnectionDone("gone while logging in"))
    failure = result(waiter)
    assert isinstance(failure, Failure) and failure.check(ConnectionDone)
    assert h.service.state == "waiting"
    assert len(cancelled) == 1
    h.clock.advance(1)
    assert len(h.endpoint.attempts) == 2


def test_stopFromConnectionMadeOverTwistedEndpoint(
    make: Any, logs: list[dict[str, Any]]
) -> None:
    """
    Stopping from the protocol's C{connectionMade} over one of Twisted's
    own endpoints logs nothing alarming: the connect Deferred, about to
    fire, is not cancelled (its canceller would errback it, then complain
    that the connector is no longer connecting, and the endpoint would fire
    it a second time); the transport is aborted instead.
    """
    from twisted.internet.endpoints import TCP4ClientEndpoint
    from twisted.internet.error import NotConnectingError
    from twisted.internet.testing import MemoryReactorClock, StringTransport

    reactor = MemoryReactorClock()
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", 7000)

    class Stopper(Protocol):
        def connectionMade(self) -> None:
            stops.append(service.stopService())

    stops: list[Deferred[None]] = []
    service = ClientService(
        endpoint, Factory.forProtocol(Stopper), fixedDelay, clock=reactor
    )
    service.startService()
    (connector,) = reactor.connectors

    def stopConnecting() -> None:
        # A real connector's answer, once connected.
        raise NotConnectingError("we're not trying to connect")

    connector.stopConnecting = stopConnecting  # type: ignore[method-assign]
    wrapping = reactor.tcpClients[0][2]
    protocol = wrapping.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    assert service.state == "stopped"
    assert result(stops[0]) is None
    assert transport.disconnecting
    assert alarming(logs) == []
    assert reactor.getDelayedCalls() == []


# -- the retry timer (issue 21, item 5) ---------------------------------------


@pytest.mark.parametrize("then", ["connects", "fails again"])
def test_firedRetryTimerLetGo(make: Any, then: str) -> None:
    """
    Once the retry timer has fired, nothing of the service keeps it: the
    fired call, which refers back to the service, is freed as soon as the
    clock lets go of it, with no cycle left for the garbage collector.
    """
    import weakref

    h = make().start()
    h.endpoint.last.fail()
    (call,) = h.clock.getDelayedCalls()
    fired = weakref.ref(call)
    del call
    h.clock.advance(1)
    assert h.service.state == "connecting"
    assert fired() is None
    if then == "connects":
        h.connect()
    else:
        h.endpoint.last.fail()
        assert h.service.state == "waiting"
    assert fired() is None


def test_firedFailoverTimerLetGo(make: Any) -> None:
    """
    With C{immediateFailover}, the timer of the at-once attempt after a
    lost connection is let go once it has fired, as the retry timer is.
    """
    import weakref

    h = make(immediateFailover=True).start()
    h.connect()
    h.clock.advance(5)
    h.endpoint.last.lose()
    assert h.service.failedAttempts == 0
    (call,) = h.clock.getDelayedCalls()
    assert call.getTime() == h.clock.seconds()
    fired = weakref.ref(call)
    del call
    h.clock.advance(0)
    assert h.service.state == "connecting"
    assert fired() is None


# -- where we differ from Twisted's ClientService (README) -------------------


def test_waiterFromBeforeStartFailsWhenStoppedFromInit(make: Any) -> None:
    """
    A C{whenConnected()} made before the service was started fails with
    L{CancelledError} when the service is stopped without ever starting
    (Twisted's stays pending for ever): every Deferred we hand out fires.
    """
    h = make()
    waiter = h.service.whenConnected()
    h.service.stopService()
    failureOf(waiter, CancelledError)


def test_retryMessageNamesTheEndpointByItsDescription(
    make: Any, logs: list[dict[str, Any]]
) -> None:
    """
    The retry message is Twisted's sentence, but it names one of Twisted's
    endpoints by its description (Twisted's shows the object's C{repr}),
    adds why, and comes from this package's namespace.
    """
    from twisted.internet.endpoints import TCP4ClientEndpoint
    from twisted.internet.testing import MemoryReactorClock
    from twisted.logger import formatEvent

    reactor = MemoryReactorClock()
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", 7000)
    service = ClientService(endpoint, Factory(), fixedDelay, clock=reactor)
    service.startService()
    reactor.tcpClients[0][2].clientConnectionFailed(
        reactor.connectors[0], Failure(ConnectionRefusedError())
    )
    (retry,) = [e for e in logs if e.get("reconnectEvent") == "attemptFailed"]
    assert formatEvent(retry).startswith(
        "Scheduling retry 1 to connect tcp:127.0.0.1:7000 in 1.0 seconds. "
        "Attempt failed: Connection was refused"
    )
    assert retry["log_namespace"] == "reconnect._service.ClientService"
    assert retry["endpoint"] is endpoint
    service.stopService()


def test_everyDifferenceFromTwistedIsTested() -> None:
    """
    Each difference README lists in "Where reconnect differs from Twisted's
    ClientService" names the tests that prove it, and each of them exists.
    """
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Where reconnect differs from Twisted's ClientService")[
        1
    ].split("\n## ")[0]
    differences = [d for d in section.split("\n- ")[1:]]
    assert len(differences) >= 9
    defined = set()
    for module in (root / "tests").glob("test_*.py"):
        defined.update(re.findall(r"^def (test_\w+)", module.read_text(), re.M))
    for difference in differences:
        named = re.findall(r"`(test_\w+)`", difference)
        assert named, difference
        assert set(named) <= defined, set(named) - defined
