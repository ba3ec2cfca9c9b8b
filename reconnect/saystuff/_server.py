"""
The bundled line server: it answers every line with the same line.  Also a
handle on it that tests and the demo can kill and restart.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver


class EchoLineProtocol(LineReceiver):
    """
    Answers each CRLF-delimited line with itself.
    """

    MAX_LENGTH = 16384

    def connectionMade(self) -> None:
        live = getattr(self.factory, "live", None)
        if live is not None:
            live.add(self)

    def connectionLost(self, reason: Any = None) -> None:
        live = getattr(self.factory, "live", None)
        if live is not None:
            live.discard(self)

    def lineReceived(self, line: bytes) -> None:
        self.transport.write(line + self.delimiter)  # type: ignore[union-attr]

    def lineLengthExceeded(self, line: bytes) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]


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
