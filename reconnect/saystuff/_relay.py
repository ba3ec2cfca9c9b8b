"""
The relay behind C{twistd saystuff}: lines from local clients (or standard
input) go to the server through one L{SayStuffToServerService}; each reply
goes back to whoever sent the line, in the order the lines came.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections import deque
from collections.abc import Callable
from typing import Any, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import ILogObserver, textFileLogObserver
from twisted.python.failure import Failure
from zope.interface import implementer

from ._service import SayStuffToServerService


def describeFailure(failure: Failure) -> bytes:
    """
    The line a local client gets instead of a reply.
    """
    message = failure.getErrorMessage().replace("\r", " ").replace("\n", " ")
    return f"ERROR {failure.type.__name__}: {message}".encode()  # type: ignore[union-attr]


@implementer(IPushProducer)
class RelayProtocol(Protocol):
    """
    Reads lines ending in LF or CRLF, sends each through the service and
    writes the replies (or C{ERROR ...} lines) back in the order of the
    lines.

    It is the service's producer: while the service is over its high
    watermark, it stops reading from its client and holds the lines already
    read, so a fast sender is slowed, not refused.
    """

    lineEnding = b"\r\n"

    def __init__(self, service: SayStuffToServerService) -> None:
        self._service = service
        self._buffer = b""
        self._answers: deque[list[Any]] = deque()
        self._inputEnded = False
        self._closeWhenAnswered = False
        self._held: deque[bytes] = deque()
        self._paused = False
        self.errors = 0

    def connectionMade(self) -> None:
        self._service.registerProducer(self, True)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._service.unregisterProducer(self)

    def pauseProducing(self) -> None:
        self._paused = True
        self.transport.pauseProducing()  # type: ignore[union-attr]

    def resumeProducing(self) -> None:
        self._paused = False
        held = self._held
        while held and not self._paused:
            self._send(held.popleft())
        if not self._paused:
            if self._inputEnded:
                self._flush()
            self.transport.resumeProducing()  # type: ignore[union-attr]

    def stopProducing(self) -> None:
        self.transport.stopProducing()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if self._inputEnded:
            return
        lines = (self._buffer + data).split(b"\n")
        self._buffer = lines.pop()
        for line in lines:
            self.relay(line[:-1] if line.endswith(b"\r") else line)
        # The unfinished line may end with the CR of a CRLF still to come.
        if len(self._buffer) > self._service.maxLineLength + 1:
            self._lineTooLong()

    def _lineTooLong(self) -> None:
        """
        A line longer than the server could take: answer it with an
        C{ERROR} line, read no more from this client, and close once the
        lines before it are answered.  Nothing unbounded is buffered.
        """
        self._buffer = b""
        limit = self._service.maxLineLength
        self._answerWith(fail(ValueError(f"line over the limit of {limit} bytes")))
        self._closeWhenAnswered = True
        self.inputEnded()

    def relay(self, line: bytes) -> None:
        if self._paused or self._held:
            self._held.append(line)
        else:
            self._send(line)

    def _send(self, line: bytes) -> None:
        try:
            reply: Deferred[bytes] = self._service.sendToServer(line)
        except Exception:
            reply = fail()
        self._answerWith(reply)

    def _answerWith(self, reply: Deferred[bytes]) -> None:
        """
        Write what C{reply} fires with, after the answers to every earlier
        line.
        """
        slot: list[Any] = [False, b""]
        self._answers.append(slot)

        def answered(result: object) -> None:
            slot[0] = True
            if isinstance(result, bytes):
                slot[1] = result
            else:
                self.errors += 1
                slot[1] = describeFailure(result)  # type: ignore[arg-type]
            self._flush()

        reply.addBoth(answered)

    def _flush(self) -> None:
        answers = self._answers
        while answers and answers[0][0]:
            self.transport.write(answers.popleft()[1] + self.lineEnding)  # type: ignore[union-attr]
        if self._inputEnded and not answers and not self._held:
            self.allAnswered()

    def inputEnded(self) -> None:
        """
        No more lines will come: relay an unterminated last line, and call
        L{allAnswered} once every line has its answer.
        """
        if self._inputEnded:
            return
        if self._buffer:
            self.relay(self._buffer.rstrip(b"\r"))
            self._buffer = b""
        self._inputEnded = True
        self._flush()

    def allAnswered(self) -> None:
        """
        Input has ended and every line has its answer.
        """
        if self._closeWhenAnswered:
            self.transport.loseConnection()  # type: ignore[union-attr]


class RelayFactory(Factory):
    """
    Builds a L{RelayProtocol} for each local client.
    """

    noisy = False

    def __init__(self, service: SayStuffToServerService) -> None:
        self._service = service

    def buildProtocol(self, addr: object) -> RelayProtocol:
        protocol = RelayProtocol(self._service)
        protocol.factory = self
        return protocol


@implementer(IHalfCloseableProtocol)
class _StdinRelayProtocol(RelayProtocol):
    """
    The relay on standard input and output: at end of input it writes the
    remaining answers, then closes output and calls C{done}.
    """

    lineEnding = b"\n"

    def __init__(self, service: SayStuffToServerService, done: Callable[[], None]):
        super().__init__(service)
        self._done = done

    def readConnectionLost(self) -> None:
        self.inputEnded()

    def writeConnectionLost(self) -> None:
        pass

    def allAnswered(self) -> None:
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
    If any line got an C{ERROR} line, the process exits with status 1.
    """

    def __init__(self, service: SayStuffToServerService, reactor: Any) -> None:
        self._service = service
        self._reactor = reactor
        self._protocol: Optional[_StdinRelayProtocol] = None
        self._allWritten = False
        self._stopWaiters: list[Deferred[None]] = []

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
        self._protocol.inputEnded()
        return stopped

    def _finished(self) -> None:
        """
        Every answer is written and standard output is closed.
        """
        assert self._protocol is not None
        self._allWritten = True
        if self._protocol.errors:
            atexit.register(_exitWithStatus, 1)
        if not self.running:
            waiters, self._stopWaiters = self._stopWaiters, []
            for waiter in waiters:
                waiter.callback(None)
            return
        if self._reactor.running:
            self._reactor.stop()
        else:
            self._reactor.callWhenRunning(self._reactor.stop)


def _exitWithStatus(status: int) -> None:
    """
    End the process with C{status}: twistd itself always exits with 0, so
    this runs at exit, once twistd has shut down and removed its pidfile.

    Exit handlers run newest first, and this one is registered late: it
    runs those registered before it (logging's shutdown, coverage's) first,
    which ending the process at once would skip.
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
