"""
The relay's local side, driven by hand: what one local client can make it
hold, the order of its answers, how its input ends, and the limits on
clients (tests/test_relay_abuse.py runs the same against real processes).
"""

from __future__ import annotations

from typing import Any

from helpers import sayStuffOnClock
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher

from reconnect.saystuff._relay import RelayClients, RelayProtocol
from reconnect.testing import FakeAttempt

LONG = b"y" * 30


def written(attempt: FakeAttempt) -> list[bytes]:
    assert attempt.transport is not None
    return attempt.transport.value().split(b"\r\n")[:-1]


def answerAll(attempt: FakeAttempt, start: int = 0) -> int:
    """
    Echo every line written on C{attempt} from the C{start}th, until no
    more come; how many were written in all.
    """
    while True:
        lines = written(attempt)[start:]
        if not lines:
            return start
        assert attempt.protocol is not None
        attempt.protocol.dataReceived(b"".join(line + b"\r\n" for line in lines))
        start += len(lines)


def stopped(stuff: Any, clock: Any, endpoint: Any) -> None:
    """
    Stop the SayStuff service C{stuff}, end its connection, if any, as the
    reactor would, and check that it left nothing scheduled on C{clock}.
    """
    stuff.stopService()
    attempt = endpoint.last
    if attempt is not None and attempt.transport is not None:
        if attempt.transport.disconnecting and not attempt.lost:
            attempt.lose()
    assert clock.getDelayedCalls() == []


def connected(**kwargs: Any) -> tuple[Any, FakeAttempt, RelayProtocol, StringTransport]:
    limits = {k: kwargs.pop(k) for k in ("maxOwed", "maxOwedBytes") if k in kwargs}
    stuff, clock, endpoint = sayStuffOnClock(start=True, **kwargs)
    endpoint.last.succeed()
    local = RelayProtocol(stuff, **limits)
    transport = StringTransport()
    local.makeConnection(transport)
    return stuff, endpoint.last, local, transport


def splits(data: bytes) -> st.SearchStrategy[list[bytes]]:
    """
    C{data}, cut into pieces at any points.
    """
    cuts = st.lists(st.integers(0, len(data)), max_size=8).map(sorted)
    return cuts.map(
        lambda at: [data[a:b] for a, b in zip([0, *at], [*at, len(data)], strict=True)]
    )


SENT = b"a\r\n" + LONG + b"\r\nb\n" + LONG + LONG + b"\nc\r\n"


@given(splits(SENT))
def test_overLongLineIsAnsweredThenTheRestRead(pieces: list[bytes]) -> None:
    """
    However the bytes arrive, a line over the limit gets an C{ERROR} line
    in its place and the lines after it are relayed: one rule, whatever
    the segmentation.
    """
    stuff, server, local, transport = connected(maxLineLength=10)
    for piece in pieces:
        local.dataReceived(piece)
    answerAll(server)
    error = b"ERROR ValueError: line over the limit of 10 bytes"
    assert transport.value().split(b"\r\n") == [b"a", error, b"b", error, b"c", b""]
    assert not transport.disconnecting
    stuff.stopService()


def test_answersKeepTheOrderOfLinesHeldBack() -> None:
    """
    Lines read while the service holds the client back, and an over-long
    unfinished line after them: the answers come in the order of the lines
    (the C{ERROR} line last), not the C{ERROR} line first.
    """
    stuff, clock, endpoint = sayStuffOnClock(start=True, queueSize=5, maxLineLength=10)
    local = RelayProtocol(stuff)
    transport = StringTransport()
    local.makeConnection(transport)
    local.dataReceived(b"".join(b"l%d\n" % n for n in range(8)) + LONG)
    assert transport.producerState == "paused"
    endpoint.last.succeed()
    answerAll(endpoint.last)
    assert transport.value().split(b"\r\n")[:-1] == [b"l%d" % n for n in range(8)] + [
        b"ERROR ValueError: line over the limit of 10 bytes"
    ]
    stopped(stuff, clock, endpoint)


