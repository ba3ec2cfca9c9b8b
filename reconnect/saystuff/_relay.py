"""
The relay behind C{twistd saystuff}: lines from local clients (or standard
input) go to the server through one L{SayStuffToServerService}; each reply
goes back to whoever sent the line, in the order the lines came.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionAborted
from twisted.internet.interfaces import (
    IDelayedCall,
    IHalfCloseableProtocol,
    IPushProducer,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import ILogObserver, Logger, textFileLogObserver
from twisted.python.failure import Failure
from zope.interface import implementer

from .._refusals import RefusalLog
from ._errors import ServiceStoppedError
from ._service import SayStuffToServerService


def describeFailure(failure: Failure) -> bytes:
    """
    The line a local client gets instead of a reply.
    """
    message = failure.getErrorMessage().replace("\r", " ").replace("\n", " ")
    return f"ERROR {failure.type.__name__}: {message}".encode()  # type: ignore[union-attr]


STOPPED_ANSWER = describeFailure(
    Failure(ServiceStoppedError("the relay stopped before sending this line"))
)
"""
The answer, at a stop, to each line read from a client and never sent on.
"""

DEFAULT_MAX_OWED = 256
DEFAULT_MAX_OWED_BYTES = 256 * 1024
DEFAULT_MAX_CLIENTS = 1000
DEFAULT_CLIENT_IDLE_TIMEOUT = 300.0
DESCRIPTOR_RESERVE = 32
STOP_GRACE = 2.0
LINGER = 1.0


@implementer(IPushProducer)
class _Pacer:
    """
    Pauses and resumes a L{RelayProtocol}'s reading for one reason: each
    side that may ask it to stop (the SayStuff service, the client's own
    transport) gets its own pacer, and the client is read from only when
    none of them holds it.
    """

    def __init__(self, protocol: RelayProtocol, reason: str) -> None:
        self._protocol = protocol
        self._reason = reason

    def pauseProducing(self) -> None:
        self._protocol.hold(self._reason)

    def resumeProducing(self) -> None:
        self._protocol.release(self._reason)

    def stopProducing(self) -> None:
        pass


@implementer(IPushProducer, IHalfCloseableProtocol)
class RelayProtocol(Protocol):
    """
    Reads lines ending in LF or CRLF, sends each through the service and
    writes the replies (or C{ERROR ...} lines) back in the order of the
    lines.

    What one client can make the relay hold is bounded, whatever it does:
    bytes read and not yet parsed (one read, plus one unfinished line of
    at most C{maxLineLength} bytes), and answers owed to it (C{maxOwed}
    lines or C{maxOwedBytes} bytes of them, each at most one reply).  It
    stops reading from its client while any of these is true, and reads on
    once none is:
        - the service is over its high watermark (the protocol is one of
          the service's producers);
        - C{maxOwed} lines of this client, or C{maxOwedBytes} bytes of
          them, await their answers (it reads on once down to half);
        - its transport's write buffer is full: the client does not read
          its answers (the protocol registers a producer with it).

    A line longer than C{maxLineLength} is answered with an C{ERROR} line
    in its place, the same however its bytes arrive, and the lines after
    it are read as usual.  When the client ends its input (a half-close),
    the lines it sent are answered, then the connection is closed.

    When the connection is lost, the lines read and not yet sent are
    dropped, and the requests not yet written to the server are withdrawn
    (cancelled): nobody is left to read their answers.  At a stop, the
    lines read and not yet sent are not sent: each is answered with
    L{STOPPED_ANSWER}, written as fast as the client reads.
    """

    lineEnding = b"\r\n"

    def __init__(
        self,
        service: SayStuffToServerService,
        maxOwed: int = DEFAULT_MAX_OWED,
        clients: Optional[RelayClients] = None,
        maxOwedBytes: int = DEFAULT_MAX_OWED_BYTES,
    ) -> None:
        self._service = service
        self._maxOwed = maxOwed
        self._maxOwedBytes = maxOwedBytes
        self._owedBytes = 0
        self._clients = clients
        self._buffer = b""
        self._discarding = False
        self._answers: deque[list[Any]] = deque()
        self._holds: set[str] = set()
        self._readingPaused = False
        self._parsing = False
        self._inputEnded = False
        self._draining = False
        self._allRead = False
        self._closed = False
        self._peerEnded = False
        self._ended = False
        self._lingering = False
        self._lingerCall: Optional[IDelayedCall] = None
        self._unsentAtStop = 0
        self._writes = _Pacer(self, "writes")
        self.lastHeard = 0.0
        self.stalledSince: Optional[float] = None
        self.errors = 0

    @property
    def owed(self) -> int:
        """
        How many of this client's lines still await their answer.
        """
        return len(self._answers)

    @property
    def waiting(self) -> bool:
        """
        Whether this client waits on the relay: answers owed to it, or
        complete lines read and held back.  (An unfinished line does not
        count: a client that never ends one is idle.)
        """
        return bool(self._answers) or b"\n" in self._buffer

    def connectionMade(self) -> None:
        if self._clients is not None:
            self._clients.add(self)
        self.transport.registerProducer(self._writes, True)  # type: ignore[union-attr]
        self._service.registerProducer(self, True)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._closed = True
        self._inputEnded = True
        if self._lingerCall is not None and self._lingerCall.active():
            self._lingerCall.cancel()
        self._lingerCall = None
        self._buffer = b""
        self._unsentAtStop = 0
        self._service.unregisterProducer(self)
        if self._clients is not None:
            self._clients.discard(self)
        for slot in list(self._answers):
            if not slot[0] and _unwritten(slot[3]):
                slot[3].cancel()

    # The service pauses and resumes its producers through these.
    def pauseProducing(self) -> None:
        self.hold("server")

    def resumeProducing(self) -> None:
        self.release("server")

    def stopProducing(self) -> None:
        self.transport.stopProducing()  # type: ignore[union-attr]

    def hold(self, reason: str) -> None:
        """
        Read no more lines until C{reason} is L{release}d.
        """
        if reason == "writes" and self._clients is not None:
            if self.stalledSince is None:
                self.stalledSince = self._clients.now()
        self._holds.add(reason)
        self._updateReading()

    def release(self, reason: str) -> None:
        """
        C{reason} no longer holds the reading: once nothing does, parse
        what was read meanwhile and read on.
        """
        if reason == "writes":
            self.stalledSince = None
        if reason not in self._holds:
            return
        self._holds.discard(reason)
        if (not self._holds or self._allRead) and not self._parsing:
            self._parse()

    def _updateReading(self) -> None:
        want = not self._holds and not self._inputEnded
        if self._closed or self._lingering or want != self._readingPaused:
            return
        self._readingPaused = not want
        if want:
            self.transport.resumeProducing()  # type: ignore[union-attr]
        else:
            self.transport.pauseProducing()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if self._inputEnded:
            if self._lingerCall is not None and self._lingerCall.active():
                # Still sending: closing now would reset the connection.
                self._lingerCall.reset(LINGER)
            return
        if self._clients is not None and b"\n" in data:
            # Heard from: a line ended.  Bytes that end none (a line sent
            # a byte at a time) do not keep a client from being idle.
            self.lastHeard = self._clients.now()
        self._buffer += data
        if not self._parsing:
            self._parse()

    def _parse(self) -> None:
        """
        Send every complete line in the buffer, as long as nothing holds
        the reading; at a stop, count them, unsent, for L{STOPPED_ANSWER}s.
        """
        self._parsing = True
        try:
            if self._draining:
                self._countUnsent()
            buffer = self._buffer
            start = 0
            limit = self._service.maxLineLength
            while not self._holds:
                end = buffer.find(b"\n", start)
                if end < 0:
                    break
                line = buffer[start:end]
                start = end + 1
                if self._discarding:
                    self._discarding = False
                    continue
                if line[-1:] == b"\r":
                    line = line[:-1]
                if len(line) > limit:
                    self._answerTooLong()
                else:
                    self._send(line)
            rest = buffer[start:]
            if not self._holds and b"\n" not in rest:
                rest = self._unfinished(rest)
            self._buffer = rest
        finally:
            self._parsing = False
        self._updateReading()
        if self._allRead:
            self._flush()

    def _unfinished(self, rest: bytes) -> bytes:
        """
        What to keep of an unfinished line: nothing once it is known to be
        too long (it is answered with an C{ERROR} line now, and its bytes
        up to the next LF are dropped); at the end of input, it is sent as
        the last line; at a stop, it is dropped unanswered.
        """
        limit = self._service.maxLineLength
        if self._discarding:
            rest = b""
        elif len(rest) > limit + 1:
            # + 1: the unfinished line may end with the CR of a CRLF.
            self._answerTooLong()
            self._discarding = True
            rest = b""
        if self._inputEnded and not self._allRead:
            self._allRead = True
            # At the end of input the unfinished line is the last line.
            if rest:
                line = rest[:-1] if rest[-1:] == b"\r" else rest
                if len(line) > limit:
                    self._answerTooLong()
                else:
                    self._send(line)
            rest = b""
        return rest

    def _countUnsent(self) -> None:
        """
        At a stop: take the complete lines out of the buffer, unsent, to be
        answered with L{STOPPED_ANSWER} after the answers owed before them
        (a line the client was still sending is dropped, unless it ended
        its input: then it was its last line).  Each costs a count, not a
        request: however many were held, the stop sends the server none.
        """
        buffer = self._buffer
        unsent = buffer.count(b"\n")
        if self._discarding and unsent:
            # The first LF ends a line already answered as too long.
            self._discarding = False
            unsent -= 1
        end = buffer.rfind(b"\n") + 1
        if self._peerEnded and buffer[end:] and not self._discarding:
            unsent += 1
        self._buffer = b""
        self._discarding = False
        if not self._allRead:
            self._allRead = True
        self._unsentAtStop += unsent
        self.errors += unsent

    def _answerTooLong(self) -> None:
        limit = self._service.maxLineLength
        self._answerWith(fail(ValueError(f"line over the limit of {limit} bytes")), 0)

    def _send(self, line: bytes) -> None:
        try:
            reply: Deferred[bytes] = self._service.sendToServer(line)
        except Exception:
            reply = fail()
        self._answerWith(reply, len(line))

    def _answerWith(self, reply: Deferred[bytes], size: int) -> None:
        """
        Write what C{reply} fires with, after the answers to every earlier
        line (of C{size} bytes).
        """
        slot: list[Any] = [False, b"", size, reply]
        self._answers.append(slot)
        self._owedBytes += size
        if len(self._answers) >= self._maxOwed or self._owedBytes >= self._maxOwedBytes:
            self.hold("owed")

        def answered(result: object) -> None:
            slot[0] = True
            if isinstance(result, bytes):
                slot[1] = result
            else:
                self.errors += 1
                slot[1] = describeFailure(result)  # type: ignore[arg-type]
            if slot is self._answers[0]:
                self._flush()

        reply.addBoth(answered)

    def _flush(self) -> None:
        answers = self._answers
        ready = []
        while answers and answers[0][0]:
            done = answers.popleft()
            ready.append(done[1])
            self._owedBytes -= done[2]
        if ready and not self._closed:
            ending = self.lineEnding
            self.transport.write(ending.join(ready) + ending)  # type: ignore[union-attr]
        if not answers and self._unsentAtStop:
            self._writeStoppedAnswers()
        if (
            "owed" in self._holds
            and len(answers) <= self._maxOwed // 2
            and self._owedBytes <= self._maxOwedBytes // 2
        ):
            self.release("owed")
        if (
            self._allRead
            and not answers
            and not self._unsentAtStop
            and not self._closed
            and not self._ended
        ):
            self._ended = True
            self.allAnswered()

    def _writeStoppedAnswers(self) -> None:
        """
        Write the L{STOPPED_ANSWER}s owed, a batch at a time, while the
        client reads them: a client that does not read holds no more of
        them in memory than one batch over its transport's buffer.
        """
        ending = self.lineEnding
        while self._unsentAtStop and "writes" not in self._holds and not self._closed:
            batch = min(self._unsentAtStop, self._maxOwed)
            self._unsentAtStop -= batch
            self.transport.write((STOPPED_ANSWER + ending) * batch)  # type: ignore[union-attr]

    def readConnectionLost(self) -> None:
        """
        The client sent all it will (a half-close): answer its lines, then
        close.
        """
        self._peerEnded = True
        if self._lingering:
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        self.inputEnded()

    def writeConnectionLost(self) -> None:
        pass

    def inputEnded(self, drain: bool = False) -> None:
        """
        No more lines will come: relay an unterminated last line, and call
        L{allAnswered} once every line has its answer.

        @param drain: at a stop: the lines read and not yet sent are not
            sent, but answered with L{STOPPED_ANSWER} (a stop must neither
            wait on back-pressure nor put every held line in flight).
        """
        self._draining = self._draining or drain
        if self._inputEnded:
            if drain and not self._parsing:
                self._parse()
            return
        self._inputEnded = True
        if not self._parsing:
            self._parse()

    def allAnswered(self) -> None:
        """
        Input has ended and every line has its answer: close, once what is
        written has gone out.
        """
        transport = self.transport
        assert transport is not None
        transport.unregisterProducer()  # type: ignore[attr-defined]
        if self._peerEnded or not hasattr(transport, "loseWriteConnection"):
            transport.loseConnection()
            return
        # Stopping while the client still sends: closing now, with its
        # lines unread, would reset the connection, and a reset destroys
        # the answers it has not read yet.  Send them and end this side,
        # then read (and drop) what it sends until it closes too, or until
        # it has sent nothing for LINGER seconds (an idle client that keeps
        # its side open does not hold the stop up; one that still sends is
        # cut only when the stop's grace runs out).
        self._lingering = True
        transport.loseWriteConnection()
        self._readingPaused = False
        transport.resumeProducing()  # type: ignore[attr-defined]
        self._lingerCall = self._service._clock.callLater(
            LINGER, transport.loseConnection
        )


def _unwritten(reply: Deferred[bytes]) -> bool:
    """
    Whether the request behind C{reply} (from
    L{SayStuffToServerService.sendToServer}) was never written to the
    server: cancelling it then withdraws it, while one written keeps
    counting against the service's bounds until its reply comes.
    """
    request = getattr(reply, "_canceller", None)
    return getattr(request, "writes", 1) == 0 and not getattr(
        request, "abandoned", True
    )


class RelayClients(Service):
    """
    The local clients of a relay, over every C{--listen} endpoint: how many
    there may be, when an idle one is closed, and, at a stop, that each is
    answered what it is owed before its connection closes.

    @ivar maxClients: at most this many at once; a client over it is
        closed as soon as it connects (logged at most once a minute).
    @ivar idleTimeout: a client that has ended no line for this many
        seconds and waits on nothing (see L{RelayProtocol.waiting}) is
        closed, and so is one whose answers have waited this long, unread,
        in its full write buffer (L{RelayProtocol.stalledSince}): its lines
        wait on it, not on the relay; C{None}: never.
    """

    _log = Logger()

    def __init__(
        self,
        service: SayStuffToServerService,
        reactor: Any,
        maxClients: int = DEFAULT_MAX_CLIENTS,
        idleTimeout: Optional[float] = DEFAULT_CLIENT_IDLE_TIMEOUT,
        maxOwed: int = DEFAULT_MAX_OWED,
    ) -> None:
        self._service = service
        self._reactor = reactor
        self.maxClients = maxClients
        self.idleTimeout = idleTimeout
        self.maxOwed = maxOwed
        self.live: set[RelayProtocol] = set()
        self.refused = 0
        self._refusals = RefusalLog(reactor, self._logRefusals)
        self._idleCheck: Optional[Any] = None
        self._stopped: Optional[Deferred[None]] = None

    def now(self) -> float:
        return float(self._reactor.seconds())

    def factory(self) -> RelayFactory:
        """
        A factory for one C{--listen} endpoint, counting against these
        limits.
        """
        return RelayFactory(self._service, self)

    def admit(self) -> bool:
        """
        Whether one more client may connect now.
        """
        if len(self.live) < self.maxClients and self._stopped is None:
            return True
        self.refused += 1
        self._refusals.refused()
        return False

    def _logRefusals(self, count: int) -> None:
        self._log.warn(
            "Refused {count} local client(s): {clients} connected, the "
            "limit (--max-clients) is {limit}",
            count=count,
            clients=len(self.live),
            limit=self.maxClients,
        )

    def add(self, protocol: RelayProtocol) -> None:
        protocol.lastHeard = self.now()
        self.live.add(protocol)
        if self.idleTimeout is not None and self._idleCheck is None:
            self._idleCheck = self._reactor.callLater(
                self.idleTimeout / 4, self._closeIdle
            )

    def discard(self, protocol: RelayProtocol) -> None:
        self.live.discard(protocol)
        if not self.live:
            if self._idleCheck is not None and self._idleCheck.active():
                self._idleCheck.cancel()
            self._idleCheck = None
            if self._stopped is not None and not self._stopped.called:
                self._stopped.callback(None)

    def _closeIdle(self) -> None:
        """
        Close the clients that sent nothing for C{idleTimeout} and are owed
        nothing, and those that read nothing of their answers for as long;
        check again in a quarter of it.
        """
        timeout = self.idleTimeout
        assert timeout is not None
        self._idleCheck = None
        now = self.now()
        for protocol in list(self.live):
            transport: Any = protocol.transport
            stalled = protocol.stalledSince
            if stalled is not None and now - stalled >= timeout:
                transport.abortConnection()
            elif not protocol.waiting and now - protocol.lastHeard >= timeout:
                # Answers written and not yet read go out first; one that
                # is not read by the next check is thrown away.
                if transport.disconnecting:
                    transport.abortConnection()
                else:
                    transport.loseConnection()
        if self.live and self._stopped is None:
            self._idleCheck = self._reactor.callLater(timeout / 4, self._closeIdle)

    def stopService(self) -> Deferred[None]:
        """
        Read no more from any client; answer every line already read (the
        SayStuff service, stopping too, answers or fails each within its
        C{stopTimeout}); close each client once its answers are written.
        A client still connected C{STOP_GRACE} seconds after that time
        (one that does not read its answers) is aborted.
        """
        Service.stopService(self)
        self._refusals.flush()
        stopped: Deferred[None] = Deferred()
        self._stopped = stopped
        if not self.live:
            stopped.callback(None)
            return stopped
        for protocol in list(self.live):
            protocol.inputEnded(drain=True)
        grace = self._service._stopTimeout + STOP_GRACE
        abort = self._reactor.callLater(grace, self._abortAll)
        stopped.addBoth(lambda _: abort.cancel() if abort.active() else None)
        return stopped

    def _abortAll(self) -> None:
        for protocol in list(self.live):
            transport = protocol.transport
            assert transport is not None
            transport.abortConnection()  # type: ignore[attr-defined]


class RelayFactory(Factory):
    """
    Builds a L{RelayProtocol} for each local client, within the limits of
    its L{RelayClients}.
    """

    noisy = False

    def __init__(
        self,
        service: SayStuffToServerService,
        clients: Optional[RelayClients] = None,
    ) -> None:
        self._service = service
        self._clients = clients

    def buildProtocol(self, addr: object) -> Optional[RelayProtocol]:
        clients = self._clients
        if clients is None:
            protocol = RelayProtocol(self._service)
        elif not clients.admit():
            return None
        else:
            protocol = RelayProtocol(self._service, clients.maxOwed, clients)
        protocol.factory = self
        return protocol


class _StdinRelayProtocol(RelayProtocol):
    """
    The relay on standard input and output: at end of input it writes the
    remaining answers, then closes output and calls C{done}.
    """

    lineEnding = b"\n"

    def __init__(self, service: SayStuffToServerService, done: Callable[[], None]):
        super().__init__(service)
        self._done = done

    def allAnswered(self) -> None:
        self.transport.unregisterProducer()  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        self._done()


class StdinRelayService(Service):
    """
    Relays standard input, line by line; prints the replies on standard
    output; once input ends and every line is answered, stops the reactor.

    Stopped before that (SIGTERM), it reads no more, and waits until every
    line read has its answer or its C{ERROR} line (the SayStuff service,
    stopping too, fails what it cannot answer) and all of it is written.
    If standard output is not read, it waits no longer than the
    service's C{stopTimeout} and L{STOP_GRACE} more: it then closes
    standard output, dropping what is left to write.  If any line got an
    C{ERROR} line, or answers were dropped, the process exits with
    status 1.
    """

    _log = Logger()

    def __init__(self, service: SayStuffToServerService, reactor: Any) -> None:
        self._service = service
        self._reactor = reactor
        self._protocol: Optional[_StdinRelayProtocol] = None
        self._allWritten = False
        self._stopWaiters: list[Deferred[None]] = []
        self._cut: Optional[Any] = None

    def startService(self) -> None:
        from twisted.internet.stdio import StandardIO

        Service.startService(self)
        self._protocol = _StdinRelayProtocol(self._service, self._finished)
        StandardIO(self._protocol, reactor=self._reactor)  # type: ignore[no-untyped-call]

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        if self._protocol is None or self._allWritten:
            return succeed(None)
        stopped: Deferred[None] = Deferred()
        self._stopWaiters.append(stopped)
        if self._cut is None:
            self._cut = self._reactor.callLater(
                self._service._stopTimeout + STOP_GRACE, self._cutOutput
            )
        self._protocol.inputEnded(drain=True)
        return stopped

    def _cutOutput(self) -> None:
        """
        Standard output is not read: close it, and what was left to write
        is dropped.
        """
        self._cut = None
        protocol = self._protocol
        assert protocol is not None
        if self._allWritten or protocol.transport is None:
            return
        self._log.warn(
            "Standard output is not read: closing it at the stop, with "
            "answers still to write"
        )
        protocol.errors += 1
        transport: Any = protocol.transport
        transport.connectionLost(Failure(ConnectionAborted()))

    def _finished(self) -> None:
        """
        Every answer is written and standard output is closed.
        """
        assert self._protocol is not None
        self._allWritten = True
        if self._cut is not None and self._cut.active():
            self._cut.cancel()
        self._cut = None
        if self._protocol.errors:
            exitWithStatusAtExit(1)
        if not self.running:
            waiters, self._stopWaiters = self._stopWaiters, []
            for waiter in waiters:
                waiter.callback(None)
            return
        if self._reactor.running:
            self._reactor.stop()
        else:
            self._reactor.callWhenRunning(self._reactor.stop)


def exitWithStatusAtExit(status: int) -> None:
    """
    End the process with C{status} once it exits, after every exit handler
    has run, each once: twistd itself always exits with 0.

    Exit handlers run newest first, and ending the process skips those not
    run yet (logging's shutdown, coverage's).  So the handler that ends it
    is registered when the interpreter begins to shut down (before it
    runs the exit handlers, it calls those of C{threading}): it is then
    the newest, runs first, and runs every other one, once, before it
    ends the process.
    """
    threading._register_atexit(  # type: ignore[attr-defined]
        atexit.register, _exitWithStatus, status
    )


def _exitWithStatus(status: int) -> None:
    """
    Run the other exit handlers (none has run: this one is the newest),
    then end the process with C{status}.
    """
    atexit.unregister(_exitWithStatus)
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def stderrLogObserver() -> ILogObserver:
    """
    twistd's log, sent to standard error, so that standard output carries
    only replies.
    """
    return textFileLogObserver(sys.stderr)
