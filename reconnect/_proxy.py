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
from zope.interface import implementer, providedBy
from zope.interface.interface import InterfaceClass

LostNotification = Callable[["_ReconnectingProtocolProxy", Failure], None]
MadeNotification = Callable[["_ReconnectingProtocolProxy"], None]


class _ReconnectingProtocolProxy:
    """
    Stands between the reactor and the user's protocol, passing everything
    through and reporting C{makeConnection} and C{connectionLost}.

    @ivar _protocol: the user's protocol.
    @ivar _transport: the transport, once connected.
    """

    _transport: Optional[ITransport] = None

    def __init__(
        self,
        protocol: IProtocol,
        made: MadeNotification,
        lost: LostNotification,
    ) -> None:
        self._protocol = protocol
        self._made = made
        self._lost = lost

    def makeConnection(self, transport: ITransport) -> None:
        self._transport = transport
        self._made(self)
        self._protocol.makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        self._protocol.dataReceived(data)

    def connectionLost(self, reason: Failure) -> None:
        try:
            self._protocol.connectionLost(reason)
        finally:
            self._lost(self, reason)

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
    declaredOnInstance = "__provides__" in getattr(protocol, "__dict__", ())
    if not declaredOnInstance:
        known = _proxyClassOf.get(protocolClass)
        if known is not None:
            return known
    interfaces = tuple(providedBy(protocol).interfaces())
    proxyClass = _proxyClasses.get(interfaces)
    if proxyClass is None:
        proxyClass = implementer(IProtocol, *interfaces)(
            type("_ReconnectingProtocolProxy", (_ReconnectingProtocolProxy,), {})
        )
        _proxyClasses[interfaces] = proxyClass
    if not declaredOnInstance:
        _proxyClassOf[protocolClass] = proxyClass
    return proxyClass


def wrapProtocol(
    protocol: IProtocol, made: MadeNotification, lost: LostNotification
) -> _ReconnectingProtocolProxy:
    """
    Wrap C{protocol} in a proxy that provides what it provides.
    """
    return _proxyClassFor(protocol)(protocol, made, lost)


@implementer(IProtocolFactory)
class _DisconnectFactory:
    """
    Stands between an endpoint and the user's factory: every protocol it
    builds comes wrapped in a L{_ReconnectingProtocolProxy}.

    C{doStart} and C{doStop}, and any other attribute, reach the user's
    factory unchanged.
    """

    def __init__(
        self,
        protocolFactory: IProtocolFactory,
        made: MadeNotification,
        lost: LostNotification,
    ) -> None:
        self._protocolFactory = protocolFactory
        self._made = made
        self._lost = lost

    def buildProtocol(self, addr: IAddress) -> Optional[IProtocol]:
        built = self._protocolFactory.buildProtocol(addr)
        if built is None:
            return None
        return cast(IProtocol, wrapProtocol(built, self._made, self._lost))

    def doStart(self) -> None:
        self._protocolFactory.doStart()

    def doStop(self) -> None:
        self._protocolFactory.doStop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._protocolFactory, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} wrapping {self._protocolFactory!r}>"