def test_linesOwedToOneClientAreBounded() -> None:
    """
    A client with C{maxOwed} lines awaiting answers is read from no more
    (however small its lines: it is the count that is bounded); it is read
    from again once half of them are answered (here, until the next
    C{maxOwed} are in flight again).
    """
    stuff, server, local, transport = connected(maxOwed=10)
    local.dataReceived(b"\n" * 100)
    assert local.owed == 10
    assert len(written(server)) == 10
    assert transport.producerState == "paused"
    assert server.protocol is not None
    server.protocol.dataReceived(b"\r\n" * 4)
    assert transport.producerState == "paused"
    assert len(written(server)) == 10
    server.protocol.dataReceived(b"\r\n")
    assert len(written(server)) == 15
    assert local.owed == 10
    answerAll(server, 5)
    assert transport.value() == b"\r\n" * 100
    assert transport.producerState == "producing"
    stuff.stopService()


def test_bytesOwedToOneClientAreBounded() -> None:
    """
    Long lines meet the bound in bytes before the bound in lines: a client
    whose lines awaiting answers reach C{maxOwedBytes} is read from no more
    until they are down to half.
    """
    stuff, server, local, transport = connected(maxOwedBytes=100)
    local.dataReceived(b"".join(b"%039d\n" % n for n in range(6)))
    assert len(written(server)) == 3
    assert transport.producerState == "paused"
    answerAll(server)
    assert transport.value().count(b"\r\n") == 6
    assert transport.producerState == "producing"
    stuff.stopService()


def test_clientThatDoesNotReadIsNotReadFrom() -> None:
    """
    The relay is its client's transport's producer: while the transport's
    write buffer is full (the client reads nothing), no line is read; once
    it drains, reading goes on with the lines held meanwhile.
    """
    stuff, server, local, transport = connected()
    assert transport.producer is not None
    transport.producer.pauseProducing()
    assert transport.producerState == "paused"
    local.dataReceived(b"one\ntwo\n")
    assert written(server) == []
    transport.producer.resumeProducing()
    assert written(server) == [b"one", b"two"]
    assert transport.producerState == "producing"
    stuff.stopService()


def test_halfCloseIsAnsweredThenClosed() -> None:
    """
    A client that ends its input (a half-close) gets the answers to all it
    sent, the unterminated last line included, then the connection closes.
    """
    stuff, server, local, transport = connected()
    local.dataReceived(b"one\ntwo")
    local.readConnectionLost()
    assert not transport.disconnecting
    answerAll(server)
    assert transport.value() == b"one\r\ntwo\r\n"
    assert transport.disconnecting
    stuff.stopService()


class HalfClosingTransport(StringTransport):
    writeClosed = False

    def loseWriteConnection(self) -> None:
        self.writeClosed = True


def test_drainAtAStopAnswersEveryLineRead() -> None:
    """
    At a stop, every line read is answered, held back or not (a line cut
    by the stop, still unfinished, is not a line: it is dropped), and the
    relay ends its side of the connection once the answers are written,
    reading on (and dropping) what the client still sends, so that closing
    does not reset the connection under answers not yet read.
    """
    stuff, clock, endpoint = sayStuffOnClock(start=True, queueSize=2)
    local = RelayProtocol(stuff)
    transport = HalfClosingTransport()
    local.makeConnection(transport)
    local.dataReceived(b"a\nb\nc\nd\nunfinish")
    assert transport.producerState == "paused"
    stuff.stopService()
    local.inputEnded(drain=True)
    assert transport.value().count(b"ERROR ServiceStoppedError") == 4
    assert transport.writeClosed
    assert transport.producerState == "producing"
    assert not transport.disconnecting
    local.dataReceived(b"more\n")
    local.readConnectionLost()
    assert transport.disconnecting
    assert transport.value().count(b"\r\n") == 4


def test_closedClientsHeldLinesAreDropped() -> None:
    """
    A client that closes its connection with lines read and held back (a
    64 KiB read of empty lines): none of them is sent after it left, however
    the owed answers come, and it no longer paces the service.
    """
    stuff, server, local, transport = connected()
    local.dataReceived(b"\n" * 32768)
    assert len(written(server)) == 256
    local.connectionLost(ConnectionDone())
    assert answerAll(server) == 256
    assert local not in stuff._producers
    stuff.stopService()


