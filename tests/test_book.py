"""
Tests for L{reconnect.saystuff._book.RequestBook}, with a list for a wire
and a L{Clock} for time: no transport, no reactor.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from helpers import outcome
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from reconnect.saystuff import (
    MaybeDelivered,
    NotConnectedError,
    QueueFullError,
    RequestTimedOut,
    ServerProtocolError,
    ServiceStoppedError,
)
from reconnect.saystuff._book import RequestBook


class Wire:
    """
    Stands in for a connection: collects written lines.
    """

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.writes = 0

    def __call__(self, lines: Iterable[bytes]) -> None:
        self.writes += 1
        self.lines.extend(lines)


LOST = Failure(ConnectionDone())


def test_writesAtOnceWhenConnected() -> None:
    book = RequestBook(Clock())
    wire = Wire()
    lane = book.attach(wire)
    first = book.submit(b"a")
    second = book.submit(b"b")
    assert wire.lines == [b"a", b"b"]
    lane.replyReceived(b"A")
    lane.replyReceived(b"B")
    assert (outcome(first), outcome(second)) == (b"A", b"B")
    assert (book.written, book.answered, book.inFlight) == (2, 2, 0)


def test_queuedUntilConnectedThenWrittenInOneGo() -> None:
    book = RequestBook(Clock())
    requests = [book.submit(b"%d" % n) for n in range(5)]
    assert book.queued == 5
    wire = Wire()
    lane = book.attach(wire)
    assert wire.lines == [b"0", b"1", b"2", b"3", b"4"]
    assert wire.writes == 1
    for n in range(5):
        lane.replyReceived(b"r%d" % n)
    assert [outcome(d) for d in requests] == [b"r%d" % n for n in range(5)]


def test_queueFull() -> None:
    book = RequestBook(Clock(), queueSize=2)
    book.submit(b"a")
    book.submit(b"b")
    with pytest.raises(QueueFullError):
        book.submit(b"c")
    assert book.queued == 2


def test_notQueueingWhileDisconnected() -> None:
    book = RequestBook(Clock(), queueWhileDisconnected=False)
    with pytest.raises(NotConnectedError):
        book.submit(b"a")
    book.attach(Wire())
    assert outcome(book.submit(b"a")) is None


def test_stoppedBookRefuses() -> None:
    book = RequestBook(Clock())
    book.accepting = False
    with pytest.raises(ServiceStoppedError):
        book.submit(b"a")


def test_resendInOrderAfterLoss() -> None:
    """
    Requests in flight when the connection drops go in front of those
    queued since, in their order: the next connection writes the oldest
    alone, then the other suspects together, then the queue.  (One that
    died alone, b here, goes after the queue: see the tests of poison
    lines.)
    """
    book = RequestBook(Clock())
    lane = book.attach(Wire())
    early = [book.submit(line) for line in [b"a", b"b", b"c", b"d"]]
    lane.replyReceived(b"A")
    lane.detach(LOST)
    late = book.submit(b"e")
    wire = Wire()
    lane = book.attach(wire)
    assert wire.lines == [b"b"]
    assert book.resent == 3
    lane.replyReceived(b"B")
    assert wire.lines == [b"b", b"c", b"d"]
    lane.repliesReceived([b"C", b"D"])
    assert wire.lines == [b"b", b"c", b"d", b"e"]
    lane.replyReceived(b"E")
    assert [outcome(d) for d in early + [late]] == [b"A", b"B", b"C", b"D", b"E"]


def test_noResendFailsWithConnectionLost() -> None:
    book = RequestBook(Clock(), resendOnReconnect=False)
    lane = book.attach(Wire())
    request = book.submit(b"a")
    lane.detach(Failure(ConnectionDone("bye")))
    assert outcome(request).check(ConnectionLost)
    assert book.inFlight == 0 and book.queued == 0


def test_timeoutWhileQueuedRemovesIt() -> None:
    clock = Clock()
    book = RequestBook(clock, timeout=5)
    request = book.submit(b"a")
    clock.advance(5)
    assert outcome(request).check(RequestTimedOut)
    wire = Wire()
    book.attach(wire)
    assert wire.lines == []


def test_timeoutInFlightKeepsItsPlace() -> None:
    """
    A request that timed out after it was written keeps its place: the next
    reply is thrown away, and later requests get their own replies.
    """
    clock = Clock()
    book = RequestBook(clock)
    lane = book.attach(Wire())
    slow = book.submit(b"slow", timeout=1)
    after = book.submit(b"after", timeout=10)
    clock.advance(1)
    assert outcome(slow).check(RequestTimedOut)
    assert book.inFlight == 2
    lane.replyReceived(b"SLOW")
    lane.replyReceived(b"AFTER")
    assert outcome(after) == b"AFTER"
    assert clock.getDelayedCalls() == []


def test_perCallTimeoutOverridesDefault() -> None:
    clock = Clock()
    book = RequestBook(clock, timeout=100)
    lane = book.attach(Wire())
    request = book.submit(b"a", timeout=1)
    clock.advance(1)
    assert outcome(request).check(RequestTimedOut)
    lane.replyReceived(b"A")
    assert clock.getDelayedCalls() == []


def test_cancelQueuedNeverSent() -> None:
    book = RequestBook(Clock())
    keep = book.submit(b"keep")
    drop = book.submit(b"drop")
    drop.cancel()
    assert outcome(drop).check(CancelledError)
    wire = Wire()
    lane = book.attach(wire)
    assert wire.lines == [b"keep"]
    lane.replyReceived(b"KEEP")
    assert outcome(keep) == b"KEEP"


def test_cancelInFlightKeepsItsPlace() -> None:
    book = RequestBook(Clock())
    lane = book.attach(Wire())
    first = book.submit(b"1")
    second = book.submit(b"2")
    first.cancel()
    lane.replyReceived(b"one")
    lane.replyReceived(b"two")
    assert outcome(first).check(CancelledError)
    assert outcome(second) == b"two"
    assert book.failed == 1 and book.answered == 1


def test_abandonedNotResent() -> None:
    book = RequestBook(Clock())
    lane = book.attach(Wire())
    book.submit(b"gone").cancel()
    lane.detach(LOST)
    wire = Wire()
    lane = book.attach(wire)
    assert wire.lines == []


def test_replyWithoutRequest() -> None:
    book = RequestBook(Clock())
    lane = book.attach(Wire())
    with pytest.raises(ServerProtocolError):
        lane.replyReceived(b"unasked")


def test_protocolErrorIsALostConnection() -> None:
    """
    A lane let go of with a protocol error hands its requests on as any
    lost one does; a L{MaybeDelivered} names the error.
    """
    book = RequestBook(Clock(), resendOnReconnect=False)
    lane = book.attach(Wire())
    requests = [book.submit(b"%d" % n) for n in range(3)]
    lane.detach(Failure(ServerProtocolError("garbage", b"\x00" * 100)))
    for d in requests:
        failure = outcome(d)
        assert failure.check(MaybeDelivered)
        assert "garbage (a line of 100 bytes beginning" in str(failure.value)
    assert book.queued == 0


def test_failAllAndWhenIdle() -> None:
    book = RequestBook(Clock())
    idleNow = book.whenIdle()
    assert outcome(idleNow) is None and idleNow.called
    queued = book.submit(b"q")
    idle = book.whenIdle()
    assert not idle.called
    book.failAll(ServiceStoppedError("stop"))
    assert outcome(queued).check(ServiceStoppedError)
    assert idle.called


def test_whenIdleFiresOnLastReply() -> None:
    book = RequestBook(Clock())
    lane = book.attach(Wire())
    book.submit(b"a")
    book.submit(b"b").cancel()
    idle = book.whenIdle()
    lane.replyReceived(b"A")
    assert idle.called


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["send", "reply", "lose", "connect", "cancel"]),
            st.integers(0, 50),
        ),
        max_size=80,
    )
)
def test_everyRequestEndsOnceWithItsOwnReply(steps: list[tuple[str, int]]) -> None:
    """
    Whatever the interleaving of sends, replies, losses, reconnects and
    cancellations, a request that gets a reply gets the reply to its own
    line, and once the server answers everything, every request has ended
    exactly once.
    """
    book = RequestBook(Clock())
    wire = Wire()
    lane = book.attach(wire)
    answered: dict[bytes, list[Any]] = {}
    requests: list[tuple[bytes, Deferred[bytes]]] = []
    echoed = 0

    def send(n: int) -> None:
        line = b"line-%d" % len(requests)
        d = book.submit(line)
        results: list[Any] = []
        answered[line] = results
        d.addBoth(results.append).addErrback(lambda _: None)
        requests.append((line, d))

    def echoOne() -> None:
        nonlocal echoed
        if book.connected and echoed < len(wire.lines):
            lane.replyReceived(wire.lines[echoed].upper())
            echoed += 1

    for action, n in steps:
        if action == "send":
            send(n)
        elif action == "reply":
            for _ in range(n % 4):
                echoOne()
        elif action == "lose" and book.connected:
            lane.detach(LOST)
        elif action == "connect" and not book.connected:
            wire = Wire()
            echoed = 0
            lane = book.attach(wire)
        elif action == "cancel" and requests:
            requests[n % len(requests)][1].cancel()

    if not book.connected:
        wire = Wire()
        echoed = 0
        lane = book.attach(wire)
    while echoed < len(wire.lines):
        echoOne()
    for line, results in answered.items():
        assert len(results) == 1, (line, results)
        result = results[0]
        if isinstance(result, Failure):
            assert result.check(CancelledError)
        else:
            assert result == line.upper()
