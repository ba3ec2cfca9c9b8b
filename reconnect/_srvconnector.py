"""
L{SRVConnector}: a drop-in for C{twisted.names.srvconnect.SRVConnector}, so
that legacy connector code (an XMPP client factory is a
C{ReconnectingClientFactory} handed to one) gets L{SRVEndpoint}'s passes by
changing one import.

Twisted's connector tries one server per C{connect()}: if it fails, the
factory hears of a failure, and a reconnecting factory waits out its delay
before the next server; it keeps the records of its first lookup for ever.
Ours is an L{EndpointConnector} over an L{SRVEndpoint}: each C{connect()}
looks the records up again (within their TTL) and is a staggered pass over
every server, and the factory hears of a failure only when all failed.
"""

from __future__ import annotations

import random
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.error import DNSLookupError, ServiceNameUnknownError
from twisted.internet.interfaces import (
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.names import dns
from zope.interface import implementer

from ._legacy import EndpointConnector
from ._srv import SRVEndpoint
from ._srvorder import SRVTarget, _drawIndex

#: How the reactor's connect functions are made into endpoints: the names of
#: their arguments after host, port and factory.
_CONNECT_FUNCTIONS: Mapping[str, tuple[str, ...]] = {
    "connectTCP": ("timeout", "bindAddress"),
    "connectSSL": ("contextFactory", "timeout", "bindAddress"),
}


class SRVConnector(EndpointConnector):
    """
    An C{IConnector} to the servers of a domain's SRV records, made as
    Twisted's C{SRVConnector} is and used as it is, but over an
    L{SRVEndpoint}: a C{connect()} fails only when every server failed, and
    each looks the records up again, so a connector that reconnects after
    a long-lived connection dropped follows records that changed.

    Its attributes are Twisted's: C{reactor}, C{service}, C{domain} (IDNA
    bytes), C{protocol}, C{connectFuncName}, C{connectFuncArgs},
    C{connectFuncKwArgs}, and C{servers} and C{orderedServers} around
    L{pickServer}, which puts each pass in order, so a subclass that
    overrides it (wokkel's C{XMPPClientConnector} does) is heard.

    @ivar endpoint: the L{SRVEndpoint} it connects through.
    """

    def __init__(
        self,
        reactor: Any,
        service: str,
        domain: Union[str, bytes, None],
        factory: IProtocolFactory,
        protocol: str = "tcp",
        connectFuncName: str = "connectTCP",
        connectFuncArgs: Sequence[Any] = (),
        connectFuncKwArgs: Optional[Mapping[str, Any]] = None,
        defaultPort: Optional[int] = None,
    ) -> None:
        """
        @param connectFuncName: C{"connectTCP"}, or C{"connectSSL"} with a
            context factory first in C{connectFuncArgs}: each server is
            reached through a C{HostnameEndpoint} (IPv4 and IPv6), with TLS
            for the latter; C{timeout} and C{bindAddress} are passed on.
        @param defaultPort: the port on C{domain} itself when it publishes
            no SRV record and the system's services database does not know
            C{service} (Twisted's order).
        @raise ValueError: for another C{connectFuncName}, or arguments it
            does not take.
        """
        if connectFuncName not in _CONNECT_FUNCTIONS:
            raise ValueError(
                f"connectFuncName must be one of {sorted(_CONNECT_FUNCTIONS)}, "
                f"not {connectFuncName!r}"
            )
        self.service = service
        self.domain = None if domain is None else dns.domainString(domain)
        self.protocol = protocol
        self.connectFuncName = connectFuncName
        self.connectFuncArgs = tuple(connectFuncArgs)
        self.connectFuncKwArgs = dict(connectFuncKwArgs or {})
        self._connectArguments = _connectArguments(
            connectFuncName, self.connectFuncArgs, self.connectFuncKwArgs
        )
        self._defaultPort = defaultPort
        self.servers: Optional[list[dns.Record_SRV]] = None
        self.orderedServers: Optional[list[dns.Record_SRV]] = None
        endpoint: IStreamClientEndpoint
        if self.domain is None:
            endpoint = _NoDomain()
        else:
            endpoint = _ConnectorsEndpoint(
                self, reactor, service, self.domain, protocol=protocol
            )
        super().__init__(endpoint, factory, reactor)

    def pickServer(self) -> tuple[str, Union[int, str]]:
        """
        The next server, as Twisted's connector picks it: from C{servers}
        (once empty, a new round begins from C{orderedServers}), the lowest
        priority, drawn by weight as RFC 2782 says (among those of weight
        0, at random), and moved to
        C{orderedServers}.  With no records at all, the domain and the
        service's name (its port is then looked up in the system's services
        database).

        @return: the host and port.
        """
        if not self.servers and not self.orderedServers:
            assert self.domain is not None
            return self.domain.decode("ascii"), self.service
        if not self.servers:
            self.servers, self.orderedServers = self.orderedServers, []
        assert self.servers is not None and self.orderedServers is not None
        lowest = min(record.priority for record in self.servers)
        # Those of weight 0 first, shuffled, so that the draw of 0 picks
        # among them at random (see rfc2782Order).
        zeros = [r for r in self.servers if r.priority == lowest and not r.weight]
        random.shuffle(zeros)
        candidates = zeros + sorted(
            (r for r in self.servers if r.priority == lowest and r.weight),
            key=lambda r: (r.weight, r.target.name, r.port),
        )
        chosen = candidates[
            _drawIndex(
                [SRVTarget(r.priority, r.weight, r.port, "") for r in candidates],
                lambda low, high: random.randint(low, high),
            )
        ]
        self.servers.remove(chosen)
        self.orderedServers.append(chosen)
        return str(chosen.target), chosen.port

    def _servicePort(self, port: Union[int, str]) -> int:
        """
        The port of a fallback to the domain: a number as it is, a service
        name from the system's services database, else C{defaultPort}.

        @raise ServiceNameUnknownError: if none of them gives one.
        """
        if isinstance(port, int):
            return port
        try:
            return socket.getservbyname(port, self.protocol)
        except OSError as e:
            if self._defaultPort is not None:
                return self._defaultPort
            raise ServiceNameUnknownError(string=f"{e} ({port!r})") from None

    def _endpointFor(self, reactor: Any, host: str, port: int) -> IStreamClientEndpoint:
        """
        One server's endpoint, as the connect function named would reach it.
        """
        arguments = dict(self._connectArguments)
        contextFactory = arguments.pop("contextFactory", None)
        endpoint: IStreamClientEndpoint = HostnameEndpoint(
            reactor, host, port, **arguments
        )
        if contextFactory is not None:
            from twisted.internet.endpoints import wrapClientTLS

            endpoint = wrapClientTLS(contextFactory, endpoint)
        return endpoint

    def __repr__(self) -> str:
        return f"<SRVConnector to {self.endpoint!r} ({self.state})>"


def _connectArguments(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """
    The connect function's arguments after host, port and factory, by name.

    @raise ValueError: for too many, or a name it does not take.
    """
    names = _CONNECT_FUNCTIONS[name]
    if len(args) > len(names):
        raise ValueError(f"{name} takes at most {len(names)} more arguments: {args!r}")
    arguments = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key not in names or key in arguments:
            raise ValueError(f"{name} does not take {key}= here")
        arguments[key] = value
    if name == "connectSSL" and "contextFactory" not in arguments:
        raise ValueError("connectSSL needs a context factory in connectFuncArgs")
    return arguments


class _ConnectorsEndpoint(SRVEndpoint):
    """
    The L{SRVEndpoint} of an L{SRVConnector}: each pass is put in order by
    the connector's L{SRVConnector.pickServer}, and each server reached as
    its connect function would.
    """

    def __init__(self, connector: SRVConnector, reactor: Any, *args: Any, **kw: Any):
        super().__init__(reactor, *args, **kw)
        self._connector = connector

    def _passTargets(self, targets: list[SRVTarget]) -> list[tuple[str, int]]:
        connector = self._connector
        connector.servers = []
        connector.orderedServers = [
            dns.Record_SRV(t.priority, t.weight, t.port, t.host)  # type: ignore[no-untyped-call]
            for t in targets
        ]
        if not targets:
            host, port = connector.pickServer()
            return [(host, connector._servicePort(port))]
        picked = [connector.pickServer() for _ in targets]
        return [(host, connector._servicePort(port)) for host, port in picked]

    def _endpointFor(self, host: str, port: int) -> IStreamClientEndpoint:
        return self._connector._endpointFor(self._reactor, host, port)

    def _describeServer(self, host: str, port: int) -> str:
        secure = "contextFactory" in self._connector._connectArguments
        return sys.intern(f"{'tls' if secure else 'tcp'}:{host}:{port}")


@implementer(IStreamClientEndpoint)
class _NoDomain:
    """
    The endpoint of a connector made with no domain: every attempt fails,
    as Twisted's does.
    """

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        return fail(DNSLookupError("Domain is not defined."))

    def __repr__(self) -> str:
        return "srv(no domain)"