def test_closedClientsUnwrittenRequestsAreWithdrawn() -> None:
    """
    Requests of a closed client still queued for a connection are withdrawn
    (their answers, C{CancelledError}s, go nowhere); those already written
    keep counting against the service's bounds until their replies come.
    """
    stuff, clock, endpoint = sayStuffOnClock(start=True)
    local = RelayProtocol(stuff)
    local.makeConnection(StringTransport())
    local.dataReceived(b"queued 1\nqueued 2\n")
    assert stuff.book.queued == 2
    local.connectionLost(ConnectionDone())
    assert stuff.book.queued == 0
    assert stuff.book.pendingBytes == 0
    assert local.owed == 0
    endpoint.last.succeed()
    assert written(endpoint.last) == []

    writtenAlready = RelayProtocol(stuff)
    writtenAlready.makeConnection(StringTransport())
    writtenAlready.dataReceived(b"in flight\n")
    writtenAlready.connectionLost(ConnectionDone())
    assert stuff.book.awaited == 1
    assert stuff.book.pendingBytes > 0
    answerAll(endpoint.last)
    assert stuff.book.pendingBytes == 0
    stuff.stopService()


class PushingBackTransport(HalfClosingTransport):
    """
    A transport whose write buffer fills: past C{bufferSize} bytes unread,
    it pauses its producer, as Twisted's own do.
    """

    bufferSize = 65536

    def write(self, data: bytes) -> None:
        super().write(data)
        if len(self.value()) > self.bufferSize and self.producer is not None:
            self.producer.pauseProducing()

    def read(self) -> bytes:
        data = self.value()
        self.clear()
        assert self.producer is not None
        self.producer.resumeProducing()
        return data


def test_stopAnswersHeldLinesUnsentAsTheClientReads() -> None:
    """
    At a stop, the lines held back (here: five clients that read nothing,
    each with a 64 KiB read of empty lines) are not sent: the service gets
    no new request, each is answered C{ERROR ServiceStoppedError}, written
    only as fast as its client reads, and then the connection closes.
    """
    stuff, clock, endpoint = sayStuffOnClock(start=True)
    endpoint.last.succeed()
    reactor = MemoryReactorClock()
    limits = RelayClients(stuff, reactor)
    factory = limits.factory()
    transports = []
    for _ in range(5):
        local = factory.buildProtocol(None)
        assert local is not None
        transport = PushingBackTransport()
        local.makeConnection(transport)
        assert transport.producer is not None
        transport.producer.pauseProducing()
        local.dataReceived(b"\r\n" * 32768)
        transports.append(transport)
    stopped = limits.stopService()
    assert stuff.book.written == 0
    stuff.stopService()
    for transport in transports:
        assert transport.value() == b""
        received = b""
        while not transport.writeClosed:
            received += transport.read()
            assert len(transport.value()) <= transport.bufferSize + 256 * 80
        lines = (received + transport.value()).split(b"\r\n")
        assert lines == [
            b"ERROR ServiceStoppedError: the relay stopped before sending this line"
        ] * 32768 + [b""]
    for local in list(limits.live):
        local.readConnectionLost()
        assert local.transport.disconnecting  # type: ignore[union-attr]
        local.connectionLost(ConnectionDone())
    assert stopped.called
    assert reactor.getDelayedCalls() == []


def clients(
    maxClients: int = 2, idleTimeout: float = 10.0
) -> tuple[RelayClients, MemoryReactorClock]:
    stuff, clock, endpoint = sayStuffOnClock(start=True)
    reactor = MemoryReactorClock()
    limits = RelayClients(stuff, reactor, maxClients, idleTimeout)
    limits.stuffClock = clock  # type: ignore[attr-defined]
    return limits, reactor


def disconnectAll(limits: RelayClients, reactor: MemoryReactorClock) -> None:
    """
    End every client of C{limits} as the reactor would, stop its SayStuff
    service, and check that neither left anything scheduled.
    """
    for protocol in list(limits.live):
        protocol.connectionLost(ConnectionDone())
    limits._service.stopService()
    assert reactor.getDelayedCalls() == []
    assert limits.stuffClock.getDelayedCalls() == []  # type: ignore[attr-defined]


