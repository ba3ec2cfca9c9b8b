"""
Tests for SayStuff's protocol and service on a fake clock, with a fake
endpoint and L{StringTransport}s.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import ResolvingMemoryReactor, outcome
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from reconnect.saystuff import (
    MaybeDelivered,
    NotConnectedError,
    QueueFullError,
    RequestTimedOut,
    SayStuffToServerService,
    ServerProtocolError,
    ServiceStoppedError,
)
from reconnect.saystuff._book import RequestBook
from reconnect.saystuff._protocol import SayStuffClientProtocol, checkLine
from reconnect.testing import FakeEndpoint


def connectedProtocol(
    maxLineLength: int = 100, **bookOptions: Any
) -> tuple[SayStuffClientProtocol, RequestBook, StringTransport]:
    book = RequestBook(Clock(), **bookOptions)
    protocol = SayStuffClientProtocol(book, maxLineLength)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.attach()
    return protocol, book, transport


# -- the line protocol ---------------------------------------------------------


def test_linesWrittenWithCRLF() -> None:
    protocol, book, transport = connectedProtocol()
    book.submit(b"one")
    protocol.connectionLost(Failure(ConnectionDone()))
    book.submit(b"two")
    protocol.attach()
    # "one" died alone: it goes after "two", and alone.
    assert transport.value() == b"one\r\ntwo\r\n"
    protocol.dataReceived(b"2\r\n")
    assert transport.value() == b"one\r\ntwo\r\none\r\n"


class CountingTransport(StringTransport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        super().write(data)


def test_requestsFromReplyCallbacksLeaveInOneWrite() -> None:
    """
    Requests that the callbacks of one read's replies send go out together,
    in the order they were sent, in one write once every reply is handed
    out; a request sent afterwards is written at once.  A callback that
    raises changes neither.
    """
    book = RequestBook(Clock())
    protocol = SayStuffClientProtocol(book, 100)
    transport = CountingTransport()
    protocol.makeConnection(transport)
    protocol.attach()
    replies = [book.submit(b"q%d" % n) for n in range(3)]
    transport.writes.clear()
    followUps = []

    def followUp(reply: bytes) -> None:
        followUps.append(book.submit(reply + b"-next"))
        if reply == b"q1":
            raise RuntimeError("a callback that raises")

    for reply in replies:
        reply.addCallback(followUp).addErrback(lambda f: None)
    protocol.dataReceived(b"q0\r\nq1\r\nq2\r\n")
    assert transport.writes == [b"q0-next\r\nq1-next\r\nq2-next\r\n"]
    book.submit(b"later")
    assert transport.writes[1:] == [b"later\r\n"]
    assert len(followUps) == 3


@given(
    st.lists(
        st.binary(max_size=30).filter(lambda b: b"\r" not in b and b"\n" not in b)
    ),
    st.data(),
)
def test_framingSurvivesAnySplit(lines: list[bytes], data: st.DataObject) -> None:
    """
    However the replies are cut into chunks (one byte at a time included),
    each request gets its own line.
    """
    protocol, book, transport = connectedProtocol()
    requests = [book.submit(b"q") for _ in lines]
    stream = b"".join(line + b"\r\n" for line in lines)
    position = 0
    while position < len(stream):
        size = data.draw(st.integers(1, max(1, len(stream) - position)))
        protocol.dataReceived(stream[position : position + size])
        position += size
    assert [outcome(d) for d in requests] == lines


def test_replyOverLimitIsProtocolError() -> None:
    """
    The replies before an overlong one are delivered; what was in flight
    after it is handled as for a lost connection (here, not resending:
    L{MaybeDelivered}, naming the cause).
    """
    protocol, book, transport = connectedProtocol(
        maxLineLength=10, resendOnReconnect=False
    )
    first = book.submit(b"a")
    second = book.submit(b"b")
    protocol.dataReceived(b"ok\r\n" + b"x" * 11 + b"\r\n")
    assert outcome(first) == b"ok"
    failure = outcome(second)
    assert failure.check(MaybeDelivered)
    assert "over the limit of 10 bytes" in str(failure.value)
    assert "a line of 11 bytes beginning b'xxxxxxxxxxx'" in str(failure.value)
    assert transport.disconnected


def test_unterminatedReplyOverLimit() -> None:
    protocol, book, transport = connectedProtocol(
        maxLineLength=10, resendOnReconnect=False
    )
    request = book.submit(b"a")
    protocol.dataReceived(b"y" * 11)
    assert outcome(request).check(MaybeDelivered)
    assert transport.disconnected


def test_moreRepliesThanRequests() -> None:
    protocol, book, transport = connectedProtocol()
    request = book.submit(b"a")
    protocol.dataReceived(b"A\r\nextra\r\n")
    assert outcome(request) == b"A"
    assert transport.disconnected


def test_protocolErrorResendsWhatWasInFlight() -> None:
    """
    After a protocol error, requests in flight are handled as for any lost
    connection: by default, written again on the next one.
    """
    protocol, book, transport = connectedProtocol()
    request = book.submit(b"a")
    protocol.dataReceived(b"A\nB\r\n")
    assert transport.disconnected
    assert not request.called
    assert (book.queued, book.lanes, book.awaited) == (1, 0, 0)
    protocol.connectionLost(Failure(ConnectionDone()))
    assert book.queued == 1


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"A\nB\r\n", id="bare LF in a whole line"),
        pytest.param(b"A\r\nB\nC\r\n", id="bare LF in a later line"),
        pytest.param(b"A\nB", id="bare LF in an unfinished line"),
    ],
)
def test_bareLineFeedIsProtocolError(data: bytes) -> None:
    """
    A bare LF inside a reply (which would shift every later reply for a
    server or a reader that splits at LF) aborts the connection; the
    replies before it are delivered.
    """
    protocol, book, transport = connectedProtocol(resendOnReconnect=False)
    first, second = book.submit(b"1"), book.submit(b"2")
    protocol.dataReceived(data)
    assert transport.disconnected
    if data.startswith(b"A\r\n"):
        assert outcome(first) == b"A"
    else:
        assert outcome(first).check(MaybeDelivered)
    failure = outcome(second)
    assert failure.check(MaybeDelivered)
    assert "a bare LF inside a reply line" in str(failure.value)


def test_lineBeforeAnyRequestIsProtocolError() -> None:
    """
    A line that comes before any request was written (a greeting nobody
    reads) is not taken for the first reply: the connection is aborted,
    and the request written after it is written again on the next one.
    """
    book = RequestBook(Clock())
    protocol = SayStuffClientProtocol(book, 100)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(b"HELLO\r\n")
    assert transport.disconnected
    book = RequestBook(Clock())
    protocol = SayStuffClientProtocol(book, 100)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.attach()
    protocol.dataReceived(b"HELLO\r\n")
    assert transport.disconnected
    request = book.submit(b"q")
    assert not request.called and book.queued == 1


def test_greetingReadBeforeAttaching() -> None:
    """
    L{readLine} hands the lines that come before the connection is
    attached to its reader, in order; afterwards lines are replies, and
    asking for one raises.
    """
    book = RequestBook(Clock())
    protocol = SayStuffClientProtocol(book, 100)
    transport = StringTransport()
    protocol.makeConnection(transport)
    greeting = protocol.readLine()
    protocol.dataReceived(b"HELLO th")
    assert not greeting.called
    protocol.dataReceived(b"ere\r\n")
    assert outcome(greeting) == b"HELLO there"
    protocol.attach()
    request = book.submit(b"q")
    protocol.dataReceived(b"Q\r\n")
    assert outcome(request) == b"Q"
    with pytest.raises(RuntimeError):
        protocol.readLine()


def greetingService() -> tuple[SayStuffToServerService, FakeEndpoint, list[bytes]]:
    """
    A started service on a clock whose C{prepareConnection} reads one line
    with L{readLine} (the guide's greeting recipe, without the check).
    """
    greetings: list[bytes] = []

    def prepare(protocol: Any) -> Any:
        return protocol.readLine().addCallback(greetings.append)

    clock = Clock()
    endpoint = FakeEndpoint()
    stuff = SayStuffToServerService(
        endpoint=endpoint,
        reactor=clock,
        retryPolicy=lambda n: 1.0,
        prepareConnection=prepare,
    )
    stuff.startService()
    return stuff, endpoint, greetings


def test_greetingReadThroughTheService() -> None:
    """
    C{prepareConnection} reads the greeting with C{readLine()}; requests
    sent meanwhile are written once it has come, and the lines after it
    are their replies.
    """
    stuff, endpoint, greetings = greetingService()
    endpoint.last.succeed()
    request = stuff.sendToServer(b"hi")
    transport = endpoint.last.transport
    assert transport is not None and transport.value() == b""
    endpoint.last.protocol.dataReceived(b"HELLO\r\n")
    assert greetings == [b"HELLO"]
    assert stuff.state == "connected"
    assert transport.value() == b"hi\r\n"
    endpoint.last.protocol.dataReceived(b"HI\r\n")
    assert outcome(request) == b"HI"
    stuff.stopService()


@pytest.mark.parametrize(
    "reads",
    [[b"HELLO\r\nEXTRA\r\n"], [b"HELLO\r\nEXT", b"RA\r\n"]],
)
def test_lineWithTheGreetingIsNoReply(reads: list[bytes]) -> None:
    """
    A line that comes with the greeting, or begins in its read, came
    before any request was written: it is a protocol error, not the reply
    to the request written once the greeting was read, which is written
    again on the next connection.
    """
    stuff, endpoint, greetings = greetingService()
    endpoint.last.succeed()
    request = stuff.sendToServer(b"x")
    first = endpoint.last
    for data in reads:
        first.protocol.dataReceived(data)
    assert greetings == [b"HELLO"]
    assert outcome(request) is None
    assert first.transport is not None and first.transport.disconnecting
    first.lose()
    assert stuff.book.queued == 1
    stuff.stopService()


def test_greetingReaderLearnsOfTheEnd() -> None:
    book = RequestBook(Clock())
    protocol = SayStuffClientProtocol(book, 5)
    protocol.makeConnection(StringTransport())
    greeting = protocol.readLine()
    protocol.connectionLost(Failure(ConnectionDone()))
    assert outcome(greeting).check(ConnectionDone)
    protocol = SayStuffClientProtocol(book, 5)
    transport = StringTransport()
    protocol.makeConnection(transport)
    greeting = protocol.readLine()
    protocol.dataReceived(b"x" * 6)
    assert outcome(greeting).check(ServerProtocolError)
    assert transport.disconnected


@pytest.mark.parametrize(
    "line, error",
    [
        ("text", TypeError),
        (bytearray(b"x"), TypeError),
        (None, TypeError),
        (b"a\nb", ValueError),
        (b"a\rb", ValueError),
        (b"a\r\n", ValueError),
        (b"x" * 11, ValueError),
    ],
)
def test_badLines(line: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        checkLine(line, 10)


def test_goodLines() -> None:
    for line in [b"", b"x" * 10, b"\x00\xff", b"tab\there"]:
        checkLine(line, 10)


# -- the service ----------------------------------------------------------------


class Harness:
    def __init__(self, **kwargs: Any) -> None:
        self.clock = Clock()
        self.endpoint = FakeEndpoint()
        kwargs.setdefault("retryPolicy", lambda n: 1.0)
        self.service = SayStuffToServerService(
            endpoint=self.endpoint, reactor=self.clock, **kwargs
        )

    def start(self) -> Harness:
        self.service.startService()
        return self

    def connect(self) -> StringTransport:
        self.endpoint.last.succeed()
        transport = self.endpoint.last.transport
        assert transport is not None
        return transport

    def reply(self, data: bytes) -> None:
        protocol = self.endpoint.last.protocol
        assert protocol is not None
        protocol.dataReceived(data)


def test_needsHostAndPortOrEndpoint() -> None:
    with pytest.raises(TypeError):
        SayStuffToServerService(reactor=Clock())


@pytest.mark.parametrize(
    "kwargs",
    [{"queueSize": -1}, {"timeout": 0}, {"idleTimeout": -1}, {"stopTimeout": -1}],
)
def test_badServiceOptions(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=list(kwargs)[0]):
        SayStuffToServerService(endpoint=FakeEndpoint(), reactor=Clock(), **kwargs)


def test_stringEndpoint() -> None:
    from twisted.internet.testing import MemoryReactorClock

    reactor = MemoryReactorClock()
    service = SayStuffToServerService(
        endpoint="tcp:host=127.0.0.1:port=7", reactor=reactor
    )
    service.startService()
    assert reactor.tcpClients[0][:2] == ("127.0.0.1", 7)


def test_hostAndPortMakeHostnameEndpoint() -> None:
    from twisted.internet.endpoints import HostnameEndpoint

    service = SayStuffToServerService(
        "example.invalid", 7, reactor=ResolvingMemoryReactor()
    )
    endpoint = service.clientService._machine._endpoint
    assert isinstance(endpoint, HostnameEndpoint)


def test_notRunningRefuses() -> None:
    h = Harness()
    with pytest.raises(ServiceStoppedError):
        h.service.sendToServer(b"early")


def test_badInputSendsNothing() -> None:
    h = Harness().start()
    transport = h.connect()
    for bad in [b"a\nb", "text", b"x" * 20000]:
        with pytest.raises((TypeError, ValueError)):
            h.service.sendToServer(bad)  # type: ignore[arg-type]
    assert transport.value() == b""
    with pytest.raises(ValueError, match="timeout"):
        h.service.sendToServer(b"ok", timeout=-1)


def test_queuedWhileDisconnectedThenSent() -> None:
    h = Harness().start()
    replies = [h.service.sendToServer(b"%d" % n) for n in range(3)]
    transport = h.connect()
    assert transport.value() == b"0\r\n1\r\n2\r\n"
    h.reply(b"a\r\nb\r\nc\r\n")
    assert [outcome(d) for d in replies] == [b"a", b"b", b"c"]


def test_queueFullRefusesAtOnce() -> None:
    h = Harness(queueSize=1).start()
    h.service.sendToServer(b"one")
    with pytest.raises(QueueFullError):
        h.service.sendToServer(b"two")


def test_notConnectedErrorMode() -> None:
    h = Harness(queueWhileDisconnected=False).start()
    with pytest.raises(NotConnectedError):
        h.service.sendToServer(b"x")
    h.connect()
    assert not h.service.sendToServer(b"x").called


def test_resentOnReconnect() -> None:
    h = Harness().start()
    h.connect()
    reply = h.service.sendToServer(b"again")
    h.endpoint.last.lose()
    assert h.service.book.queued == 1
    h.clock.advance(1)
    transport = h.connect()
    assert transport.value() == b"again\r\n"
    h.reply(b"AGAIN\r\n")
    assert outcome(reply) == b"AGAIN"
    assert h.service.status()["connections"] == 2


def test_requestTimeout() -> None:
    h = Harness(timeout=3.0).start()
    reply = h.service.sendToServer(b"x")
    h.clock.advance(3)
    assert outcome(reply).check(RequestTimedOut)


def test_perCallNoTimeout() -> None:
    """
    C{timeout=None} in a call means no limit, as documented, even where the
    service has a default timeout.
    """
    h = Harness(timeout=3.0).start()
    reply = h.service.sendToServer(b"x", timeout=None)
    h.clock.advance(100)
    assert not reply.called


def test_idleConnectionReplaced() -> None:
    """
    A connection that answers nothing for the idle period while requests are
    outstanding is aborted; the requests are answered on the next one.
    """
    h = Harness(idleTimeout=10.0).start()
    first = h.connect()
    h.clock.pump([1.0] * 25)
    assert not first.disconnected
    reply = h.service.sendToServer(b"hello?")
    h.clock.pump([1.0] * 9)
    assert not first.disconnected
    h.clock.advance(1)
    assert first.disconnected, "aborted idleTimeout after the write, not later"
    h.endpoint.last.lose()
    h.clock.advance(1)
    second = h.connect()
    assert second.value() == b"hello?\r\n"
    h.reply(b"hi\r\n")
    assert outcome(reply) == b"hi"


def test_busyConnectionNotReplaced() -> None:
    h = Harness(idleTimeout=10.0).start()
    transport = h.connect()
    for n in range(10):
        h.service.sendToServer(b"%d" % n)
        h.clock.advance(5)
        h.reply(b"r\r\n")
    assert not transport.disconnected


def test_stopWaitsForRepliesThenCloses() -> None:
    h = Harness().start()
    transport = h.connect()
    reply = h.service.sendToServer(b"last")
    stopped = h.service.stopService()
    with pytest.raises(ServiceStoppedError):
        h.service.sendToServer(b"too late")
    assert not transport.disconnecting
    h.reply(b"LAST\r\n")
    assert outcome(reply) == b"LAST"
    assert transport.disconnecting
    h.endpoint.last.lose()
    assert outcome(stopped) is None
    assert h.clock.getDelayedCalls() == []


def test_stopIsBounded() -> None:
    h = Harness(stopTimeout=2.0).start()
    h.connect()
    reply = h.service.sendToServer(b"never answered")
    stopped = h.service.stopService()
    h.clock.advance(2)
    assert outcome(reply).check(ServiceStoppedError)
    h.endpoint.last.lose()
    assert outcome(stopped) is None


def test_stopWhileDisconnectedFailsQueued() -> None:
    h = Harness().start()
    reply = h.service.sendToServer(b"queued")
    stopped = h.service.stopService()
    assert outcome(reply).check(ServiceStoppedError)
    assert outcome(stopped) is None
    assert h.clock.getDelayedCalls() == []


def test_lostWhileStoppingFails() -> None:
    h = Harness().start()
    h.connect()
    reply = h.service.sendToServer(b"x")
    stopped = h.service.stopService()
    h.endpoint.last.lose()
    assert outcome(reply).check(ConnectionLost)
    assert stopped.called


def test_userCallbacksStillCalled() -> None:
    events: list[str] = []
    h = Harness(
        onConnected=lambda p: events.append("up"),
        onDisconnected=lambda p, r: events.append("down"),
    ).start()
    h.connect()
    h.endpoint.last.lose()
    assert events == ["up", "down"]


@given(
    line=st.one_of(
        st.binary(max_size=40),
        st.binary(max_size=40).map(lambda b: b + b"\r" + b),
        st.binary(max_size=40).map(lambda b: b"\n" + b),
        st.integers(30, 34).map(lambda n: b"y" * n),
        st.text(max_size=5),
    )
)
def test_anyLineRaisesOrRoundTrips(line: Any) -> None:
    """
    Whatever is offered as a line either raises the documented exception
    with nothing written, or goes out as exactly that line plus CRLF and
    fires with exactly the reply.
    """
    h = Harness(maxLineLength=32).start()
    transport = h.connect()
    valid = (
        isinstance(line, bytes)
        and b"\r" not in line
        and b"\n" not in line
        and len(line) <= 32
    )
    if not valid:
        error = TypeError if not isinstance(line, bytes) else ValueError
        with pytest.raises(error):
            h.service.sendToServer(line)
        assert transport.value() == b""
    else:
        reply = h.service.sendToServer(line)
        assert transport.value() == line + b"\r\n"
        h.reply(line + b"\r\n")
        assert outcome(reply) == line
    stopped = h.service.stopService()
    h.endpoint.last.lose()
    assert outcome(stopped) is None
    assert h.clock.getDelayedCalls() == []


def test_usesOnlyClientServicePublicAPI() -> None:
    """
    SayStuff drives its L{ClientService} through its public methods only
    (a dead heartbeat calls C{dropConnection}), never through its machine.
    """
    import re
    from pathlib import Path

    import reconnect.saystuff

    for source in Path(reconnect.saystuff.__file__).parent.glob("*.py"):
        text = source.read_text()
        assert "_machine" not in text, source.name
        assert not re.search(r"clientService\._", text), source.name
