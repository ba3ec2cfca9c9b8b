"""
Test helpers for code that uses reconnect: an endpoint whose connection
attempts the test decides, one by one::

    endpoint = FakeEndpoint()
    service = ClientService(endpoint, factory, clock=clock)
    service.startService()
    endpoint.attempts[-1].succeed()      # or .fail(reason), or leave it hanging

(C{succeed(tls=True)} makes a transport that carries TLS, whose handshake
the test then completes with C{completeHandshake()} or fails with
C{lose(reason)}),

and, for tests over real sockets, L{ChaosProxy}: a loopback TCP proxy that
cuts, refuses, hangs, silences or trickles connections on command.
"""

from __future__ import annotations

from typing import Any, Optional, cast

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import (
    IHandshakeListener,
    IProtocol,
    IProtocolFactory,
    ISSLTransport,
    IStreamClientEndpoint,
)
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer

from ._chaos import ChaosProxy

__all__ = ["ChaosProxy", "FakeAttempt", "FakeEndpoint"]


class FakeAttempt:
    """
    One call to L{FakeEndpoint.connect}, waiting for the test to decide it.

    @ivar factory: the factory the endpoint was given.
    @ivar deferred: what C{connect} returned.
    @ivar protocol: the protocol built by L{succeed}, if it was.
    @ivar transport: its C{StringTransport}.
    @ivar cancelled: whether the caller cancelled the attempt.
    """

    protocol: Optional[IProtocol] = None
    transport: Optional[StringTransport] = None
    cancelled = False
    lost = False

    def __init__(self, factory: IProtocolFactory) -> None:
        self.factory = factory
        self.deferred: Deferred[Any] = Deferred(self._cancel)

    def _cancel(self, deferred: Deferred[Any]) -> None:
        self.cancelled = True
        deferred.errback(Failure(CancelledError("connection attempt cancelled")))

    def succeed(self, tls: bool = False) -> IProtocol:
        """
        Connect: build the protocol, give it a fresh C{StringTransport} and
        fire the attempt with it.

        @param tls: if true, the transport says it carries TLS
            (C{ISSLTransport}), whose handshake the test completes with
            L{completeHandshake} or fails with L{lose}.
        @return: the protocol the factory built (for a L{ClientService},
            its proxy).
        """
        protocol = self.factory.buildProtocol(None)  # type: ignore[arg-type]
        if protocol is None:
            self.deferred.errback(Failure(ConnectionRefusedError("no protocol")))
            raise ValueError("the factory built no protocol")
        self.protocol = protocol
        self.transport = StringTransport()
        if tls:
            directlyProvides(self.transport, ISSLTransport)
        protocol.makeConnection(self.transport)
        if not self.cancelled:
            self.deferred.callback(protocol)
        return protocol

    def completeHandshake(self) -> None:
        """
        Complete the TLS handshake of a connection made by C{succeed(tls=True)},
        as Twisted's TLS transport tells a protocol that listens for it.
        """
        assert self.protocol is not None and self.transport is not None
        assert IHandshakeListener.providedBy(self.protocol), "no handshake listener"
        cast(IHandshakeListener, self.protocol).handshakeCompleted()

    def fail(self, reason: Optional[BaseException] = None) -> None:
        """
        Fail the attempt, by default with C{ConnectionRefusedError}.
        """
        if reason is None:
            reason = ConnectionRefusedError()
        self.deferred.errback(Failure(reason))

    def lose(self, reason: Optional[BaseException] = None) -> None:
        """
        End the connection made by L{succeed}, as the reactor would.
        """
        from twisted.internet.error import ConnectionDone

        assert self.protocol is not None and self.transport is not None
        assert not self.lost, "the connection was already lost"
        self.lost = True
        self.transport.disconnecting = True
        self.protocol.connectionLost(Failure(reason or ConnectionDone()))


@implementer(IStreamClientEndpoint)
class FakeEndpoint:
    """
    A client endpoint that records each connection attempt as a
    L{FakeAttempt} for the test to succeed, fail or leave hanging.

    @ivar attempts: every attempt so far, oldest first.
    @ivar immediately: if true, every attempt succeeds as soon as it is made.
    """

    def __init__(self, immediately: bool = False) -> None:
        self.attempts: list[FakeAttempt] = []
        self.immediately = immediately

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        attempt = FakeAttempt(protocolFactory)
        self.attempts.append(attempt)
        if self.immediately:
            attempt.succeed()
        return attempt.deferred

    @property
    def last(self) -> FakeAttempt:
        """
        The most recent attempt.
        """
        return self.attempts[-1]
