"""
L{SRVEndpoint}: a client endpoint over the servers that a domain lists for a
service in DNS SRV records (RFC 2782), as XMPP, SIP, LDAP, Matrix
federation and MongoDB fleets publish theirs.

Each C{connect()} looks the records up (an answer is kept for its TTL), puts
the servers in RFC 2782 order and makes one staggered pass over them with
the machinery of L{FailoverEndpoint} (L{reconnect._pass}): the first to
connect wins, a pass fails only when every server failed, and each server's
health (failures in a row, cooling) is kept from pass to pass, shared by
every client, for as long as the records list it.  So records that change
are followed: a new server is tried on the next pass, one no longer listed
is no longer tried, and its record is forgotten.

Like L{FailoverEndpoint}, it gives each client (a L{ClientService}, an
L{EndpointConnector}) a session of its own, which remembers the server that
client is on, so that a connection lost by itself sends that client's next
pass to the others first.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any, Optional, Union

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IResolver,
    IStreamClientEndpoint,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from ._attempt import cancelQuietly
from ._checks import checkClock, checkSeconds
from ._pass import Candidate, EndpointHealth, HealthBook, HealthRecord, runPass
from ._sessions import IEndpointSession, ISessionEndpoint
from ._srvlookup import (
    MAX_STALE_AGE,
    NOT_OFFERED,
    SERVE_STALE_AFTER,
    Answer,
    NoServiceRecords,
    ServiceNotOffered,
    SRVLookup,
    serviceName,
)
from ._srvorder import SRVTarget, rfc2782Order

Place = tuple[str, int]
"""
One server: its host name and port.
"""

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
"""
A service or protocol label of an SRV record's name, without its underscore:
letters, digits and hyphens, neither first nor last a hyphen (RFC 6335).
"""


@implementer(IStreamClientEndpoint, ISessionEndpoint)
class SRVEndpoint:
    """
    A client endpoint over the servers of C{_service._protocol.domain}'s
    SRV records, looked up at every pass.

    With no SRV record (the name does not exist, or has none), it connects
    to C{domain:defaultPort}.  A single record whose target is C{"."} says
    that the domain does not offer the service: the attempt fails with
    L{ServiceNotOffered}.

    @ivar name: the name looked up, e.g. C{b"_xmpp-client._tcp.example.com"}.
    @ivar current: the server the last connection (of any client) went
        through, as C{"tcp:host:port"}, or C{None}.
    @ivar clock: what times the stagger, the cooling and the TTLs.
    @ivar failsOver: true while the last pass (of any client) had more
        than one server to try: a steady connection that is lost is then
        replaced at once by a new pass (see L{ISessionEndpoint}), which
        looks the records up again and tries the other servers first.
        With one server (one record, or the C{defaultPort} fallback) it is
        false, and a service waits out its retry policy, as over any
        endpoint to one server, so that a server that restarts does not get
        its whole fleet back in the same instant.  It is asked at each lost
        connection, since the records may change.
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
        serveStaleAfter: float = SERVE_STALE_AFTER,
        maxStaleAge: float = MAX_STALE_AGE,
    ) -> None:
        """
        @param reactor: what the servers are connected with (through
            C{HostnameEndpoint}, so over IPv4 and IPv6 alike).  Only C{None}
            and plain values are refused here: an endpoint string is parsed
            before C{twistd} installs its reactor, with a stand-in.
        @param service: the service's name, without its underscore:
            C{"xmpp-client"}, C{"ldap"}.
        @param domain: the domain that publishes the records; a text one
            is IDNA-encoded.
        @param protocol: the protocol label of the record name, without its
            underscore: any label of letters, digits and hyphens (RFC 6335's
            syntax), C{"tcp"} by default.  It only names the records: the
            servers are connected to over TCP (or TLS over it) whatever it
            says, as with Twisted's C{SRVConnector}.
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
            these options, an C{IOpenSSLClientConnectionCreator}
            (C{twisted.internet.ssl.optionsForClientTLS}):
            they name the host the certificate must be valid for, which is
            best C{domain} itself, since the records are not signed.
        @param failuresBeforeCooling: failures in a row after which a
            server is tried after the others, by every client (see
            L{FailoverEndpoint <reconnect.FailoverEndpoint>}).
        @param coolingPeriod: for how long, at first.
        @param maxCoolingPeriod: at most.
        @param randint: draws the RFC 2782 weighted order:
            C{randint(low, high)}, both ends included; by default
            C{random.randint}.
        @param serveStaleAfter: seconds after which a lookup that DNS has
            not answered yet is answered from the last answer, if there is
            one (1.8 by default, as RFC 8767 suggests): a client that knows
            a server does not wait out the resolver's retries (a minute
            with C{twisted.names}' defaults).  The lookup goes on, and its
            answer is used from the next pass.
        @param maxStaleAge: seconds past its TTL for which the last answer
            is still served when a lookup fails or is late (a day by
            default, the low end of RFC 8767's one to three); after that, a
            failed lookup fails the pass.
        @raise TypeError: if an argument is of the wrong type.
        @raise ValueError: if one is out of range.
        """
        if reactor is None or isinstance(reactor, (str, bytes, int, float)):
            raise TypeError(
                f"reactor must be the reactor that connects to the servers, "
                f"not {reactor!r}"
            )
        checkClock("clock", clock)
        if tlsOptions is not None and not IOpenSSLClientConnectionCreator.providedBy(
            tlsOptions
        ):
            raise TypeError(
                "tlsOptions must provide IOpenSSLClientConnectionCreator (as "
                "twisted.internet.ssl.optionsForClientTLS(domain) does) or be "
                f"None, not {tlsOptions!r}"
            )
        for label, value in (("service", service), ("protocol", protocol)):
            if not isinstance(value, str):
                raise TypeError(f"{label} must be a str, not {value!r}")
            if value.startswith("_") or not _LABEL.fullmatch(value):
                raise ValueError(
                    f"{label} must be a label of letters, digits and hyphens "
                    f"without its underscore, like 'xmpp-client' or 'tcp', "
                    f"not {value!r}"
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
        for label, seconds in (
            ("serveStaleAfter", serveStaleAfter),
            ("maxStaleAge", maxStaleAge),
        ):
            if seconds is None:
                raise TypeError(f"{label} must be a number of seconds, not None")
            checkSeconds(label, seconds, zeroAllowed=True)
        self.clock: IReactorTime = clock if clock is not None else reactor
        try:
            self.name = serviceName(service, protocol, domain)
        except UnicodeError as e:
            raise ValueError(f"domain {domain!r} is not a domain name: {e}") from None
        self._reactor = reactor
        self._domain = domain if isinstance(domain, str) else domain.decode("idna")
        self._defaultPort = defaultPort
        self._tlsOptions = tlsOptions
        self._randint = randint
        self._stagger = stagger
        self._lookup = SRVLookup(
            self.name, resolver, self.clock, serveStaleAfter, maxStaleAge
        )
        self._health = HealthBook(
            self.clock,
            repr(self),
            failuresBeforeCooling=failuresBeforeCooling,
            coolingPeriod=coolingPeriod,
            maxCoolingPeriod=maxCoolingPeriod,
        )
        self._endpoints: dict[Place, IStreamClientEndpoint] = {}
        self._lastPass: list[HealthRecord] = []
        self.current: Optional[str] = None
        self.failsOver = _SeveralServers(self)
        self._plain = _SRVSession(self)

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """
        Look the records up and make one pass over their servers, for a
        caller with no session (one that calls C{connect} itself).

        @return: a C{Deferred} that fires with the protocol of the first
            connection made; or fails with L{ServiceNotOffered},
            L{NoServiceRecords}, the lookup's failure (a timeout, a server
            failure, with no earlier answer to fall back on), or
            L{AllEndpointsFailed <reconnect.AllEndpointsFailed>} with every
            server's failure.  Cancelling it calls off the lookup or the
            pass.
        """
        return self._plain.connect(protocolFactory)

    def openSession(self, move: Callable[[], object]) -> IEndpointSession:
        """
        A client starts (see L{ISessionEndpoint}): its own session, which
        remembers the server it is on.  C{move} is never called: the
        records rank servers for each pass, and a pass is made only when a
        connection is needed.

        @raise TypeError: if C{move} is not callable.
        """
        if not callable(move):
            raise TypeError(f"move must be callable, not {move!r}")
        return _SRVSession(self)

    def health(self) -> list[EndpointHealth]:
        """
        The record (shared by every client) of each server of the last
        pass, in that pass's order.
        """
        return self._health.report(self._lastPass, self.current)

    def _pass(
        self,
        answer: Answer,
        protocolFactory: IProtocolFactory,
        session: _SRVSession,
    ) -> Deferred[IProtocol]:
        """
        The pass over the servers C{answer} lists, in RFC 2782 order, for
        C{session}.
        """
        # With no server to try (an error below), none is remembered either.
        places: list[Place] = []
        try:
            if answer is NOT_OFFERED:
                raise ServiceNotOffered(
                    f"{self.name.decode('ascii', 'replace')}: the domain's only "
                    "SRV record has the target '.': the service is not offered there"
                )
            assert isinstance(answer, list)
            places = list(dict.fromkeys(self._passTargets(answer)))
        finally:
            self._health.retain(places)
            self._lastPass = [r for r in self._lastPass if r.key in places]
        self._endpoints = {
            place: self._endpoints.get(place) or self._endpointFor(*place)
            for place in places
        }
        candidates: list[Candidate] = [
            (
                self._endpoints[place],
                self._health.record(place, self._describeServer(*place)),
            )
            for place in places
        ]
        self._lastPass = [record for _, record in candidates]
        lost, session.lost = session.lost, None
        return runPass(
            self._health.passOrder(candidates, lost),
            protocolFactory,
            self._health,
            self._stagger,
            session.connected,
        )

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


class _SeveralServers:
    """
    L{SRVEndpoint.failsOver}: true while the endpoint's last pass had more
    than one server to try.
    """

    __slots__ = ("_endpoint",)

    def __init__(self, endpoint: SRVEndpoint) -> None:
        self._endpoint = endpoint

    def __bool__(self) -> bool:
        return len(self._endpoint._lastPass) > 1

    def __repr__(self) -> str:
        return repr(bool(self))


@implementer(IEndpointSession)
class _SRVSession:
    """
    One client of an L{SRVEndpoint}: the server it is on, and the one whose
    connection it just lost, which its next pass tries after the others (a
    server that is going down may still accept for a moment).

    @ivar current: the record of the server this client's last connection
        went through, or C{None}.
    @ivar lost: the record of the server whose connection this client just
        lost, or C{None}.
    """

    __slots__ = ("_owner", "current", "lost", "_closed")

    def __init__(self, owner: SRVEndpoint) -> None:
        self._owner = owner
        self.current: Optional[HealthRecord] = None
        self.lost: Optional[HealthRecord] = None
        self._closed = False

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """
        Look the records up, then make this client's pass over them.

        @return: a C{Deferred} of its own, not one chained to the lookup's:
            a caller that cancels only what has not fired yet (as one may)
            still reaches the pass under way.
        """
        owner = self._owner
        steps: list[Deferred[Any]] = []

        def cancel(result: Deferred[IProtocol]) -> None:
            # The caller's Deferred fails first, so that nothing the step
            # does as it is called off (a lookup answering from an earlier
            # answer, say) can start a pass.
            result.errback(Failure(CancelledError("SRV connect cancelled")))
            cancelQuietly(steps[-1])

        result: Deferred[IProtocol] = Deferred(cancel)

        def settle(outcome: Union[IProtocol, Failure]) -> None:
            if not result.called:
                if isinstance(outcome, Failure):
                    result.errback(outcome)
                else:
                    result.callback(outcome)

        def passOver(answer: Answer) -> None:
            if result.called:
                return
            passing = owner._pass(answer, protocolFactory, self)
            steps.append(passing)
            passing.addBoth(settle)

        try:
            looking = owner._lookup.lookup()
        except Exception:
            return fail()
        steps.append(looking)
        looking.addCallback(passOver).addErrback(settle)
        return result

    def connected(self, record: HealthRecord) -> None:
        """
        This client's pass connected through C{record}'s server; a client
        that stopped meanwhile (from the protocol's C{connectionMade},
        say) has aborted the connection: it is no news.
        """
        if self._closed:
            return
        self.current = record
        self._owner.current = record.description

    def connectionEnded(self, secondsUp: float) -> None:
        self.lost = self.current

    def close(self) -> None:
        self._closed = True
        self.current = self.lost = None

    def __repr__(self) -> str:
        return f"<session of {self._owner!r}>"
