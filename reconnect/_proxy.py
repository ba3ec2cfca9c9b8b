"""
The factory and protocol wrappers that tell a L{ClientService} when its
connection ends.

The reactor sees only the wrappers.  So that it still treats the user's
protocol as what it is, each wrapper class declares the interfaces of the
protocol it wraps: a half-closeable protocol stays half-closeable, a protocol
that receives file descriptors still receives them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional, cast
from weakref import WeakKeyDictionary

from twisted.internet.interfaces import (
    IAddress,
    IProtocol,
    IProtocolFactory,
    ITransport,
)
from twisted.python.failure import Failure
from zope.interface import implementedBy, implementer, providedBy
from zope.interface.interface import InterfaceClass

LostNotification = Callable[["_ReconnectingProtocolProxy", Failure], None]
MadeNotification = Callable[["_ReconnectingProtocolProxy"], None]


class _ReconnectingProtocolProxy:
    """
    Stands between the reactor and the user's protocol, passing everything
    through and reporting C{makeConnection} and C{connectionLost} to the
    factory that built it.

    Its slots keep a connected service small; an attribute set on it by
    other code still goes into a C{__dict__}, made only then.

    @ivar _protocol: the user's protocol.
    @ivar _factory: the L{_DisconnectFactory} that built it.
    @ivar _transport: the transport, once connected.
    """

    __slots__ = ("_protocol", "_factory", "_transport", "__dict__", "__weakref__")

    def __init__(self, protocol: IProtocol, factory: _DisconnectFactory) -> None:
        self._protocol = protocol
        self._factory = factory
        self._transport: Optional[ITransport] = None

    def makeConnection(self, transport: ITransport) -> None:
        self._transport = transport
        self._factory.transportMade(self)
        self._protocol.makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        self._protocol.dataReceived(data)

    def connectionLost(self, reason: Failure) -> None:
        try:
            self._protocol.connectionLost(reason)
        finally:
            self._factory.transportLost(self, reason)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._protocol, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} wrapping {self._protocol!r}>"


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
        proxyClass = implementer(IProtocol, *interfaces)(
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
class _DisconnectFactory:
    """
    Stands between an endpoint and the user's factory: every protocol it
    builds comes wrapped in a L{_ReconnectingProtocolProxy}.

    C{doStart} and C{doStop}, and any other attribute, reach the user's
    factory unchanged.  Each proxy tells it of its transport's start and
    end (L{transportMade}, L{transportLost}), which it passes on to C{made}
    and C{lost}; a subclass may instead override those two methods and
    give no callables.
    """

    __slots__ = ("_protocolFactory", "_made", "_lost", "__dict__", "__weakref__")

    def __init__(
        self,
        protocolFactory: IProtocolFactory,
        made: Optional[MadeNotification] = None,
        lost: Optional[LostNotification] = None,
    ) -> None:
        self._protocolFactory = protocolFactory
        self._made = made
        self._lost = lost

    def transportMade(self, proxy: _ReconnectingProtocolProxy) -> None:
        """
        C{proxy}'s connection is up.
        """
        assert self._made is not None
        self._made(proxy)

    def transportLost(self, proxy: _ReconnectingProtocolProxy, reason: Failure) -> None:
        """
        C{proxy}'s connection has ended.
        """
        assert self._lost is not None
        self._lost(proxy, reason)

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
