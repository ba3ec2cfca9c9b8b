"""
What SayStuff promises about delivery, on a clock with a scripted server:
at-most-once requests (L{MaybeDelivered}), the resend budget, the queue's
byte bound, back-pressure to producers, and heartbeats on idle connections.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import outcome, sayStuffOnClock
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher

from reconnect import GaveUpConnecting
from reconnect.saystuff import (
    MaybeDelivered,
    NotConnectedError,
    NotConnectedGaveUp,
    QueueFullError,
    RequestTimedOut,
    ResendBudget,
    ResendBudgetExhausted,
    SayStuffToServerService,
    ServiceStoppedError,
)
from reconnect.saystuff._relay import RelayProtocol
from reconnect.saystuff._service import REQUEST_OVERHEAD
from reconnect.testing import FakeAttempt, FakeEndpoint


def service(**kwargs: Any) -> tuple[SayStuffToServerService, Clock, FakeEndpoint]:
    return sayStuffOnClock(start=True, **kwargs)


def written(attempt: FakeAttempt) -> list[bytes]:
    assert attempt.transport is not None
    return attempt.transport.value().split(b"\r\n")[:-1]


def answer(attempt: FakeAttempt, *lines: bytes) -> None:
    assert attempt.protocol is not None
    attempt.protocol.dataReceived(b"".join(line + b"\r\n" for line in lines))


# -- at-most-once -------------------------------------------------------------


def test_notIdempotentFailsWithMaybeDelivered() -> None:
    """
    A request that is not idempotent, written and unanswered when the
    connection drops, fails with L{MaybeDelivered} and is never written
    again; an idempotent one is; one that was still queued is sent on the
    next connection, whatever it is.
    """
    stuff, clock, endpoint = service()
    first = endpoint.last
    first.succeed()
    unsafe = stuff.sendToServer(b"debit 10", idempotent=False)
    safe = stuff.sendToServer(b"balance")
    first.lose()
    queuedUnsafe = stuff.sendToServer(b"debit 5", idempotent=False)
    error = outcome(unsafe).value
    assert isinstance(error, MaybeDelivered) and isinstance(error, ConnectionLost)
    clock.advance(1.0)
    second = endpoint.last
    second.succeed()
    assert written(second) == [b"balance"]
    answer(second, b"90")
    assert written(second) == [b"balance", b"debit 5"]
    answer(second, b"ok")
    assert (outcome(safe), outcome(queuedUnsafe)) == (b"90", b"ok")
    assert (stuff.book.resent, stuff.book.maybeDelivered) == (1, 1)
    stuff.stopService()


def test_serviceWideDefault() -> None:
    """
    C{idempotent=False} on the service makes every request at-most-once,
    unless the request says otherwise.
    """
    stuff, clock, endpoint = service(idempotent=False)
    endpoint.last.succeed()
    unsafe = stuff.sendToServer(b"a")
    safe = stuff.sendToServer(b"b", idempotent=True)
    endpoint.last.lose()
    assert outcome(unsafe).check(MaybeDelivered)
    clock.advance(1.0)
    endpoint.last.succeed()
    assert written(endpoint.last) == [b"b"]
    answer(endpoint.last, b"B")
    assert outcome(safe) == b"B"
    stuff.stopService()


def test_noResendMeansMaybeDelivered() -> None:
    """
    With C{resendOnReconnect=False}, what was in flight fails with
    L{MaybeDelivered}, still a C{ConnectionLost} as before.
    """
    stuff, clock, endpoint = service(resendOnReconnect=False)
    endpoint.last.succeed()
    reply = stuff.sendToServer(b"a")
    endpoint.last.lose()
    assert outcome(reply).check(MaybeDelivered, ConnectionLost)
    stuff.stopService()


def test_badIdempotent() -> None:
    stuff, clock, endpoint = service()
    with pytest.raises(TypeError, match="idempotent"):
        stuff.sendToServer(b"a", idempotent="yes")  # type: ignore[arg-type]
    stuff.stopService()


# -- the resend budget --------------------------------------------------------


def test_budgetArithmetic() -> None:
    """
    The budget starts with C{perSecond * window}; earns C{perSecond} a
    second and C{ratio} per answer, up to its cap.
    """
    budget = ResendBudget(ratio=0.2, perSecond=10.0, window=10.0)
    assert budget.grant(150, answered=0, now=0.0) == 100
    assert budget.grant(10, answered=0, now=0.0) == 0
    assert budget.grant(10, answered=0, now=0.5) == 5
    assert budget.grant(100, answered=100, now=0.5) == 20
    assert budget.grant(1000, answered=0, now=1000.0) == 100
    assert budget.grant(1000, answered=5000, now=1000.0) == 1000
    assert (budget.granted, budget.refused) == (1225, 1045)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 1000),
            st.integers(0, 10_000),
            st.floats(0, 100, allow_nan=False),
        ),
        max_size=50,
    )
)
def test_budgetNeverOverItsBound(calls: list[tuple[int, int, float]]) -> None:
    """
    Whatever the calls, what a budget grants is never more than its reserve
    plus what time and answers earned.
    """
    budget = ResendBudget()
    now, answered, granted = 0.0, 0, 0
    for wanted, moreAnswers, later in calls:
        now += later
        answered += moreAnswers
        allowed = budget.grant(wanted, moreAnswers, now)
        assert 0 <= allowed <= wanted
        granted += allowed
        assert granted <= 100 + 10 * now + 0.2 * answered + 1e-6
        assert budget.tokens >= 0 and not math.isnan(budget.tokens)


@pytest.mark.parametrize("bad", [-1, math.nan, math.inf, "1"])
def test_budgetArguments(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        ResendBudget(ratio=bad)
    with pytest.raises((TypeError, ValueError)):
        SayStuffToServerService("h", 1, resendBudget=0.2)  # type: ignore[arg-type]


def test_serverFailingEveryRequestGetsOnlyTheBudget() -> None:
    """
    A server takes each connection's requests and drops the connection
    without answering.  Of 500 requests written on the first connection,
    what the default budget allows (100 at once) is kept to be written
    again, and the rest fail with L{ResendBudgetExhausted}; as nothing was
    answered, the next connections write the kept ones one at a time, each
    dying alone, and those fail after the resend limit: no request is left
    waiting, and the server never got the backlog again.
    """
    stuff, clock, endpoint = service(retryPolicy=lambda n: 0.1, queueSize=1000)
    failures: list[Any] = []
    for n in range(500):
        stuff.sendToServer(b"r%d" % n).addErrback(failures.append)
    endpoint.last.succeed()
    assert len(written(endpoint.last)) == 500
    endpoint.last.lose()
    assert len(failures) == 400
    assert all(f.check(ResendBudgetExhausted) for f in failures)
    assert stuff.book.resent == stuff.book.queued == 100
    received = 0
    while stuff.book.queued:
        clock.advance(0.1)
        attempt = endpoint.last
        attempt.succeed()
        received += len(written(attempt))
        attempt.lose()
    assert received == 100 * 3
    assert len(failures) == 500
    assert all(f.check(MaybeDelivered) for f in failures)
    stuff.stopService()


def test_noBudget() -> None:
    """
    C{resendBudget=None}: every cut keeps everything to be written again.
    """
    stuff, clock, endpoint = service(resendBudget=None)
    endpoint.last.succeed()
    replies = [stuff.sendToServer(b"r%d" % n) for n in range(300)]
    endpoint.last.lose()
    assert stuff.book.resent == stuff.book.queued == 300
    assert not any(reply.called for reply in replies)
    stuff.stopService()
    assert all(outcome(reply).check(ServiceStoppedError) for reply in replies)


# -- the queue in bytes ---------------------------------------------------------


def test_queueBoundedInBytes() -> None:
    """
    While disconnected, the queue takes requests up to C{queueBytes} bytes;
    past it, L{QueueFullError}; what was withdrawn frees its room.
    """
    stuff, clock, endpoint = service(queueBytes=10, requestOverhead=0)
    first = stuff.sendToServer(b"12345")
    stuff.sendToServer(b"67890")
    with pytest.raises(QueueFullError, match="queueBytes=10"):
        stuff.sendToServer(b"x")
    first.cancel()
    assert outcome(first).check(CancelledError)
    stuff.sendToServer(b"abcde")
    endpoint.last.succeed()
    assert written(endpoint.last) == [b"67890", b"abcde"]
    assert stuff.book.pendingBytes == 10
    answer(endpoint.last, b"1", b"2")
    assert stuff.book.pendingBytes == 0
    stuff.stopService()


# -- back-pressure ----------------------------------------------------------------


class Producer:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


def test_producersPausedAndResumed() -> None:
    """
    Producers are paused once the bytes queued or in flight reach
    C{highWater}, and resumed once back at C{lowWater}; one registered
    while paused is paused at once; one unregistered is left alone.
    """
    stuff, clock, endpoint = service(highWater=10, lowWater=4, requestOverhead=0)
    endpoint.last.succeed()
    early, late, gone = Producer(), Producer(), Producer()
    stuff.registerProducer(early, True)
    stuff.registerProducer(gone, True)
    stuff.sendToServer(b"12345")
    assert early.calls == []
    stuff.sendToServer(b"67890")
    assert early.calls == ["pause"] and stuff.book.paused
    stuff.registerProducer(late, True)
    assert late.calls == ["pause"]
    stuff.unregisterProducer(gone)
    answer(endpoint.last, b"1")
    assert early.calls == ["pause"]
    answer(endpoint.last, b"2")
    assert early.calls == late.calls == ["pause", "resume"]
    assert gone.calls == ["pause"]
    with pytest.raises(TypeError):
        stuff.registerProducer(Producer(), False)
    stuff.stopService()


def test_raisingProducerIsLogged() -> None:
    """
    A producer whose pauseProducing raises is logged; the others are still
    paused.
    """
    stuff, clock, endpoint = service(highWater=2)

    class Raising(Producer):
        def pauseProducing(self) -> None:
            raise RuntimeError("no")

    good = Producer()
    stuff.registerProducer(Raising())
    stuff.registerProducer(good)
    logged: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        stuff.sendToServer(b"ab")
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert good.calls == ["pause"]
    assert [e["log_failure"].value.args for e in logged if "log_failure" in e] == [
        ("no",)
    ]
    stuff.stopService()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"highWater": 10, "lowWater": 10},
        {"highWater": 0},
        {"queueBytes": -1},
        {"highWater": 1.5},
    ],
)
def test_watermarkArguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        SayStuffToServerService("h", 1, **kwargs)


def test_relayPausesItsClientsInsteadOfRefusing() -> None:
    """
    The relay registers each local client's transport: a client that sends
    faster than the server answers is paused, then resumed; nothing is
    refused.
    """
    stuff, clock, endpoint = service(highWater=100, lowWater=20, queueSize=5)
    endpoint.last.succeed()
    local = RelayProtocol(stuff)
    transport = StringTransport()
    local.makeConnection(transport)
    local.dataReceived(b"".join(b"line %03d\n" % n for n in range(20)))
    assert transport.producerState == "paused"
    assert len(written(endpoint.last)) < 20
    answered = 0
    while answered < 20:
        lines = written(endpoint.last)[answered:]
        answer(endpoint.last, *lines)
        answered += len(lines)
    assert transport.producerState == "producing"
    assert transport.value().count(b"\r\n") == 20
    assert b"ERROR" not in transport.value()
    local.connectionLost(ConnectionLost())
    assert stuff._producers == []
    stuff.stopService()


# -- heartbeats -----------------------------------------------------------------


def test_heartbeatOnAnIdleConnection() -> None:
    """
    After C{heartbeat} seconds with nothing outstanding, the service sends
    C{heartbeatLine}; its reply goes to no caller; while requests flow, no
    heartbeat is sent, and the next is sent C{heartbeat} seconds after the
    last reply.
    """
    stuff, clock, endpoint = service(heartbeat=5.0, heartbeatLine=b"PING")
    endpoint.last.succeed()
    clock.advance(4.9)
    assert written(endpoint.last) == []
    clock.advance(0.1)
    assert written(endpoint.last) == [b"PING"]
    answer(endpoint.last, b"PONG")
    reply = stuff.sendToServer(b"work")
    clock.advance(5.0)
    assert written(endpoint.last) == [b"PING", b"work"]
    answer(endpoint.last, b"done")
    assert outcome(reply) == b"done"
    # Counted from the reply, the last sign of life, not from a beat: a
    # dead connection is found within heartbeat + heartbeatTimeout.
    clock.advance(4.9)
    assert written(endpoint.last) == [b"PING", b"work"]
    clock.advance(0.1)
    assert written(endpoint.last) == [b"PING", b"work", b"PING"]
    assert stuff.status()["heartbeats"] == 2
    stuff.stopService()


def test_unansweredHeartbeatReplacesTheConnection() -> None:
    """
    No reply to a heartbeat within C{heartbeatTimeout}: the connection is
    aborted (one event says so) and a new one made; the heartbeat is not
    written again there.
    """
    stuff, clock, endpoint = service(
        heartbeat=5.0, heartbeatTimeout=2.0, retryPolicy=lambda n: 0.5
    )
    endpoint.last.succeed()
    logged: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        clock.advance(5.0)
        clock.advance(1.9)
        assert not endpoint.last.transport.disconnecting  # type: ignore[union-attr]
        clock.advance(0.1)
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert endpoint.last.transport.disconnected  # type: ignore[union-attr]
    assert [e["reconnectEvent"] for e in logged if "reconnectEvent" in e] == [
        "heartbeatTimeout",
        "dropping",
    ]
    endpoint.last.lose()
    assert len(endpoint.attempts) == 2, "reconnects at once, with no wait"
    endpoint.last.succeed()
    assert written(endpoint.last) == []
    assert stuff.clientService.stats().failures == 0
    stuff.stopService()


def test_heartbeatArguments() -> None:
    with pytest.raises(ValueError):
        SayStuffToServerService("h", 1, heartbeat=0)
    with pytest.raises(ValueError):
        SayStuffToServerService("h", 1, heartbeat=1, heartbeatLine=b"a\nb")
    with pytest.raises(TypeError):
        SayStuffToServerService("h", 1, heartbeat=1, heartbeatLine="PING")  # type: ignore[arg-type]


def test_relayWaitsForAConnectionInsteadOfRefusing() -> None:
    """
    With no connection, a relay client that sends more lines than the queue
    holds is paused once the queue is full; the lines it already sent wait
    in the relay; nothing is refused, and all are answered once connected.
    """
    stuff, clock, endpoint = service(queueSize=5)
    local = RelayProtocol(stuff)
    transport = StringTransport()
    local.makeConnection(transport)
    local.dataReceived(b"".join(b"line %03d\n" % n for n in range(20)))
    assert transport.producerState == "paused"
    assert stuff.book.queued == 5
    endpoint.last.succeed()
    answered = 0
    while answered < 20:
        lines = written(endpoint.last)[answered:]
        assert lines
        answer(endpoint.last, *lines)
        answered += len(lines)
    assert transport.value().count(b"\r\n") == 20
    assert b"ERROR" not in transport.value()
    stuff.stopService()


def test_fullQueueWithoutWatermarksResumesOnceThereIsRoom() -> None:
    """
    With C{highWater=None}, a full queue still pauses producers (rather
    than refusing), and they resume as soon as the queue has room again.
    """
    stuff, clock, endpoint = service(queueSize=2, highWater=None)
    producer = Producer()
    stuff.registerProducer(producer)
    stuff.sendToServer(b"a")
    stuff.sendToServer(b"b")
    assert producer.calls == ["pause"]
    endpoint.last.succeed()
    assert producer.calls == ["pause", "resume"]
    stuff.stopService()


# -- issue 21 and 26: what a hostile server or a flood must not do -----------


def test_emptyLinesMeetBackPressure() -> None:
    """
    Each request costs C{requestOverhead} bytes beyond its line: a flood of
    empty lines to a server that never answers pauses the producers after
    C{highWater / requestOverhead} requests, and while disconnected the
    queue holds at most C{queueBytes / requestOverhead} of them.
    """
    stuff, clock, endpoint = service(queueSize=10**6)
    producer = Producer()
    stuff.registerProducer(producer)
    sent, pausedAt = 0, None
    while sent < 10**5:
        try:
            stuff.sendToServer(b"")
        except QueueFullError:
            break
        sent += 1
        if pausedAt is None and stuff.book.paused:
            pausedAt = sent
    assert pausedAt == 4 * 1024 * 1024 // REQUEST_OVERHEAD
    assert sent == 8 * 1024 * 1024 // REQUEST_OVERHEAD
    assert stuff.book.pendingBytes == sent * REQUEST_OVERHEAD
    assert producer.calls == ["pause"]
    stuff.stopService()

    stuff, clock, endpoint = service()
    endpoint.last.succeed()
    stuff.registerProducer(producer)
    producer.calls.clear()
    sent = 0
    while sent < 10**5 and not stuff.book.paused:
        stuff.sendToServer(b"")
        sent += 1
    assert sent == 4 * 1024 * 1024 // REQUEST_OVERHEAD
    assert producer.calls == ["pause"]
    answer(endpoint.last, *[b""] * (sent // 2))
    assert producer.calls == ["pause", "resume"]
    stuff.stopService()


def test_requestWithATimeoutCostsTwice() -> None:
    """
    A request with a timeout holds a timer too, which about doubles what it
    costs (about 1.6 KiB measured through the relay, against 1 KiB without
    one): it is charged twice C{requestOverhead}, whether the timeout is
    the service's or its own, and its charge is returned once it is
    settled.
    """
    stuff, clock, endpoint = service(timeout=30.0, queueSize=10**6)
    stuff.sendToServer(b"queued")
    assert stuff.book.pendingBytes == 6 + 2 * REQUEST_OVERHEAD
    endpoint.last.succeed()
    plain = stuff.sendToServer(b"plain", timeout=None)
    assert stuff.book.pendingBytes == 11 + 3 * REQUEST_OVERHEAD
    answer(endpoint.last, b"Q", b"P")
    assert outcome(plain) == b"P"
    assert stuff.book.pendingBytes == 0
    own = stuff.sendToServer(b"own")
    clock.advance(31)
    assert outcome(own).check(RequestTimedOut)
    assert stuff.book.pendingBytes == 0
    producer = Producer()
    stuff.registerProducer(producer)
    sent = 0
    while not stuff.book.paused:
        stuff.sendToServer(b"", timeout=5.0)
        sent += 1
    assert sent == 4 * 1024 * 1024 // (2 * REQUEST_OVERHEAD)
    stuff.stopService()
    clock.advance(10)


def test_poisonLineFailsAfterTheResendLimit() -> None:
    """
    A line that makes the server drop the connection is written at most
    C{1 + resendLimit} times (4 by default), then fails with
    L{MaybeDelivered}; the requests after it are answered.
    """
    stuff, clock, endpoint = service()
    endpoint.last.succeed()
    poison = stuff.sendToServer(b"poison")
    for _ in range(4):
        assert written(endpoint.last) == [b"poison"]
        endpoint.last.lose()
        clock.advance(1.0)
        endpoint.last.succeed()
    failure = outcome(poison)
    assert failure.check(MaybeDelivered)
    assert "lost each of the 4 times it was written" in str(failure.value)
    assert written(endpoint.last) == []
    later = stuff.sendToServer(b"fine")
    answer(endpoint.last, b"fine")
    assert outcome(later) == b"fine"
    stuff.stopService()


def test_resendLimitArguments() -> None:
    with pytest.raises(ValueError):
        SayStuffToServerService("h", 1, resendLimit=-1)
    with pytest.raises(TypeError):
        SayStuffToServerService("h", 1, requestOverhead=1.5)  # type: ignore[arg-type]
    SayStuffToServerService("h", 1, resendLimit=None, requestOverhead=0)


def test_timedOutRequestDoesNotStopHeartbeats() -> None:
    """
    A request that timed out is awaited no more: with C{heartbeat=5} and no
    idle timeout, a silent connection still gets its heartbeat and is
    replaced, within two beats and the heartbeat timeout.
    """
    stuff, clock, endpoint = service(heartbeat=5.0, idleTimeout=None)
    first = endpoint.last
    first.succeed()
    reply = stuff.sendToServer(b"lost in the void", timeout=1.0)
    clock.pump([0.5] * 2)
    assert outcome(reply).check(RequestTimedOut)
    clock.pump([0.5] * 28)
    assert first.transport is not None and first.transport.disconnected
    assert written(first) == [b"lost in the void", b"PING"]
    stuff.stopService()


def test_deadHeartbeatsInARowMeetTheRetryPolicy() -> None:
    """
    Against a server that accepts and never answers: the first connection
    a heartbeat finds dead is replaced at once; the next ones, with no
    reply between, wait the policy's delays for 1, 2, ... failures, and
    the log says so.  A reply starts the count afresh.
    """
    stuff, clock, endpoint = service(
        heartbeat=1.0, retryPolicy=lambda attempt: 10.0 * attempt
    )
    logged: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        endpoint.last.succeed()
        clock.pump([0.5] * 4)
        assert len(endpoint.attempts) == 1
        endpoint.last.lose()
        assert len(endpoint.attempts) == 2, "the first: at once"
        for delay in (10.0, 20.0):
            endpoint.last.succeed()
            clock.pump([0.5] * 4)
            endpoint.last.lose()
            assert stuff.state == "waiting"
            attempts = len(endpoint.attempts)
            clock.advance(delay - 0.1)
            assert len(endpoint.attempts) == attempts
            clock.advance(0.1)
            assert len(endpoint.attempts) == attempts + 1
        endpoint.last.succeed()
        clock.pump([0.5] * 2)
        answer(endpoint.last, b"PONG")
        clock.pump([0.5] * 4)
        endpoint.last.lose()
        assert stuff.state == "connecting", "after a reply: at once again"
    finally:
        globalLogPublisher.removeObserver(logged.append)
    said = [
        (e["reconnectEvent"], e.get("then"), e.get("delay"))
        for e in logged
        if e.get("reconnectEvent") in ("heartbeatTimeout", "dropping", "disconnected")
    ]
    assert said == [
        ("heartbeatTimeout", "connecting again at once", None),
        ("dropping", None, None),
        (
            "heartbeatTimeout",
            "2 connections in a row died so: the retry policy paces the next attempt",
            None,
        ),
        ("dropping", None, None),
        ("disconnected", None, 10.0),
        (
            "heartbeatTimeout",
            "3 connections in a row died so: the retry policy paces the next attempt",
            None,
        ),
        ("dropping", None, None),
        ("disconnected", None, 20.0),
        ("heartbeatTimeout", "connecting again at once", None),
        ("dropping", None, None),
    ]
    stuff.stopService()


def test_defaultIdleTimeoutIsOnTime() -> None:
    """
    With the default C{idleTimeout} of 30 s, a connection is aborted 30 s
    after the write that went unanswered, not up to 60.
    """
    stuff, clock, endpoint = service()
    endpoint.last.succeed()
    clock.advance(7.0)
    stuff.sendToServer(b"anyone?")
    clock.pump([0.5] * 59)
    assert not endpoint.last.transport.disconnected  # type: ignore[union-attr]
    clock.advance(0.5)
    assert endpoint.last.transport.disconnected  # type: ignore[union-attr]
    stuff.stopService()


def test_idleTimeoutCountsFromTheLastReply() -> None:
    """
    Replies keep a busy connection: it is aborted C{idleTimeout} after the
    last one while requests still await theirs.
    """
    stuff, clock, endpoint = service(idleTimeout=4.0)
    endpoint.last.succeed()
    stuff.sendToServer(b"a")
    stuff.sendToServer(b"b")
    clock.advance(3.0)
    answer(endpoint.last, b"A")
    clock.advance(3.9)
    assert not endpoint.last.transport.disconnected  # type: ignore[union-attr]
    clock.advance(0.1)
    assert endpoint.last.transport.disconnected  # type: ignore[union-attr]
    stuff.stopService()


@pytest.mark.parametrize(
    "flag", ["idempotent", "queueWhileDisconnected", "resendOnReconnect"]
)
def test_flagsMustBeBools(flag: str) -> None:
    """
    C{"false"} is no C{False}: every flag of the service must be a bool.
    """
    with pytest.raises(TypeError, match=flag):
        SayStuffToServerService("h", 1, **{flag: "false"})


def test_queueSizeZeroRefusedAsTheOptionIs() -> None:
    """
    C{queueSize=0} is refused, as C{--queue-size 0} is, pointing at
    C{queueWhileDisconnected=False}.
    """
    from twisted.python.usage import UsageError

    from reconnect.saystuff._tap import Options

    with pytest.raises(ValueError, match="queueWhileDisconnected=False"):
        SayStuffToServerService("h", 1, queueSize=0)
    with pytest.raises(UsageError):
        Options().parseOptions(["--queue-size", "0"])
    SayStuffToServerService("h", 1, queueSize=1)


def test_gaveUpRefusalIsNotConnected() -> None:
    """
    After giving up, C{sendToServer} refuses with a L{NotConnectedError},
    as the seed's contract has it, that carries the give-up's cause.
    """
    stuff, clock, endpoint = service(retryPolicy=lambda attempt: None)
    endpoint.last.fail()
    assert stuff.state == "gaveUp"
    with pytest.raises(NotConnectedError) as raised:
        stuff.sendToServer(b"x")
    assert isinstance(raised.value, NotConnectedGaveUp)
    assert isinstance(raised.value, GaveUpConnecting)
    assert raised.value.failure.check(ConnectionRefusedError)
    assert raised.value.attempts == 1
    assert "gave up connecting after 1 failed attempt(s)" in str(raised.value)
    stuff.stopService()


def test_messagesReadAsSentences() -> None:
    """
    A L{MaybeDelivered} says what happened once, without Twisted's
    "non-clean fashion" preamble or a doubled period; an old connection
    that owes nothing closes at once, without a "0 reply(ies)" event.
    """
    stuff, clock, endpoint = service(idempotent=False)
    endpoint.last.succeed()
    reply = stuff.sendToServer(b"once")
    endpoint.last.lose()
    message = str(outcome(reply).value)
    assert message == (
        "the connection was lost after the request was written and before "
        "its reply came, so it may or may not have run: Connection was "
        "closed cleanly"
    )
    clock.advance(1.0)
    endpoint.last.succeed()
    timedOut = stuff.sendToServer(b"slow", timeout=1.0)
    clock.advance(1.0)
    assert outcome(timedOut).check(RequestTimedOut)
    logged: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        old = endpoint.last
        stuff.reconnect()
        endpoint.last.succeed()
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert "draining" not in [e.get("reconnectEvent") for e in logged]
    assert old.transport is not None and old.transport.disconnecting
    stuff.stopService()


def guideBlock(first: str) -> str:
    """
    The python block of docs/guide.md that starts with C{first}.
    """
    guide = (Path(__file__).parent.parent / "docs" / "guide.md").read_text()
    [block] = [
        body
        for body in re.findall(r"```python\n(.*?)```", guide, re.DOTALL)
        if body.startswith(first)
    ]
    return block


def test_greetingRecipe() -> None:
    """
    The guide's recipe for a server that greets, as written: the greeting
    is read before any request; requests queued meanwhile go out after it;
    a wrong greeting fails the attempt, which the policy paces.
    """
    namespace: dict[str, Any] = {}
    exec(guideBlock("# greeting.py"), namespace)
    assert isinstance(namespace["service"], SayStuffToServerService)
    stuff, clock, endpoint = service(prepareConnection=namespace["readGreeting"])
    reply = stuff.sendToServer(b"hello")
    endpoint.last.succeed()
    assert written(endpoint.last) == []
    answer(endpoint.last, b"HELLO I am the server")
    assert stuff.state == "connected"
    assert written(endpoint.last) == [b"hello"]
    answer(endpoint.last, b"hello")
    assert outcome(reply) == b"hello"
    endpoint.last.lose()
    clock.advance(1.0)
    endpoint.last.succeed()
    answer(endpoint.last, b"GO AWAY")
    assert stuff.state == "waiting"
    assert stuff.clientService.stats().failures == 1
    stuff.stopService()
