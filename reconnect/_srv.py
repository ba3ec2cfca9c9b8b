"""
L{SRVEndpoint}: a client endpoint over the servers that a domain lists for a
service in DNS SRV records (RFC 2782), as XMPP, SIP, LDAP, Matrix
federation and MongoDB fleets publish theirs.

Each C{connect()} looks the records up (an answer is kept for its TTL), puts
the servers in RFC 2782 order and makes one staggered pass over them, as
L{FailoverEndpoint} does: the first to connect wins, a pass fails only when
every server failed, and each server's health (failures in a row, cooling)
is kept from pass to pass for as long as the records list it.  So records
that change are followed: a new server is tried on the next pass, one no
longer listed is no longer tried.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Optional, Union

from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IResolver,
    IStreamClientEndpoint,
)
from zope.interface import implementer

from ._checks import checkSeconds
from ._failover import FailoverEndpoint, _Record
from ._srvlookup import (
    NOT_OFFERED,
    Answer,
    NoServiceRecords,
    ServiceNotOffered,
    SRVLookup,
    serviceName,
)
from ._srvorder import SRVTarget, rfc2782Order


@implementer(IStreamClientEndpoint)
class _Nowhere:
    """
    The endpoint a L{FailoverEndpoint} is built with before an
    L{SRVEndpoint}'s first lookup has found any server; never connected to.
    """

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        return fail(NoServiceRecords("no lookup has been made yet"))


@implementer(IStreamClientEndpoint)
class SRVEndpoint(FailoverEndpoint):
    """
    A client endpoint over the servers of C{_service._protocol.domain}'s
    SRV records, looked up at every pass.

    With no SRV record (the name does not exist, or has none), it connects
    to C{domain:defaultPort}.  A single record whose target is C{"."} says
    that the domain does not offer the service: the attempt fails with
    L{ServiceNotOffered}.

    It is a L{FailoverEndpoint} whose endpoints change from pass to pass, so
    a L{ClientService} over it hears which server it is on, and
    L{health} lists this pass's servers, in the order they were put in.

    @ivar name: the name looked up, e.g. C{b"_xmpp-client._tcp.example.com"}.
    """

    def __init__(
        self,
        reactor: Any,
        service: str,
        domain: Union[str, bytes],
        *,
        protocol: str = "tcp",
        defaultPort: Optional[int] = None,
        resolver: Optional[IResolver] = None,
        stagger: float = 0.25,
        clock: Optional[IReactorTime] = None,
        tlsOptions: Optional[IOpenSSLClientConnectionCreator] = None,
        failuresBeforeCooling: int = 5,
        coolingPeriod: float = 30.0,
        maxCoolingPeriod: float = 300.0,
        randint: Optional[Callable[[int, int], int]] = None,
    ) -> None:
        """
        @param reactor: what the servers are connected with (through
            C{HostnameEndpoint}, so over IPv4 and IPv6 alike).
        @param service: the service's name, without its underscore:
            C{"xmpp-client"}, C{"ldap"}.
        @param domain: the domain that publishes the records; a text one
            is IDNA-encoded.
        @param protocol: the protocol label of the record name, without its
            underscore.
        @param defaultPort: where to connect on C{domain} itself when it
            publishes no SRV record; with none, such a pass fails with
            L{NoServiceRecords}.
        @param resolver: any C{twisted.names} C{IResolver}; by default
            Twisted's own (C{twisted.names.client.getResolver()}), asked
            for at the first lookup.
        @param stagger: seconds given to one server before the next is
            started beside it.
        @param clock: times the stagger, the cooling and the TTLs; by
            default C{reactor}.
        @param tlsOptions: if given, every connection is TLS, made with
            these options (C{twisted.internet.ssl.optionsForClientTLS}):
            they name the host the certificate must be valid for, which is
            best C{domain} itself, since the records are not signed.
        @param failuresBeforeCooling: failures in a row after which a
            server is tried after the others (see L{FailoverEndpoint}).
        @param coolingPeriod: for how long, at first.
        @param maxCoolingPeriod: at most.
        @param randint: draws the RFC 2782 weighted order:
            C{randint(low, high)}, both ends included; by default
            L{random.randint}.
        @raise TypeError: if an argument is of the wrong type.
        @raise ValueError: if one is out of range.
        """
        for label, value in (("service", service), ("protocol", protocol)):
            if not isinstance(value, str):
                raise TypeError(f"{label} must be a str, not {value!r}")
            if not value or value.startswith("_") or "." in value:
                raise ValueError(
                    f"{label} must be a label without its underscore, "
                    f"like 'xmpp-client' or 'tcp', not {value!r}"
                )
        if not isinstance(domain, (str, bytes)):
            raise TypeError(f"domain must be a str or bytes, not {domain!r}")
        if not (
            domain.decode("ascii", "replace") if isinstance(domain, bytes) else domain
        ).strip("."):
            raise ValueError(f"domain must name a domain, not {domain!r}")
        if defaultPort is not None and (
            isinstance(defaultPort, bool) or not isinstance(defaultPort, int)
        ):
            raise TypeError(f"defaultPort must be an int or None, not {defaultPort!r}")
        if defaultPort is not None and not 1 <= defaultPort <= 65535:
            raise ValueError(
                f"defaultPort must be between 1 and 65535, not {defaultPort!r}"
            )
        if resolver is not None and not callable(
            getattr(resolver, "lookupService", None)
        ):
            raise TypeError(
                f"resolver must be a twisted.names resolver, not {resolver!r}"
            )
        checkSeconds("stagger", stagger, zeroAllowed=True)
        super().__init__(
            [_Nowhere()],
            stagger=stagger,
            clock=clock if clock is not None else reactor,
            reactor=reactor,
            failuresBeforeCooling=failuresBeforeCooling,
            coolingPeriod=coolingPeriod,
            maxCoolingPeriod=maxCoolingPeriod,
        )
        self._records = []
        self._reactor = reactor
        self._domain = domain if isinstance(domain, str) else domain.decode("idna")
        self._defaultPort = defaultPort
        self._tlsOptions = tlsOptions
        self._randint = randint
        self.name = serviceName(service, protocol, domain)
        self._lookup = SRVLookup(self.name, resolver, self.clock)
        self._known: dict[tuple[str, int], _Record] = {}

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """
        Look the records up and make one pass over their servers.

        @return: a C{Deferred} that fires with the protocol of the first
            connection made; or fails with L{ServiceNotOffered},
            L{NoServiceRecords}, the lookup's failure (a timeout, a server
            failure), or L{AllEndpointsFailed} with every server's failure.
            Cancelling it calls off the lookup or the pass.
        """
        try:
            looking = self._lookup.lookup()
        except Exception:
            return fail()
        return looking.addCallback(self._passOver, protocolFactory)

    def _passOver(
        self, answer: Answer, protocolFactory: IProtocolFactory
    ) -> Deferred[IProtocol]:
        """
        Make this pass's records from C{answer}, and the pass over them.
        """
        if answer is NOT_OFFERED:
            raise ServiceNotOffered(
                f"{self.name.decode('ascii', 'replace')}: the domain's only SRV "
                "record has the target '.': the service is not offered there"
            )
        assert isinstance(answer, list)
        self._records = self._recordsFor(self._passTargets(answer))
        return FailoverEndpoint.connect(self, protocolFactory)

    def _passTargets(self, targets: list[SRVTarget]) -> list[tuple[str, int]]:
        """
        The servers of this pass, in the order to try them: the records'
        in RFC 2782 order, or with none, C{domain:defaultPort}.

        @raise NoServiceRecords: with no record and no C{defaultPort}.
        """
        if not targets:
            if self._defaultPort is None:
                raise NoServiceRecords(
                    f"{self.name.decode('ascii', 'replace')} has no SRV record, "
                    f"and there is no defaultPort to connect to {self._domain} on"
                )
            return [(self._domain, self._defaultPort)]
        if self._randint is None:
            ordered = rfc2782Order(targets)
        else:
            ordered = rfc2782Order(targets, self._randint)
        return [(target.host, target.port) for target in ordered]

    def _recordsFor(self, places: list[tuple[str, int]]) -> list[_Record]:
        """
        The record of each server, the one it had if it was listed last time
        (so that its health carries over), a new one otherwise.  Servers no
        longer listed are forgotten.
        """
        known: dict[tuple[str, int], _Record] = {}
        for place in places:
            if place not in known:
                record = self._known.get(place)
                if record is None:
                    record = _Record(self._endpointFor(*place))
                    record.description = self._describeServer(*place)
                known[place] = record
        self._known = known
        return list(known.values())

    def _endpointFor(self, host: str, port: int) -> IStreamClientEndpoint:
        """
        The endpoint of one server.
        """
        endpoint: IStreamClientEndpoint = HostnameEndpoint(self._reactor, host, port)
        if self._tlsOptions is not None:
            from twisted.internet.endpoints import wrapClientTLS

            endpoint = wrapClientTLS(self._tlsOptions, endpoint)
        return endpoint

    def _describeServer(self, host: str, port: int) -> str:
        """
        One server, as log lines and L{health} name it.
        """
        scheme = "tcp" if self._tlsOptions is None else "tls"
        return sys.intern(f"{scheme}:{host}:{port}")

    def __repr__(self) -> str:
        return f"srv({self.name.decode('ascii', 'replace')})"
