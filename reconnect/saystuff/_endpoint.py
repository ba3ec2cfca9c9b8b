"""
The endpoint that C{SayStuffToServerService(host, port)} connects through.

Twisted's C{HostnameEndpoint} resolves even an address through the
reactor's name resolver, which runs C{getaddrinfo} in the reactor's thread
pool; that pool starts with C{reactor.run()}.  An asyncio program that runs
Twisted's asyncio reactor with C{loop.run_until_complete} never calls it, so
the resolution, and the connection, would wait for ever, silently.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet import endpoints
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import DNSLookupError
from twisted.internet.interfaces import (
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)


def hostEndpoint(reactor: Any, host: str, port: int) -> IStreamClientEndpoint:
    """
    An endpoint to C{host} and C{port}: an address is connected to as it
    is, with no name resolution; a host name goes through a
    L{HostnameEndpoint}.
    """
    if isIPAddress(host):
        return endpoints.TCP4ClientEndpoint(reactor, host, port)
    if isIPv6Address(host):
        return endpoints.TCP6ClientEndpoint(reactor, host, port)
    return HostnameEndpoint(reactor, host, port)


class HostnameEndpoint(endpoints.HostnameEndpoint):
    """
    Twisted's C{HostnameEndpoint} (and named as it, so that it is described
    as Twisted's is), whose attempt fails at once, saying why, where the
    name could not be resolved before the program ends: while an asyncio
    event loop runs in this thread and the reactor does not.
    """

    def __init__(self, reactor: Any, host: str, port: int) -> None:
        super().__init__(reactor, host, port)
        self._resolvingOn = reactor
        self._name = host

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        if _resolverWaitsForever(self._resolvingOn):
            return fail(
                DNSLookupError(
                    f"cannot resolve {self._name!r}: Twisted resolves host "
                    "names in the reactor's thread pool, which starts with "
                    "reactor.run(), and this asyncio event loop runs without "
                    "it; give an IP address, or an endpoint, or run the reactor"
                )
            )
        return super().connect(protocolFactory)


def _resolverWaitsForever(reactor: Any) -> bool:
    """
    Whether an asyncio event loop runs in this thread while C{reactor} does
    not: the reactor's thread pool then never starts.
    """
    if getattr(reactor, "running", True):
        return False
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