def test_clientsOverTheLimitAreRefusedAndLoggedOnceAWhile() -> None:
    """
    Past C{maxClients}, a new client gets no protocol (the port closes it
    at once); the refusals are logged once, then at most once a minute,
    with how many there were: those after the last log are logged a minute
    after it, even if no more come.
    """
    limits, reactor = clients(maxClients=2)
    factory = limits.factory()
    logged: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        admitted = [factory.buildProtocol(None) for _ in range(2)]
        for protocol in admitted:
            assert protocol is not None
            protocol.makeConnection(StringTransport())
        assert [factory.buildProtocol(None) for _ in range(50)] == [None] * 50
        reactor.advance(60)
        assert factory.buildProtocol(None) is None
        reactor.advance(59)
        assert len([e for e in logged if "Refused" in e.get("log_format", "")]) == 2
        reactor.advance(1)
        assert admitted[0] is not None
        admitted[0].connectionLost(ConnectionDone())
        assert factory.buildProtocol(None) is not None
        disconnectAll(limits, reactor)
    finally:
        globalLogPublisher.removeObserver(logged.append)
    refusals = [e for e in logged if "Refused" in e.get("log_format", "")]
    assert [e["count"] for e in refusals] == [1, 49, 1]
    assert limits.refused == 51


def test_idleClientsAreClosed() -> None:
    """
    A client that has sent nothing for C{idleTimeout} seconds and is owed
    nothing is closed, an unfinished line notwithstanding; one still owed
    an answer is not.
    """
    limits, reactor = clients(maxClients=3, idleTimeout=8.0)
    factory = limits.factory()
    quiet, waiting = factory.buildProtocol(None), factory.buildProtocol(None)
    assert quiet is not None and waiting is not None
    quietTransport, waitingTransport = StringTransport(), StringTransport()
    quiet.makeConnection(quietTransport)
    waiting.makeConnection(waitingTransport)
    unfinished = factory.buildProtocol(None)
    assert unfinished is not None
    unfinishedTransport = StringTransport()
    unfinished.makeConnection(unfinishedTransport)
    unfinished.dataReceived(b"x" * 1000)
    reactor.advance(6)
    waiting.dataReceived(b"unanswered\n")
    reactor.advance(2)
    assert quietTransport.disconnecting
    assert unfinishedTransport.disconnecting
    reactor.advance(20)
    assert not waitingTransport.disconnecting
    quiet.connectionLost(ConnectionDone())
    unfinished.connectionLost(ConnectionDone())
    disconnectAll(limits, reactor)


def test_guideStatesTheDefaults() -> None:
    """
    The bounds docs/guide.md gives are the ones the relay uses.
    """
    from helpers import ROOT

    from reconnect import prometheus
    from reconnect.saystuff import _relay as relay
    from reconnect.saystuff import _tap as tap

    options = tap.Options()
    options.parseOptions([])
    assert options["max-clients"] == relay.DEFAULT_MAX_CLIENTS == 1000
    assert options["client-timeout"] == relay.DEFAULT_CLIENT_IDLE_TIMEOUT == 300
    assert relay.DEFAULT_MAX_OWED == 256
    assert relay.DEFAULT_MAX_OWED_BYTES == 256 * 1024
    assert relay.DESCRIPTOR_RESERVE == 32
    assert relay.STOP_GRACE == 2
    assert prometheus.METRICS_MAX_CONNECTIONS == 16
    assert prometheus.METRICS_CONNECTION_TIMEOUT == 10
    guide = " ".join((ROOT / "docs" / "guide.md").read_text().split())
    for phrase in (
        "default 1000, lowered to leave 32 file descriptors free",
        "default 300; 0: never",
        "| its lines awaiting answers | 256, or 256 KiB of them:",
        "one that does not read them is cut 2 s later",
        "at most 16 connections at once, each closed 10 s after it opened",
        "32 file descriptors free, and 16 more with `--metrics`",
    ):
        assert phrase in guide


