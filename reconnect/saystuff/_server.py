"""
The bundled line server: it answers every line with the same line.  Also a
handle on it that tests and the demo can kill and restart.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IListeningPort,
    IPushProducer,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer


@implementer(IHalfCloseableProtocol, IPushProducer)
class EchoLineProtocol(Protocol):
    """
    Answers each CRLF-delimited line with itself.

    A client that does not read its answers is not read from either: the
    protocol is its transport's producer, so once the answers back up it
    stops reading, and what it holds stays bounded (one read and one
    unfinished line of at most C{MAX_LENGTH} bytes).  Echoing costs one
    write per read, not one per line, so a flood of tiny lines from one
    client costs little more than a flood of bytes, and the reactor's turn
    by turn reading keeps clients fair.  A client that half-closes gets
    its answers, then the connection closes.  A line over C{MAX_LENGTH}
    closes the connection, after the lines before it are answered.

    A subclass may override L{lineReceived} to see each line.
    """

    MAX_LENGTH = 16384
    delimiter = b"\r\n"

    def __init__(self) -> None:
        self._buffer = b""

    def connectionMade(self) -> None:
        live = getattr(self.factory, "live", None)
        if live is not None:
            live.add(self)
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]

    def connectionLost(self, reason: Any = None) -> None:
        live = getattr(self.factory, "live", None)
        if live is not None:
            live.discard(self)

    # The transport pauses its producer while its write buffer is full.
    def pauseProducing(self) -> None:
        self.transport.pauseProducing()  # type: ignore[union-attr]

    def resumeProducing(self) -> None:
        self.transport.resumeProducing()  # type: ignore[union-attr]

    def stopProducing(self) -> None:
        pass

    def dataReceived(self, data: bytes) -> None:
        buffer = self._buffer + data
        end = buffer.rfind(b"\r\n")
        if end < 0:
            complete, self._buffer = b"", buffer
        else:
            complete, self._buffer = buffer[: end + 2], buffer[end + 2 :]
        if complete:
            self._answer(complete)
        if len(self._buffer) > self.MAX_LENGTH + 1 and self.transport is not None:
            self.lineLengthExceeded(self._buffer)

    def _answer(self, complete: bytes) -> None:
        """
        Answer the complete lines in C{complete} (which ends with a CRLF).
        """
        limit = self.MAX_LENGTH
        lines = None
        if len(complete) > limit + 2:
            lines = complete.split(b"\r\n")[:-1]
            tooLong = next((n for n, line in enumerate(lines) if len(line) > limit), -1)
            if tooLong >= 0:
                del lines[tooLong:]
                complete = b"".join(line + b"\r\n" for line in lines)
                self._buffer = b""
                self._echo(complete, lines)
                self.lineLengthExceeded(b"")
                return
        self._echo(complete, lines)

    def _echo(self, complete: bytes, lines: Optional[list[bytes]]) -> None:
        if type(self).lineReceived is EchoLineProtocol.lineReceived:
            if complete:
                self.transport.write(complete)  # type: ignore[union-attr]
            return
        if lines is None:
            lines = complete.split(b"\r\n")[:-1]
        for line in lines:
            if self.transport is None or self.transport.disconnecting:  # type: ignore[attr-defined]
                return
            self.lineReceived(line)

    def lineReceived(self, line: bytes) -> None:
        self.transport.write(line + self.delimiter)  # type: ignore[union-attr]

    def lineLengthExceeded(self, line: bytes) -> None:
        self._buffer = b""
        self.transport.loseConnection()  # type: ignore[union-attr]

    def readConnectionLost(self) -> None:
        """
        The client sent all it will: close once its answers are written.
        """
        transport = self.transport
        assert transport is not None
        transport.unregisterProducer()  # type: ignore[attr-defined]
        transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass


class EchoLineFactory(Factory):
    """
    Builds L{EchoLineProtocol}s and keeps track of the live ones.
    """

    protocol = EchoLineProtocol
    noisy = False

    def __init__(self) -> None:
        self.live: set[EchoLineProtocol] = set()


class RestartableLineServer:
    """
    The echo server on 127.0.0.1, which a test or the demo can kill (stop
    listening and abort every connection) and restart on the same port.

    @ivar port: the port number, chosen by the system on the first start
        unless given.
    """

    def __init__(self, reactor: Any, port: int = 0, interface: str = "127.0.0.1"):
        self._reactor = reactor
        self._interface = interface
        self.port = port
        self.factory = EchoLineFactory()
        self._listening: Optional[IListeningPort] = None

    @property
    def running(self) -> bool:
        return self._listening is not None

    def start(self) -> Deferred[int]:
        """
        Listen; fires with the port number.
        """
        endpoint: IStreamServerEndpoint = TCP4ServerEndpoint(
            self._reactor, self.port, interface=self._interface
        )

        def listening(port: IListeningPort) -> int:
            self._listening = port
            self.port = port.getHost().port  # type: ignore[attr-defined]
            return self.port

        return endpoint.listen(self.factory).addCallback(listening)

    def kill(self) -> Deferred[None]:
        """
        Stop listening and abort every live connection, as a crash would.
        """
        listening, self._listening = self._listening, None
        for protocol in list(self.factory.live):
            protocol.transport.abortConnection()  # type: ignore[union-attr]
        if listening is None:
            return succeed(None)
        return listening.stopListening()  # type: ignore[return-value]
