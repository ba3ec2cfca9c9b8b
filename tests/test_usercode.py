"""
When the code handed to us misbehaves: retry policies, C{isFatal},
C{prepareConnection}, callbacks, factories and endpoints that raise or return
nonsense.  The rule (docs/guide.md, "When your code raises"): the service
still ends in a defined state, says so once, every stop and every Deferred
it handed out fires, no public call raises, and nothing stays scheduled
after stop.

Stateful property tests drive L{ClientService} and L{EndpointConnector} with
a L{ReconnectingClientFactory} through random sequences of calls and events
with such code, checking the rule after every step.
"""

from __future__ import annotations

import math
import pickle
import time
from typing import Any, Optional

import pytest
import pytest_twisted
from helpers import (
    EndpointAndClockRules,
    freePort,
    live,
    pending,
    stateMachineTest,
    twistd,
    until,
)
from hypothesis import strategies as st
from hypothesis.stateful import (
    initialize,
    invariant,
    precondition,
    rule,
)
from invariants import checkMachine
from moods import Boom, Moods, MoodyEndpoint
from test_events import checkDocumented
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IProtocol, IProtocolFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import implementer

from reconnect import (
    ClientService,
    EndpointConnector,
    GaveUpConnecting,
    ReconnectingClientFactory,
    backoffPolicy,
    decorrelatedJitterPolicy,
    fullJitterPolicy,
)
from reconnect._proxy import _proxyClasses
from reconnect.testing import FakeEndpoint

NONSENSE_DELAYS: list[object] = [-1, math.nan, math.inf, "1", object()]


def raising(*args: object) -> Any:
    raise Boom("user code raised")


@pytest.fixture
def logged() -> Any:
    """
    Every log event emitted during the test.
    """
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def startedService(**kwargs: Any) -> tuple[ClientService, Clock, FakeEndpoint]:
    clock = Clock()
    endpoint = FakeEndpoint()
    kwargs.setdefault("retryPolicy", lambda n: 1.0)
    service = ClientService(
        endpoint, Factory.forProtocol(Protocol), clock=clock, **kwargs
    )
    service.startService()
    return service, clock, endpoint


def failureEvents(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if "log_failure" in e]


@pytest.mark.parametrize(
    "policy",
    [raising] + [lambda n, bad=bad: bad for bad in NONSENSE_DELAYS],
    ids=["raises", "negative", "nan", "inf", "string", "object"],
)
def test_badPolicyGivesUp(policy: Any, logged: list[dict[str, Any]]) -> None:
    """
    A policy that raises, or returns anything but C{None} or a finite
    number C{>= 0}, makes the service give up with that error as
    C{lastFailure}: waiters fail with L{GaveUpConnecting}, the stop fires,
    nothing is left scheduled, and the error is logged once, traceback and
    all.
    """
    service, clock, endpoint = startedService(retryPolicy=policy)
    waiter = service.whenConnected()
    endpoint.last.fail()
    assert service.state == "gaveUp"
    assert clock.getDelayedCalls() == []
    error = waiter.result.value
    waiter.addErrback(lambda f: None)
    assert isinstance(error, GaveUpConnecting)
    assert service.lastFailure is error.failure
    assert service.lastFailure.check(Boom, TypeError, ValueError)
    [event] = failureEvents(logged)
    checkDocumented(event)
    assert event["reconnectEvent"] == "gaveUp"
    assert event["log_failure"] is service.lastFailure
    stopped = service.stopService()
    assert stopped.called and service.state == "stopped"


def test_badPolicyAfterConnectionLost() -> None:
    """
    The same rule when the policy is asked after an established connection
    ends.
    """
    service, clock, endpoint = startedService(retryPolicy=raising)
    endpoint.last.succeed()
    endpoint.last.lose()
    assert service.state == "gaveUp"
    assert service.lastFailure is not None and service.lastFailure.check(Boom)
    assert clock.getDelayedCalls() == []
    assert service.stopService().called


def test_raisingIsFatalGivesUp() -> None:
    """
    An C{isFatal} that raises gives up with what it raised.
    """
    service, clock, endpoint = startedService(isFatal=raising)
    endpoint.last.fail()
    assert service.state == "gaveUp"
    assert service.lastFailure is not None and service.lastFailure.check(Boom)
    assert service.stopService().called