def test_optionsMakeTheClientLimits() -> None:
    """
    C{--max-clients} and C{--client-timeout} reach the relay's clients;
    C{--client-timeout 0} turns the timeout off; a limit the descriptors
    cannot hold is lowered, by the C{--metrics} endpoint's connections too.
    """
    import resource

    from reconnect.saystuff import _tap as tap

    options = tap.Options()
    options.parseOptions(["--max-clients", "7", "--client-timeout", "0"])
    [limits] = [c for c in tap.makeService(options) if isinstance(c, RelayClients)]  # type: ignore[attr-defined]
    assert limits.maxClients == 7
    assert limits.idleTimeout is None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert tap.descriptorsAllow(soft * 2) == soft - 32
    options = tap.Options()
    options.parseOptions(["--max-clients", str(soft * 2), "--metrics", "tcp:0"])
    [limits] = [c for c in tap.makeService(options) if isinstance(c, RelayClients)]  # type: ignore[attr-defined]
    assert limits.maxClients == soft - 32 - 16


EXIT_HANDLERS = """
import atexit
from reconnect.saystuff._relay import exitWithStatusAtExit

atexit.register(print, "registered before", flush=True)
exitWithStatusAtExit(1)
atexit.register(print, "registered after", flush=True)
"""


def test_exitStatusRunsEachExitHandlerOnce() -> None:
    """
    The exit status of C{--stdin} is set once every exit handler has run,
    each once, whether it was registered before the status was asked for
    or after.
    """
    import os
    import subprocess
    import sys

    from helpers import ROOT

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ended = subprocess.run(
        [sys.executable, "-c", EXIT_HANDLERS],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert ended.returncode == 1, ended.stderr.decode()
    assert ended.stdout == b"registered after\nregistered before\n"


def test_clientsThatReadNothingAreClosed() -> None:
    """
    A client whose answers fill its connection and that reads none of them
    for C{idleTimeout} seconds is closed, though its lines (held back by
    its own full write buffer) wait; one that reads some meanwhile is not.
    """
    limits, reactor = clients(maxClients=2, idleTimeout=8.0)
    factory = limits.factory()
    hog, slow = factory.buildProtocol(None), factory.buildProtocol(None)
    assert hog is not None and slow is not None
    hogTransport, slowTransport = StringTransport(), StringTransport()
    for protocol, transport in [(hog, hogTransport), (slow, slowTransport)]:
        protocol.makeConnection(transport)
        assert transport.producer is not None
        transport.producer.pauseProducing()
        protocol.dataReceived(b"line\n" * 1000)
        assert protocol.waiting
    reactor.advance(6)
    assert slowTransport.producer is not None
    slowTransport.producer.resumeProducing()
    slowTransport.producer.pauseProducing()
    reactor.advance(4)
    assert hogTransport.disconnecting
    assert not slowTransport.disconnecting
    hog.connectionLost(ConnectionDone())
    disconnectAll(limits, reactor)


def test_aLineSentAByteAtATimeDoesNotKeepAClient() -> None:
    """
    A client that sends a byte now and then and never ends a line is idle:
    it is closed C{idleTimeout} after its last complete line, however
    often its bytes come.
    """
    limits, reactor = clients(maxClients=1, idleTimeout=8.0)
    trickler = limits.factory().buildProtocol(None)
    assert trickler is not None
    transport = StringTransport()
    trickler.makeConnection(transport)
    for _ in range(6):
        reactor.advance(1.5)
        trickler.dataReceived(b"x")
    assert transport.disconnecting
    trickler.connectionLost(ConnectionDone())
    disconnectAll(limits, reactor)


def test_idleClientsGetTheirAnswersBeforeTheyAreCut() -> None:
    """
    An idle client's connection is closed, not aborted: answers it has not
    read yet go out first; one still open at the next check (it reads
    nothing) is aborted.
    """
    limits, reactor = clients(maxClients=1, idleTimeout=8.0)
    idle = limits.factory().buildProtocol(None)
    assert idle is not None
    transport = StringTransport()
    idle.makeConnection(transport)
    reactor.advance(8)
    assert transport.disconnecting
    assert not transport.disconnected
    reactor.advance(2)
    assert transport.disconnected
    idle.connectionLost(ConnectionDone())
    disconnectAll(limits, reactor)
