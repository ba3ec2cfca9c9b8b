"""
SayStuff's promise, that every request it accepts gets an answer: after
giving up, across stops and starts in any order, and under random sequences
of sends, connects, drops, answers and clock steps (a stateful property
test on a fake clock with a scripted server).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Optional

import pytest
from helpers import (
    EndpointAndClockRules,
    live,
    outcome,
    pending,
    sayStuffOnClock,
    stateMachineTest,
)
from hypothesis import strategies as st
from hypothesis.stateful import (
    initialize,
    invariant,
    precondition,
    rule,
)
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from reconnect import GaveUpConnecting, backoffPolicy, limitRetries
from reconnect.saystuff import (
    MaybeDelivered,
    NotConnectedError,
    QueueFullError,
    ResendBudget,
    SayStuffToServerService,
    ServiceStoppedError,
)
from reconnect.saystuff._book import RequestBook
from reconnect.saystuff._protocol import SayStuffClientProtocol
from reconnect.saystuff._relay import RelayProtocol
from reconnect.saystuff._service import REQUEST_OVERHEAD
from reconnect.testing import FakeAttempt, FakeEndpoint

#: The clock's step in the stateful test.
STEP = 0.1


def service(**kwargs: Any) -> tuple[SayStuffToServerService, Clock, FakeEndpoint]:
    return sayStuffOnClock(**kwargs)


def moved(
    **kwargs: Any,
) -> tuple[SayStuffToServerService, Clock, FakeAttempt, FakeAttempt, Deferred[bytes]]:
    """
    A service that sent C{b"first"} on one connection and then moved to a
    second (both connected, the first still owing its reply).
    """
    stuff, clock, endpoint = sayStuffOnClock(start=True, **kwargs)
    old = endpoint.last
    old.succeed()
    first = stuff.sendToServer(b"first")
    stuff.reconnect()
    new = endpoint.last
    new.succeed()
    return stuff, clock, old, new, first


def test_gaveUpFailsHeldRequestsAndRefusesNew() -> None:
    """
    A service that gave up fails every request it held with
    L{GaveUpConnecting}, which carries the last failure, and refuses new
    ones at once, until it is stopped and started again.
    """
    stuff, clock, endpoint = service(retryPolicy=limitRetries(backoffPolicy(), 0))
    stuff.startService()
    held = stuff.sendToServer(b"x")
    endpoint.last.fail()
    assert stuff.state == "gaveUp"
    error = outcome(held).value
    assert isinstance(error, GaveUpConnecting)
    assert "Connection was refused" in str(error)
    with pytest.raises(GaveUpConnecting):
        stuff.sendToServer(b"y")
    stuff.stopService()
    stuff.startService()
    again = stuff.sendToServer(b"z")
    endpoint.last.succeed()
    stuff_protocol = endpoint.last.protocol
    assert stuff_protocol is not None
    stuff_protocol.dataReceived(b"z\r\n")
    assert outcome(again) == b"z"
    stuff.stopService()


def test_restartWhileStopDrains() -> None:
    """
    Stopped while a reply is outstanding, then started again before the
    reply comes: when the old stop finishes it does not stop the
    restarted service, which goes on answering.
    """
    stuff, clock, endpoint = service()
    stuff.startService()
    endpoint.last.succeed()
    first = stuff.sendToServer(b"one")
    stopped = stuff.stopService()
    stuff.startService()
    protocol = endpoint.last.protocol
    assert protocol is not None
    protocol.dataReceived(b"one\r\n")
    assert outcome(first) == b"one"
    assert stopped.called
    assert stuff.running and stuff.state == "connected"
    second = stuff.sendToServer(b"two")
    protocol.dataReceived(b"two\r\n")
    assert outcome(second) == b"two"


def test_queueFullIsNotConnected() -> None:
    """
    C{QueueFullError} is a C{NotConnectedError}: code written for the seed's
    API catches it.
    """
    stuff, clock, endpoint = service(queueSize=1)
    stuff.startService()
    stuff.sendToServer(b"a").addErrback(lambda f: None)
    with pytest.raises(NotConnectedError):
        stuff.sendToServer(b"b")
    assert issubclass(QueueFullError, NotConnectedError)
    stuff.stopService()


def test_replyOfMaximumLengthWithSplitDelimiter() -> None:
    """
    A reply of exactly C{maxLineLength} bytes whose CR and LF arrive in
    different reads is a legal reply, not a framing error.
    """
    book = RequestBook(Clock())
    protocol = SayStuffClientProtocol(book, 10)
    protocol.makeConnection(StringTransport())
    protocol.attach()
    request = book.submit(b"q")
    protocol.dataReceived(b"0123456789\r")
    protocol.dataReceived(b"\n")
    assert outcome(request) == b"0123456789"


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"host": "", "port": 1}, ValueError, "host"),
        ({"host": b"h", "port": 1}, TypeError, "host"),
        ({"host": "h", "port": "7"}, TypeError, "port"),
        ({"host": "h", "port": 70000}, ValueError, "port"),
        ({"host": "h", "port": 1, "endpoint": "tcp:h:1"}, TypeError, "not both"),
        ({"endpoint": "tcp:h:1", "maxLineLength": 0}, ValueError, "maxLineLength"),
        ({"endpoint": "tcp:h:1", "maxLineLength": -5}, ValueError, "maxLineLength"),
        ({"endpoint": "tcp:h:1", "queueSize": 1.5}, TypeError, "queueSize"),
        ({"endpoint": "tcp:h:1", "timeout": "3"}, TypeError, "timeout"),
        ({"endpoint": "tcp:h:1", "stopTimeout": None}, TypeError, "stopTimeout"),
    ],
)
def test_badArguments(
    kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    """
    Bad constructor arguments are errors at the call, naming the argument.
    """
    with pytest.raises(error, match=name):
        SayStuffToServerService(reactor=MemoryReactorClock(), **kwargs)


def test_tlsWithoutTlsSupportSaysWhatToInstall() -> None:
    """
    A C{tls:} endpoint where pyOpenSSL is missing is one clear error that
    names the extra to install.
    """
    try:
        import OpenSSL  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r"reconnect\[tls\]"):
            SayStuffToServerService(
                endpoint="tls:example.com:443", reactor=MemoryReactorClock()
            )
    else:
        SayStuffToServerService(
            endpoint="tls:example.com:443", reactor=MemoryReactorClock()
        )


# -- the stateful property test -------------------------------------------------


class SayStuffPromises(EndpointAndClockRules):
    """
    A L{SayStuffToServerService} on a clock, its server scripted: the
    server answers, in order, some of the lines written to it so far with
    the same line (the bundled server's echo), except a poison line, on
    which it drops the connection.
    """

    @initialize(
        giveUpAfter=st.sampled_from([None, 0, 2]),
        timeout=st.sampled_from([None, 5.0]),
        queueSize=st.sampled_from([2, 100]),
        heartbeat=st.sampled_from([None, 2.0]),
        budget=st.sampled_from(["default", "none", "tiny"]),
        highWater=st.sampled_from([None, 30]),
    )
    def build(
        self,
        giveUpAfter: Optional[int],
        timeout: Optional[float],
        queueSize: int,
        heartbeat: Optional[float],
        budget: str,
        highWater: Optional[int],
    ) -> None:
        policy = backoffPolicy(jitter=lambda: 0.0)
        if giveUpAfter is not None:
            policy = limitRetries(policy, giveUpAfter)
        budgets = {
            "default": ResendBudget(),
            "none": None,
            "tiny": ResendBudget(ratio=0.0, perSecond=0.5, window=2.0),
        }
        self.policy = policy
        self.stuff, self.clock, self.endpoint = service(
            retryPolicy=policy,
            timeout=timeout,
            queueSize=queueSize,
            stopTimeout=3.0,
            heartbeat=heartbeat,
            resendBudget=budgets[budget],
            highWater=highWater,
        )
        self.producer = PausableProducer()
        self.stuff.registerProducer(self.producer)
        self.unsafe: set[bytes] = set()
        self.poison: set[bytes] = set()
        self.requests: list[tuple[bytes, list[object]]] = []
        self.serial = 0
        self.answered: dict[int, int] = {}
        self.stops: list[Deferred[None]] = []
        self.worldCut = False
        self.heartbeat = heartbeat
        # What each request is charged beyond its line: twice over with a
        # timer.
        self.overhead = REQUEST_OVERHEAD * (1 if timeout is None else 2)
        # When the last request settled, when each connection (by its
        # transport) last got a reply, and since when the current one is.
        self.settledAt = 0.0
        self.repliedAt: dict[int, float] = {}
        self.current: object = None
        self.currentSince = 0.0
        # The connection whose replacement is due, and by when.
        self.watched: Optional[tuple[FakeAttempt, float]] = None

    @precondition(lambda self: pending(self.endpoint))
    @rule()
    def connectSucceeds(self) -> None:
        """
        As the reactor does, a connection the client aborts ends at the
        reactor's next turn.
        """
        attempt = pending(self.endpoint)[-1]
        attempt.succeed()
        transport = attempt.transport
        assert transport is not None
        abort = transport.abortConnection

        def aborted() -> None:
            abort()
            self.clock.callLater(0, lambda: attempt.lost or attempt.lose())

        transport.abortConnection = aborted  # type: ignore[method-assign]

    @rule(seconds=st.sampled_from([0.1, 1.0, 10.0]))
    def advance(self, seconds: float) -> None:
        """
        Time passes in steps of L{STEP}, as it does for a reactor: a timer
        that a timer sets counts from when that one ran, not from the end
        of one long jump.
        """
        steps = round(seconds / STEP)
        self.clock.pump([seconds / steps] * steps)

    def requests_done(self) -> list[bool]:
        return [len(outcome) == 1 for _, outcome in self.requests]

    @rule()
    def start(self) -> None:
        self.stuff.startService()

    @rule()
    def stop(self) -> None:
        self.stops.append(self.stuff.stopService())

    @rule(idempotent=st.sampled_from([None, True, False]))
    def send(self, idempotent: Optional[bool]) -> None:
        self.serial += 1
        line = b"request %d" % self.serial
        try:
            reply = self.stuff.sendToServer(line, idempotent=idempotent)
        except (ServiceStoppedError, NotConnectedError, GaveUpConnecting):
            return
        if idempotent is False:
            self.unsafe.add(line)
        outcome: list[object] = []
        reply.addBoth(self.settled).addBoth(outcome.append)
        self.requests.append((line, outcome))

    @rule()
    def sendPoison(self) -> None:
        """
        A line that makes the server drop the connection whenever it reads
        it: it is never answered, and it fails (after the resend limit,
        or on a stop or a give-up) like any request.
        """
        self.serial += 1
        line = b"POISON %d" % self.serial
        try:
            reply = self.stuff.sendToServer(line)
        except (ServiceStoppedError, NotConnectedError, GaveUpConnecting):
            return
        self.poison.add(line)
        outcome: list[object] = []
        reply.addBoth(self.settled).addBoth(outcome.append)
        self.requests.append((line, outcome))

    def settled(self, result: object) -> object:
        self.settledAt = self.clock.seconds()
        return result

    @rule()
    def reconnect(self) -> None:
        self.stuff.reconnect()

    @precondition(lambda self: live(self.endpoint))
    @rule(data=st.data())
    def connectionDrops(self, data: st.DataObject) -> None:
        self.worldCut = True
        dropped = data.draw(st.sampled_from(live(self.endpoint)))
        if self.watched is not None and self.watched[0] is dropped:
            # The world, not a heartbeat, ended it: the policy paces the next.
            self.watched = None
        dropped.lose()

    @precondition(lambda self: live(self.endpoint))
    @rule(count=st.integers(1, 5), data=st.data())
    def serverAnswers(self, count: int, data: st.DataObject) -> None:
        attempt = data.draw(st.sampled_from(live(self.endpoint)))
        self.answer(attempt, count)

    def answer(self, attempt: FakeAttempt, count: int) -> None:
        assert attempt.transport is not None and attempt.protocol is not None
        written = attempt.transport.value().split(b"\r\n")[:-1]
        done = self.answered.get(id(attempt), 0)
        todo = written[done : done + count]
        poisoned = [n for n, line in enumerate(todo) if line in self.poison]
        if poisoned:
            todo = todo[: poisoned[0]]
        self.answered[id(attempt)] = done + len(todo)
        if todo:
            self.repliedAt[id(attempt.transport)] = self.clock.seconds()
            attempt.protocol.dataReceived(b"".join(line + b"\r\n" for line in todo))
        if poisoned and not attempt.lost:
            self.worldCut = True
            attempt.lose()

    @rule()
    def closeWhatWasClosed(self) -> None:
        """
        The reactor's part: a connection the client closed ends.
        """
        for attempt in live(self.endpoint):
            assert attempt.transport is not None
            if attempt.transport.disconnecting:
                attempt.lose()

    @invariant()
    def promisesKept(self) -> None:
        if not hasattr(self, "stuff"):
            return
        writes: Counter[bytes] = Counter()
        for attempt in self.endpoint.attempts:
            if attempt.transport is not None:
                writes.update(attempt.transport.value().split(b"\r\n")[:-1])
        pendingBytes = 0
        for line, result in self.requests:
            if result and not isinstance(result[0], Failure):
                assert result == [line]
                assert line not in self.poison, "a poison line was answered"
            if result and isinstance(result[0], Failure):
                if result[0].check(MaybeDelivered):
                    assert writes[line] >= 1, "never written, yet maybe delivered"
            if not result:
                pendingBytes += len(line) + self.overhead
            if line in self.unsafe:
                assert writes[line] <= 1, "an at-most-once request written twice"
        # Heartbeats are pending too, while they wait for their replies
        # (with their timer, twice the overhead).
        beat = 4 + 2 * REQUEST_OVERHEAD
        assert self.stuff.book.pendingBytes - pendingBytes in range(0, 100 * beat, beat)
        book = self.stuff.book
        assert book.awaited == sum(lane.awaited for lane in book._lanes)
        self.deadConnectionsReplaced()
        assert self.producer.paused == self.stuff.book.paused
        state = self.stuff.state
        if state == "gaveUp":
            assert self.stuff.book.queued == 0
            assert all(self.requests_done())
        if not self.stuff.running and self.stuff.clientService.state == "stopped":
            assert all(self.requests_done())
            assert all(stop.called for stop in self.stops)
        if self.stuff.running:
            assert self.stuff.clientService.running
        # A connection is attached to the book from its connect to its end.
        attached = [a for a in live(self.endpoint) if getattr(a.protocol, "lane", None)]
        assert len(attached) == self.stuff.book.lanes
        # Moves never resend: only a cut (by the world, or an abort of a
        # connection deemed dead) does.
        aborted = any(
            a.transport is not None and a.transport.disconnected
            for a in self.endpoint.attempts
        )
        if not self.worldCut and not aborted:
            assert self.stuff.book.resent == 0

    def deadConnectionsReplaced(self) -> None:
        """
        With heartbeats on, a connection with nothing awaited and nothing
        answered is replaced within C{heartbeat + heartbeatTimeout} of its
        last sign of life (its connect, its last reply, the last request
        settling), plus the retry policy's delay when it is not the first
        in a row to die so: by then it is no longer the service's, and a
        newer attempt has started.  Each timer of the chain (the beat, the
        heartbeat's timeout, the abort's end) may run up to a step late.
        """
        stuff = self.stuff
        protocol = stuff._protocol
        now = self.clock.seconds()
        if protocol is not self.current:
            self.current, self.currentSince = protocol, now
        if self.heartbeat is None:
            return
        if not stuff.running or stuff.state == "gaveUp":
            self.watched = None
            return
        if protocol is not None and stuff.state == "connected":
            if all(self.requests_done()) and not stuff.book.queued:
                transport = protocol.transport
                [attempt] = [
                    a for a in self.endpoint.attempts if a.transport is transport
                ]
                quietSince = max(
                    self.currentSince,
                    self.repliedAt.get(id(transport), 0.0),
                    self.settledAt,
                )
                heartbeatTimeout = stuff._heartbeatTimeout
                assert heartbeatTimeout is not None
                self.watched = (attempt, quietSince + self.heartbeat + heartbeatTimeout)
            else:
                # Requests flow: the idle check watches it.
                self.watched = None
        if self.watched is None:
            return
        attempt, due = self.watched
        late = now - (due + 3 * STEP)
        if late <= 1e-9:
            return
        current = None if stuff._protocol is None else stuff._protocol.transport
        assert current is not attempt.transport, (
            f"a connection quiet for heartbeat + heartbeatTimeout (due {due}) "
            f"still the service's at {now}"
        )
        deadInARow = stuff._deadBeats
        delay = 0.0 if deadInARow <= 1 else self.policy(deadInARow - 1)
        if late > delay + 1e-9:
            assert self.endpoint.attempts[-1] is not attempt, (
                f"a connection dropped (due {due}) not replaced at {now}"
            )
            self.watched = None

    def teardown(self) -> None:
        if not hasattr(self, "stuff"):
            return
        # A running service reconnects when the server is there and answers.
        if self.stuff.running and self.stuff.state != "gaveUp":
            for _ in range(3):
                self.closeWhatWasClosed()
                self.clock.advance(120)
                for attempt in pending(self.endpoint):
                    attempt.succeed()
            # Dead heartbeats may have dropped connections on the way: from
            # here on the server answers at once, and they come back.
            for _ in range(300):
                self.closeWhatWasClosed()
                for attempt in pending(self.endpoint):
                    attempt.succeed()
                for attempt in live(self.endpoint):
                    self.answer(attempt, 1000)
                closing = [a for a in live(self.endpoint) if a.transport.disconnecting]
                # A poison line kills connections until it fails.
                poisoned = any(
                    line in self.poison and not outcome
                    for line, outcome in self.requests
                )
                if self.stuff.state == "gaveUp" or (
                    self.stuff.state == "connected" and not closing and not poisoned
                ):
                    break
                # Poison lines, with nothing answered between, meet the
                # policy's growing delays (up to a minute).
                self.clock.advance(60 if poisoned else 1)
            # A policy that gives up may have, on an idle check's abort.
            assert self.stuff.state in ("connected", "gaveUp")
        if self.stuff.running and self.stuff.state == "connected":
            progress = True
            while progress:
                progress = False
                for attempt in live(self.endpoint):
                    before = self.answered.get(id(attempt), 0)
                    self.answer(attempt, 1000)
                    progress |= self.answered.get(id(attempt), 0) != before
            self.clock.advance(0)
            assert all(self.requests_done()), "an answered request is waiting"
        stopped = self.stuff.stopService()
        self.clock.advance(10)
        for attempt in live(self.endpoint):
            attempt.lose()
        self.clock.advance(10)
        assert stopped.called
        assert all(stop.called for stop in self.stops)
        assert all(self.requests_done())
        assert self.clock.getDelayedCalls() == []


class PausableProducer:
    paused = False

    def pauseProducing(self) -> None:
        assert not self.paused
        self.paused = True

    def resumeProducing(self) -> None:
        assert self.paused
        self.paused = False

    def stopProducing(self) -> None:
        pass


TestSayStuffPromises = stateMachineTest(SayStuffPromises, 200)


def test_quietConnectionReplacedWithinHeartbeatAndTimeout() -> None:
    """
    The stateful test's invariant on a run it needs luck to find: a reply
    just after the connection's first beat was due.  The next beat is due
    C{heartbeat} after that reply (not a whole C{heartbeat} after the beat
    that found the connection busy), so the dead connection is replaced
    within C{heartbeat + heartbeatTimeout} of its last sign of life.
    """
    run = SayStuffPromises()
    run.build(
        giveUpAfter=None,
        timeout=None,
        queueSize=100,
        heartbeat=2.0,
        budget="none",
        highWater=None,
    )
    steps = [run.start, run.connectSucceeds, lambda: run.advance(1.0)]
    steps += [lambda: run.send(None), lambda: run.answer(run.endpoint.last, 1)]
    steps += [lambda: run.advance(1.0)] * 6
    for step in steps:
        step()
        run.promisesKept()
    assert len(run.endpoint.attempts) == 2
    run.teardown()


def test_relayBoundsAnInputLine() -> None:
    """
    A local client that sends more than a line's worth of bytes with no
    newline gets an C{ERROR} line in its place, after the answers to its
    earlier lines; the relay buffers no more than one line's worth, drops
    the rest of the long line and reads the lines after it as usual.
    """
    stuff, clock, endpoint = service(maxLineLength=10)
    stuff.startService()
    endpoint.last.succeed()
    local = RelayProtocol(stuff)
    transport = StringTransport()
    local.makeConnection(transport)
    local.dataReceived(b"ok\n" + b"x" * 8)
    for _ in range(1000):
        local.dataReceived(b"x" * 1000)
        assert len(local._buffer) <= 11
    local.dataReceived(b"xx\r\nnext\n")
    server = endpoint.last.protocol
    assert server is not None
    server.dataReceived(b"ok\r\nnext\r\n")
    assert transport.value() == (
        b"ok\r\nERROR ValueError: line over the limit of 10 bytes\r\nnext\r\n"
    )
    assert not transport.disconnecting
    stuff.stopService()


def test_reconnectIsMakeBeforeBreak() -> None:
    """
    C{reconnect()} keeps the current connection until a new one is up; then
    new requests go to the new one while the old one delivers the replies it
    owes and closes.  Nothing fails and nothing is written twice.
    """
    stuff, clock, endpoint = service()
    stuff.startService()
    old = endpoint.last
    old.succeed()
    early = stuff.sendToServer(b"early")
    stuff.reconnect()
    assert stuff.state == "handingOver"
    meanwhile = stuff.sendToServer(b"meanwhile")
    assert len(endpoint.attempts) == 2 and not old.transport.disconnecting
    new = endpoint.last
    new.succeed()
    assert stuff.state == "connected"
    late = stuff.sendToServer(b"late")
    assert old.transport.value() == b"early\r\nmeanwhile\r\n"
    assert new.transport.value() == b"late\r\n"
    assert stuff.book.lanes == 2 and not old.transport.disconnecting
    new.protocol.dataReceived(b"LATE\r\n")
    old.protocol.dataReceived(b"EARLY\r\nMEANWHILE\r\n")
    assert [outcome(d) for d in (early, meanwhile, late)] == [
        b"EARLY",
        b"MEANWHILE",
        b"LATE",
    ]
    assert old.transport.disconnecting
    old.lose()
    assert stuff.book.lanes == 1
    assert (stuff.book.resent, stuff.book.failed, stuff.book.written) == (0, 0, 3)
    assert stuff.clientService.stats().connects == 2
    stopped = stuff.stopService()
    new.lose()
    assert stopped.called
    assert clock.getDelayedCalls() == []


def test_reconnectKeepsTheConnectionWhenNoNewOneComes() -> None:
    """
    If the new connection of a move cannot be made, the current one stays,
    and nothing is counted as a failure.
    """
    stuff, clock, endpoint = service()
    stuff.startService()
    old = endpoint.last
    old.succeed()
    reply = stuff.sendToServer(b"q")
    stuff.reconnect()
    endpoint.last.fail()
    assert stuff.state == "connected"
    assert stuff.clientService.stats().failures == 0
    old.protocol.dataReceived(b"A\r\n")
    assert outcome(reply) == b"A"
    assert not old.transport.disconnecting
    stuff.stopService()


def test_oldConnectionLostWhileDrainingResendsOnTheNewOne() -> None:
    """
    A left-behind connection that drops before its replies came: what it
    held is written again on the new connection (as after any cut), alone,
    once what the new one carries is answered.
    """
    stuff, clock, old, new, first = moved()
    second = stuff.sendToServer(b"second")
    old.lose()
    assert new.transport.value() == b"second\r\n"
    new.protocol.dataReceived(b"2\r\n")
    assert new.transport.value() == b"second\r\nfirst\r\n"
    new.protocol.dataReceived(b"1\r\n")
    assert (outcome(first), outcome(second)) == (b"1", b"2")
    assert stuff.book.resent == 1
    stuff.stopService()


def test_oldConnectionThatNeverDrainsIsAborted() -> None:
    """
    A left-behind connection whose server goes quiet is aborted after
    C{idleTimeout}; its requests are written on the new connection.
    """
    stuff, clock, old, new, stuck = moved(idleTimeout=5.0)
    clock.advance(4.9)
    assert not old.transport.disconnecting
    clock.advance(0.2)
    old.lose()
    assert new.transport.value() == b"first\r\n"
    new.protocol.dataReceived(b"S\r\n")
    assert outcome(stuck) == b"S"
    stuff.stopService()


@pytest.mark.parametrize("newTraffic", [True, False])
def test_idleCheckAfterAMoveSparesTheNewConnection(newTraffic: bool) -> None:
    """
    After a move, a request the old connection still owes does not make
    the idle check abort the new one (answering at once, or carrying
    nothing): only the old one is aborted, once overdue.
    """
    stuff, clock, old, new, first = moved(idleTimeout=10.0)
    for second in range(1, 12):
        clock.advance(1)
        if newTraffic:
            reply = stuff.sendToServer(b"new %d" % second)
            new.protocol.dataReceived(b"new %d\r\n" % second)
            assert outcome(reply) == b"new %d" % second
    assert old.transport.disconnecting
    assert not new.transport.disconnecting
    old.lose()
    assert not new.transport.disconnecting
    stuff.stopService()


def test_heartbeatsAfterAMoveNotHeldOffByTheOldConnection() -> None:
    """
    After a move, the new connection gets its heartbeats while the old one
    still owes a reply.
    """
    stuff, clock, old, new, first = moved(heartbeat=2.0, idleTimeout=None)
    clock.advance(2.0)
    assert new.transport.value() == b"PING\r\n"
    new.protocol.dataReceived(b"PONG\r\n")
    assert not new.transport.disconnecting
    old.protocol.dataReceived(b"1\r\n")
    assert outcome(first) == b"1"
    stuff.stopService()


def test_stopWhileDrainingWaitsForTheOldReplies() -> None:
    """
    Stopping during a move waits for the replies both connections owe,
    then closes both.
    """
    stuff, clock, old, new, first = moved()
    second = stuff.sendToServer(b"second")
    stopped = stuff.stopService()
    old.protocol.dataReceived(b"1\r\n")
    assert old.transport.disconnecting
    old.lose()
    assert not stopped.called
    new.protocol.dataReceived(b"2\r\n")
    new.lose()
    assert stopped.called
    assert (outcome(first), outcome(second)) == (b"1", b"2")