@pytest.mark.parametrize(
    "value, error",
    [
        ("1", TypeError),
        (1.5, TypeError),
        (True, TypeError),
        (0, ValueError),
        (-1, ValueError),
    ],
)
def test_badFailAfterFailures(value: Any, error: type[Exception]) -> None:
    """
    C{whenConnected} checks C{failAfterFailures} at the call.
    """
    service, clock, endpoint = startedService()
    with pytest.raises(error, match="failAfterFailures"):
        service.whenConnected(failAfterFailures=value)
    assert service.state == "connecting"
    endpoint.last.succeed()
    assert service.state == "connected"


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"retryPolicy": 5}, TypeError, "retryPolicy"),
        ({"isFatal": "yes"}, TypeError, "isFatal"),
        ({"prepareConnection": 1}, TypeError, "prepareConnection"),
        ({"onConnected": 1}, TypeError, "onConnected"),
        ({"attemptTimeout": "3"}, TypeError, "attemptTimeout"),
        ({"attemptTimeout": math.inf}, ValueError, "attemptTimeout"),
        ({"attemptTimeout": 0}, ValueError, "attemptTimeout"),
        ({"resetAfter": math.nan}, ValueError, "resetAfter"),
    ],
)
def test_badConstructorArguments(
    kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    """
    A constructor argument of the wrong kind is an error at the call,
    naming it.
    """
    with pytest.raises(error, match=name):
        ClientService(FakeEndpoint(), Factory(), clock=Clock(), **kwargs)


@pytest.mark.parametrize(
    "endpoint, factory, clock, error, name",
    [
        (None, Factory(), Clock(), TypeError, "endpoint"),
        (42, Factory(), Clock(), TypeError, "endpoint"),
        (b"tcp:127.0.0.1:7000", Factory(), Clock(), TypeError, "endpoint"),
        ("nonsense:x", Factory(), Clock(), ValueError, "endpoint"),
        ("tcp:127.0.0.1", Factory(), Clock(), ValueError, "endpoint"),
        ("tcp:host=a:port=x", Factory(), Clock(), ValueError, "endpoint"),
        (FakeEndpoint(), None, Clock(), TypeError, "factory"),
        (FakeEndpoint(), Protocol, Clock(), TypeError, "factory"),
        (FakeEndpoint(), Factory(), "x", TypeError, "clock"),
        (FakeEndpoint(), Factory(), time, TypeError, "clock"),
    ],
    ids=[
        "endpoint-None",
        "endpoint-int",
        "endpoint-bytes",
        "endpoint-unknown-type",
        "endpoint-no-port",
        "endpoint-bad-port",
        "factory-None",
        "factory-protocol-class",
        "clock-str",
        "clock-time-module",
    ],
)
def test_badEndpointFactoryOrClock(
    endpoint: Any, factory: Any, clock: Any, error: type[Exception], name: str
) -> None:
    """
    An endpoint that is neither an endpoint nor a description, a bad
    description, a factory that builds nothing, a clock that schedules
    nothing: each is an error at the call, naming the argument, rather than
    a service that retries for ever (or hangs in C{waiting}) logging why.
    """
    with pytest.raises(error, match=name):
        ClientService(endpoint, factory, clock=clock)


def test_endpointDescription() -> None:
    """
    An endpoint may be given as its string description, as
    L{FailoverEndpoint} takes them: it connects through the C{clock} if
    that is a reactor, else through the global reactor.
    """
    from twisted.internet import reactor
    from twisted.internet.testing import MemoryReactorClock

    memory = MemoryReactorClock()
    service = ClientService("tcp:127.0.0.1:7000", Factory(), clock=memory)
    service.startService()
    assert [client[:2] for client in memory.tcpClients] == [("127.0.0.1", 7000)]
    service.stopService()
    onClock = ClientService("tcp:127.0.0.1:7000", Factory(), clock=Clock())
    assert onClock.endpoint._reactor is reactor  # type: ignore[attr-defined]


@implementer(IProtocolFactory)
class RaisingEndpoint:
    """
    An endpoint whose C{connect} raises, or returns something that is not
    a Deferred.
    """

    def __init__(self, result: object = None) -> None:
        self.result = result
        self.calls = 0

    def connect(self, factory: IProtocolFactory) -> Any:
        self.calls += 1
        if self.result is None:
            raise Boom("connect raised")
        return self.result


@pytest.mark.parametrize("result", [None, "not a Deferred"])
def test_endpointConnectMisbehaves(result: object) -> None:
    """
    An endpoint whose C{connect} raises or returns a non-Deferred makes a
    failed attempt, which the policy retries.
    """
    clock = Clock()
    endpoint = RaisingEndpoint(result)
    service = ClientService(endpoint, Factory(), lambda n: 1.0, clock=clock)  # type: ignore[arg-type]
    service.startService()
    assert service.state == "waiting"
    assert service.lastFailure is not None
    assert service.lastFailure.check(Boom, TypeError)
    clock.advance(1)
    assert endpoint.calls == 2
    assert service.stopService().called
    assert clock.getDelayedCalls() == []


def test_raisingCancellerStillStops(logged: list[dict[str, Any]]) -> None:
    """
    A C{prepareConnection} Deferred whose canceller raises: stopping
    logs that and stops all the same.
    """

    def prepare(protocol: IProtocol) -> Deferred[None]:
        return Deferred(raising)

    service, clock, endpoint = startedService(prepareConnection=prepare)
    endpoint.last.succeed()
    stopped = service.stopService()
    assert stopped.called and service.state == "stopped"
    assert len(failureEvents(logged)) == 1


def test_raisingCallbacksAreLoggedOnce(logged: list[dict[str, Any]]) -> None:
    """
    A raising C{onConnected} or C{onDisconnected} is logged once each, as a
    structured event, and changes nothing.
    """
    service, clock, endpoint = startedService(
        onConnected=raising, onDisconnected=raising
    )
    waiter = service.whenConnected()
    endpoint.last.succeed()
    assert service.state == "connected" and waiter.called
    endpoint.last.lose()
    assert service.state == "waiting"
    events = failureEvents(logged)
    assert [e["reconnectEvent"] for e in events] == ["callbackFailed"] * 2
    for event in events:
        checkDocumented(event)
    assert service.stopService().called


def test_cancelledWaitersLeaveAtOnce() -> None:
    """
    A cancelled C{whenConnected} Deferred is let go of at once, not held
    until the next connection.
    """
    service, clock, endpoint = startedService()
    for _ in range(1000):
        waiter = service.whenConnected()
        waiter.cancel()
        waiter.addErrback(lambda f: f.trap(CancelledError))
    kept = service.whenConnected()
    assert service._machine._connectWaiters == [(kept, None)]
    endpoint.last.succeed()
    assert kept.called


def test_cancelledStopDeferred() -> None:
    """
    A caller may cancel the Deferred C{stopService} gave it: the service
    still stops.
    """
    service, clock, endpoint = startedService()
    endpoint.last.succeed()
    stopping = service.stopService()
    stopping.cancel()
    stopping.addErrback(lambda f: f.trap(CancelledError))
    endpoint.last.lose()
    assert service.state == "stopped"


def test_stopIsNoFailure() -> None:
    """
    Stopping while an attempt is under way does not count a failure.
    """
    service, clock, endpoint = startedService()
    service.stopService()
    stats = service.stats()
    assert stats.failures == 0 and stats.failedAttempts == 0
    assert service.lastFailure is None


def test_proxyClassCacheBounded() -> None:
    """
    Protocol classes made at run time share the proxy class of their
    interfaces: the cache does not grow with them.
    """
    service, clock, endpoint = startedService()
    before = len(_proxyClasses)
    for n in range(50):
        madeNow = type(f"Protocol{n}", (Protocol,), {})
        service._machine._factory = Factory.forProtocol(madeNow)
        endpoint.last.succeed()
        endpoint.last.lose()
        clock.advance(1)
    assert len(_proxyClasses) <= before + 1
    service.stopService()


# -- the legacy shim ------------------------------------------------------


class JitteryFactory(ReconnectingClientFactory):
    protocol = Protocol
    retryPolicy = fullJitterPolicy(random=lambda: 0.5)


class FunctionPolicyFactory(ReconnectingClientFactory):
    protocol = Protocol

    def retryPolicy(attempt: int) -> float:  # type: ignore[misc]  # noqa: N805
        return 2.0


@pytest.mark.parametrize(
    "factoryClass, delay", [(JitteryFactory, 1.0), (FunctionPolicyFactory, 2.0)]
)
def test_policyAsClassAttribute(
    factoryClass: type[ReconnectingClientFactory], delay: float
) -> None:
    """
    A policy set as a class attribute (a policy object or a plain
    function) paces the retries; it is not called as a method.
    """
    clock = Clock()
    factory = factoryClass()
    factory.clock = clock
    connector = EndpointConnector(FakeEndpoint(), factory, clock)
    connector.connect()
    connector.endpoint.last.fail()  # type: ignore[attr-defined]
    [call] = clock.getDelayedCalls()
    assert call.getTime() == delay


def test_policyOnInstancePickles() -> None:
    """
    A factory with one of our policies set on the instance pickles, and the
    copy keeps the policy.
    """
    factory = ReconnectingClientFactory()
    factory.retryPolicy = decorrelatedJitterPolicy()
    factory.retries = 3
    copy = pickle.loads(pickle.dumps(factory))
    assert copy.retryPolicy == factory.retryPolicy
    assert copy.retries == 0


def test_sharedDecorrelatedPolicyPerService() -> None:
    """
    Two services handed one decorrelated policy each pace themselves: one's
    failures do not lengthen the other's delays.
    """
    draws = iter([1.0] * 10)
    shared = decorrelatedJitterPolicy(1.0, 1000.0, random=lambda: next(draws))
    first, clock1, endpoint1 = startedService(retryPolicy=shared)
    second, clock2, endpoint2 = startedService(retryPolicy=shared)
    endpoint1.last.fail()
    clock1.advance(3)
    endpoint1.last.fail()
    endpoint2.last.fail()
    assert [c.getTime() for c in clock1.getDelayedCalls()] == [3 + 9]
    assert [c.getTime() for c in clock2.getDelayedCalls()] == [3]
    first.stopService()
    second.stopService()


@pytest.mark.parametrize("result", [None, "not a Deferred"])
def test_connectorEndpointRaises(result: object) -> None:
    """
    An endpoint whose C{connect} raises (or returns a non-Deferred) is a
    failed attempt for the factory, which retries; the connector is free to
    connect again.
    """
    clock = Clock()
    factory = ReconnectingClientFactory()
    factory.clock = clock
    factory.protocol = Protocol
    endpoint = RaisingEndpoint(result)
    connector = EndpointConnector(endpoint, factory, clock)  # type: ignore[arg-type]
    connector.connect()
    assert connector.state == "disconnected"
    assert factory.retries == 1
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(10)
    assert endpoint.calls == 2
    factory.stopTrying()
    clock.advance(100)
    assert endpoint.calls == 2
    assert clock.getDelayedCalls() == []


# -- stateful property tests ------------------------------------------------


class Moody(Moods):
    """
    User code whose behaviour the state machine sets: each of its
    callables may behave, raise or return nonsense.
    """

    def __init__(self) -> None:
        super().__init__(prepare="none")
        self.gaveUp = False
        # The Deferreds of "chained" preparations, and the logins they wait
        # on (the usual shape: a fired Deferred waiting on an inner one).
        self.preparations: list[Deferred[object]] = []
        self.logins: list[Deferred[object]] = []

    def delay(self, attempt: int) -> float:
        return 0.5 * attempt

    def retryPolicy(self, attempt: int) -> object:
        self.gaveUp = self.policy != "ok"
        return super().retryPolicy(attempt)

    def prepareConnection(self, protocol: IProtocol) -> object:
        if self.prepare == "none":
            return "nonsense"
        if self.prepare == "chained":
            preparing: Deferred[object] = succeed(None)
            preparing.addCallback(lambda _: self._login())
            self.preparations.append(preparing)
            return preparing
        # "later" is a preparation that has succeeded.
        return super().prepareConnection(protocol)

    def _login(self) -> Deferred[object]:
        login: Deferred[object] = Deferred()
        self.logins.append(login)
        return login


MOODS = {
    "policy": ["ok", "ok", "raise", "none", "nan", "negative", "string"],
    "fatal": ["no", "no", "yes", "raise"],
    "prepare": [
        "none",
        "later",
        "raise",
        "fail",
        "hang",
        "nonsense",
        "chained",
        "chained",
    ],
    "callbacks": ["ok", "raise"],
    "connect": ["ok", "ok", "raise", "nonsense"],
    "retire": ["close", "keep", "raise"],
}


class ClientServiceUnderUserCode(EndpointAndClockRules):
    """
    A L{ClientService} whose every piece of user code may misbehave.
    """

    @initialize(useTimeout=st.booleans(), handsOver=st.booleans())
    def build(self, useTimeout: bool, handsOver: bool) -> None:
        self.mood = Moody()
        self.clock = Clock()
        self.endpoint = MoodyEndpoint(self.mood)
        self.service = self.mood.serviceOver(
            self.endpoint,
            self.clock,
            handsOver,
            attemptTimeout=5.0 if useTimeout else None,
        )
        self.waiters: list[Deferred[IProtocol]] = []
        self.stops: list[Deferred[None]] = []

    @rule(what=st.sampled_from(sorted(MOODS)), data=st.data())
    def changeMood(self, what: str, data: st.DataObject) -> None:
        setattr(self.mood, what, data.draw(st.sampled_from(MOODS[what])))

    @rule()
    def start(self) -> None:
        self.service.startService()

    @rule()
    def stop(self) -> None:
        self.stops.append(self.service.stopService())

    @rule()
    def reconnect(self) -> None:
        self.service.reconnect()

    @rule(failAfter=st.sampled_from([None, 1, 2, 3]))
    def whenConnected(self, failAfter: Optional[int]) -> None:
        waiter = self.service.whenConnected(failAfter)
        waiter.addErrback(lambda f: None)
        self.waiters.append(waiter)

    @precondition(lambda self: any(not w.called for w in self.waiters))
    @rule(data=st.data())
    def cancelWaiter(self, data: st.DataObject) -> None:
        waiting = [w for w in self.waiters if not w.called]
        data.draw(st.sampled_from(waiting)).cancel()

    @precondition(lambda self: any(not login.called for login in self.mood.logins))
    @rule(data=st.data(), succeeds=st.booleans())
    def loginEnds(self, data: st.DataObject, succeeds: bool) -> None:
        """
        A chained preparation's login ends, perhaps long after its attempt.
        """
        pending = [login for login in self.mood.logins if not login.called]
        login = data.draw(st.sampled_from(pending))
        if succeeds:
            login.callback("logged in")
        else:
            login.errback(Failure(Boom("login failed")))

    @invariant()
    def preparationsConsumed(self) -> None:
        """
        Whatever a chained preparation ended with, and whenever, the
        attempt consumed it: nothing is left to be logged as unhandled.
        """
        if not hasattr(self, "mood"):
            return
        for preparing in self.mood.preparations:
            assert not isinstance(getattr(preparing, "result", None), Failure)

    @invariant()
    def definedState(self) -> None:
        if not hasattr(self, "service"):
            return
        state = self.service.state
        machine = self.service._machine
        checkMachine(self.service, self.clock)
        for retired in machine._retired or {}:
            assert (
                retired._transport.disconnecting or retired._protocol in self.mood.kept
            )
        if state == "gaveUp":
            assert self.service.lastFailure is not None
        if state in ("stopped", "gaveUp"):
            assert all(w.called for w in self.waiters)
        if state == "stopped" and not machine._retired:
            assert all(s.called for s in self.stops)

    def teardown(self) -> None:
        if not hasattr(self, "service"):
            return
        stopped = self.service.stopService()
        for attempt in live(self.endpoint):
            attempt.lose()
        self.clock.advance(100)
        assert stopped.called
        assert self.service.state == "stopped"
        assert not self.service._machine._retired
        assert all(s.called for s in self.stops)
        assert all(w.called for w in self.waiters)
        assert self.clock.getDelayedCalls() == []


TestClientServiceUnderUserCode = stateMachineTest(ClientServiceUnderUserCode, 300)


class MoodyFactory(ReconnectingClientFactory):
    """
    A legacy factory whose policy and callbacks are moody.
    """

    protocol = Protocol

    def __init__(self, mood: Moody) -> None:
        self.mood = mood
        self.retryPolicy = mood.retryPolicy  # type: ignore[assignment]
        self.starts = self.stops = 0

    def startedConnecting(self, connector: Any) -> None:
        self.mood.callback()

    def doStart(self) -> None:
        self.starts += 1
        self.mood.callback()

    def doStop(self) -> None:
        self.stops += 1
        self.mood.callback()


class ConnectorUnderUserCode(EndpointAndClockRules):
    """
    An L{EndpointConnector} running a L{ReconnectingClientFactory} whose
    policy, callbacks and endpoint may misbehave.
    """

    @initialize()
    def build(self) -> None:
        self.mood = Moody()
        self.clock = Clock()
        self.endpoint = MoodyEndpoint(self.mood)
        self.factory = MoodyFactory(self.mood)
        self.factory.clock = self.clock
        self.connector = EndpointConnector(self.endpoint, self.factory, self.clock)
        self.connector.connect()

    @rule(what=st.sampled_from(["policy", "callbacks", "connect"]), data=st.data())
    def changeMood(self, what: str, data: st.DataObject) -> None:
        setattr(self.mood, what, data.draw(st.sampled_from(MOODS[what])))

    @rule()
    def stopTrying(self) -> None:
        self.factory.stopTrying()

    @precondition(lambda self: self.connector.state == "disconnected")
    @rule()
    def resetAndConnect(self) -> None:
        self.factory.resetDelay()
        self.connector.connect()

    @invariant()
    def keepsTrying(self) -> None:
        """
        A disconnected connector with a factory that still wants to
        connect always has its next attempt scheduled, unless the policy
        gave up; the factory is started exactly while in use.
        """
        if not hasattr(self, "connector"):
            return
        state = self.connector.state
        scheduled = self.clock.getDelayedCalls()
        if state == "disconnected" and self.factory.continueTrying:
            assert scheduled or self.mood.gaveUp
        if not self.factory.continueTrying:
            assert scheduled == []
        if state == "connecting":
            assert pending(self.endpoint)
        assert self.factory.starts - self.factory.stops in (0, 1)

    def teardown(self) -> None:
        if not hasattr(self, "connector"):
            return
        self.factory.stopTrying()
        self.connector.disconnect()
        for attempt in live(self.endpoint):
            attempt.lose()
        self.clock.advance(100)
        assert self.clock.getDelayedCalls() == []
        assert self.connector.state == "disconnected"
        assert self.factory.starts == self.factory.stops


TestConnectorUnderUserCode = stateMachineTest(ConnectorUnderUserCode, 200)


def test_backoffPolicyTakesWhatTwistedTakes() -> None:
    """
    Arguments Twisted's C{backoffPolicy} accepts are accepted here too, and
    a service given such a policy works.
    """
    for kwargs in [
        {"maxDelay": math.inf},
        {"initialDelay": 10, "maxDelay": 5},
        {"factor": 0.5},
    ]:
        service, clock, endpoint = startedService(retryPolicy=backoffPolicy(**kwargs))
        endpoint.last.fail()
        assert service.state == "waiting"
        service.stopService()


RAISING_POLICY_TAC = """
from twisted.application import service
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol

from reconnect import ClientService

def policy(attempt):
    raise ZeroDivisionError("the policy raised")

application = service.Application("raising-policy")
for bad in (policy, lambda attempt: float("nan")):
    ClientService(
        TCP4ClientEndpoint(reactor, "127.0.0.1", {port}),
        Factory.forProtocol(Protocol),
        retryPolicy=bad,
    ).setServiceParent(application)
"""


@pytest_twisted.ensureDeferred
async def test_tacWithRaisingPolicyStopsOnSigterm(tmp_path: Any) -> None:
    """
    A C{.tac} whose services' policies raise or return nonsense: the
    services give up (logged, with the traceback), and C{twistd} ends
    promptly on SIGTERM, where it used to wait for ever for their stops.
    """
    tac = tmp_path / "raising.tac"
    tac.write_text(RAISING_POLICY_TAC.format(port=freePort()))
    process = twistd(tmp_path, "-y", str(tac))
    await until(lambda: process.output.count(b"Gave up connecting") == 2)
    assert b"ZeroDivisionError: the policy raised" in process.output
    began = time.monotonic()
    process.transport.signalProcess("TERM")  # type: ignore[union-attr]
    await process.ended
    # Before the rule, twistd never ended here; the bound is loose for
    # slow machines (a clean shutdown takes a fraction of a second).
    assert time.monotonic() - began < 3.0
    assert b"Server Shut Down." in process.output
