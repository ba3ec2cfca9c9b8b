"""
The factory and protocol wrappers that tell a L{ClientService} when its
connection ends.

The reactor sees only the wrappers.  So that it still treats the user's
protocol as what it is, each wrapper class declares the interfaces of the
protocol it wraps: a half-closeable protocol stays half-closeable, a protocol
that receives file descriptors still receives them.  Every wrapper also
listens for the end of a TLS handshake, so that an attempt over TLS can wait
for it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Optional, cast
from weakref import WeakKeyDictionary

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IHandshakeListener,
    IProtocol,
    IProtocolFactory,
    ITransport,
)
from twisted.python.failure import Failure
from zope.interface import implementedBy, implementer, providedBy
from zope.interface.interface import InterfaceClass


class _ReconnectingProtocolProxy:
    """
    Stands between the reactor and the user's protocol, passing everything
    through and reporting C{makeConnection} and C{connectionLost} to the
    factory that built it.

    It has slots and no C{__dict__}, to keep a connected service small: an
    attribute that is not its own is read from, and set on, the user's
    protocol (what C{prepareConnection} sets on what it is given ends up on
    the protocol that C{whenConnected} hands out).

    @ivar _protocol: the user's protocol.
    @ivar _factory: the L{_DisconnectFactory} that built it.
    @ivar _transport: the transport, once connected.
    """

    __slots__ = ("_protocol", "_factory", "_transport", "__weakref__")

    _protocol: IProtocol
    _factory: _DisconnectFactory
    _transport: Optional[ITransport]

    def __init__(self, protocol: IProtocol, factory: _DisconnectFactory) -> None:
        _setOwn(self, "_protocol", protocol)
        _setOwn(self, "_factory", factory)
        _setOwn(self, "_transport", None)

    def makeConnection(self, transport: ITransport) -> None:
        _setOwn(self, "_transport", transport)
        self._factory.transportMade(self)
        self._protocol.makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        self._protocol.dataReceived(data)

    def connectionLost(self, reason: Failure) -> None:
        try:
            self._protocol.connectionLost(reason)
        finally:
            self._factory.transportLost(self, reason)

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake under this connection is done: the user's
        protocol hears it first, if it listens for it, so that it knows by
        the time the connection is handed out; then the factory (an attempt
        is not over before it), even if the protocol raised.
        """
        try:
            if IHandshakeListener.providedBy(self._protocol):
                cast(IHandshakeListener, self._protocol).handshakeCompleted()
        finally:
            self._factory.handshakeDone(self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._protocol, name)

    def __setattr__(self, name: str, value: object) -> None:
        setattr(self._protocol, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._protocol, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} wrapping {self._protocol!r}>"


_setOwn = object.__setattr__


_proxyClasses: dict[tuple[InterfaceClass, ...], type[_ReconnectingProtocolProxy]] = {}

# The same, by protocol class, for protocols with no declarations of their
# own: weakly, so that classes made at run time can go.
_proxyClassOf: WeakKeyDictionary[type, type[_ReconnectingProtocolProxy]] = (
    WeakKeyDictionary()
)


def _proxyClassFor(protocol: IProtocol) -> type[_ReconnectingProtocolProxy]:
    """
    Find (or make, once per set of interfaces) the proxy class that declares
    everything C{protocol} provides.

    The cache is keyed by the interfaces themselves, not by the protocol's
    class or declaration, so it holds one class per combination of
    interfaces a program uses: protocol classes made at run time, or
    interfaces declared on single instances, do not grow it.
    """
    protocolClass = type(protocol)
    provided = providedBy(protocol)
    declaredOnInstance = provided is not implementedBy(protocolClass)  # type: ignore[no-untyped-call]
    if not declaredOnInstance:
        known = _proxyClassOf.get(protocolClass)
        if known is not None:
            return known
    interfaces = tuple(provided.interfaces())
    proxyClass = _proxyClasses.get(interfaces)
    if proxyClass is None:
        proxyClass = implementer(IProtocol, IHandshakeListener, *interfaces)(
            type(
                "_ReconnectingProtocolProxy",
                (_ReconnectingProtocolProxy,),
                {"__slots__": ()},
            )
        )
        _proxyClasses[interfaces] = proxyClass
    if not declaredOnInstance:
        _proxyClassOf[protocolClass] = proxyClass
    return proxyClass


def wrapProtocol(
    protocol: IProtocol, factory: _DisconnectFactory
) -> _ReconnectingProtocolProxy:
    """
    Wrap C{protocol} in a proxy that provides what it provides and reports
    to C{factory}.
    """
    return _proxyClassFor(protocol)(protocol, factory)


@implementer(IProtocolFactory)
class _DisconnectFactory(ABC):
    """
    Stands between an endpoint and the user's factory: every protocol it
    builds comes wrapped in a L{_ReconnectingProtocolProxy}, which tells it
    of its transport's start and end (L{transportMade}, L{transportLost}):
    subclasses say what those mean.

    C{doStart} and C{doStop}, and any other attribute read, reach the user's
    factory unchanged.  It has slots and no C{__dict__}: the factory of a
    connection lives as long as the connection.
    """

    __slots__ = ("_protocolFactory",)

    def __init__(self, protocolFactory: IProtocolFactory) -> None:
        self._protocolFactory = protocolFactory

    @abstractmethod
    def transportMade(self, proxy: _ReconnectingProtocolProxy) -> None:
        """
        C{proxy}'s connection is up.
        """

    @abstractmethod
    def transportLost(self, proxy: _ReconnectingProtocolProxy, reason: Failure) -> None:
        """
        C{proxy}'s connection has ended.
        """

    @abstractmethod
    def handshakeDone(self, proxy: _ReconnectingProtocolProxy) -> None:
        """
        C{proxy}'s TLS handshake has completed.
        """

    def whenHandshaken(self, protocol: object) -> Optional[Deferred[None]]:
        """
        For a pass over several servers: when C{protocol}'s TLS handshake is
        done, if it is to be waited for (see L{reconnect._pass}).

        @return: C{None} here, where a connection counts as made when its
            transport is (Twisted's contract for connectors).
        """
        return None

    def buildProtocol(self, addr: IAddress) -> Optional[IProtocol]:
        built = self._protocolFactory.buildProtocol(addr)
        if built is None:
            return None
        return cast(IProtocol, wrapProtocol(built, self))

    def doStart(self) -> None:
        self._protocolFactory.doStart()

    def doStop(self) -> None:
        self._protocolFactory.doStop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._protocolFactory, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} wrapping {self._protocolFactory!r}>"
