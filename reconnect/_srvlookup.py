"""
Looking up a service's SRV records, and what the answer means: the servers
to try, none (so the client falls back to the domain itself), or a service
that the domain says it does not offer.

Answers are kept for as long as their TTLs allow, so that a client that
reconnects often does not ask the resolver each time, and one that
reconnects after the records changed sees the change.  Past their TTL they
are still kept, for a lookup that fails (a timeout, a server failure): the
servers last listed are better than none while DNS is down (RFC 8767's
"serve stale").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union, cast

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.error import DNSLookupError
from twisted.internet.interfaces import IReactorTime, IResolver
from twisted.names import dns
from twisted.names.error import DNSNameError
from twisted.python.failure import Failure

from ._srvorder import SRVTarget


class ServiceNotOffered(DNSLookupError):
    """
    The domain publishes a single SRV record whose target is C{"."}: the
    service is deliberately not offered there (RFC 2782), and no server of
    that domain is to be tried.
    """


class NoServiceRecords(DNSLookupError):
    """
    The domain publishes no SRV record for the service, and there is no
    default port to fall back to on the domain itself.
    """


class NotOffered:
    """
    The answer for a service that the domain says it does not offer.
    """


NOT_OFFERED = NotOffered()

#: What a lookup finds: the targets (none, to fall back to the domain), or
#: that the service is not offered.
Answer = Union[list[SRVTarget], NotOffered]


def serviceName(service: str, protocol: str, domain: Union[str, bytes]) -> bytes:
    """
    The name whose SRV records list C{service}'s servers:
    C{_service._protocol.domain}, as the bytes a resolver takes (a text
    domain is IDNA-encoded).
    """
    return b"_%s._%s.%s" % (
        service.encode("ascii"),
        protocol.encode("ascii"),
        dns.domainString(domain),
    )


def defaultResolver() -> IResolver:
    """
    Twisted's default resolver, asked for at each lookup rather than once,
    so that nothing is made before the first connection (and a test that
    replaces C{twisted.names.client.theResolver} is heard).
    """
    from twisted.names import client

    return cast(IResolver, client.getResolver())  # type: ignore[no-untyped-call]


def answerFrom(records: Sequence[dns.RRHeader]) -> Answer:
    """
    The meaning of the answer section C{records}: its SRV records' targets,
    or L{NOT_OFFERED} for a lone record whose target is C{"."}.  Records of
    other types (a CNAME on the way, for one) are passed over.
    """
    targets = [
        cast(dns.Record_SRV, record.payload)
        for record in records
        if record.type == dns.SRV and record.payload is not None
    ]
    if len(targets) == 1 and targets[0].target.name in (b"", b"."):
        return NOT_OFFERED
    return [
        SRVTarget(
            srv.priority,
            srv.weight,
            srv.port,
            srv.target.name.decode("ascii", "replace").rstrip("."),
        )
        for srv in targets
        if srv.target.name not in (b"", b".")
    ]


class SRVLookup:
    """
    The SRV records of one name, looked up when asked and kept for as long
    as their TTLs allow.

    @ivar name: the name looked up.
    """

    def __init__(
        self,
        name: bytes,
        resolver: Optional[IResolver],
        clock: IReactorTime,
    ) -> None:
        """
        @param resolver: any C{twisted.names} resolver, or C{None} for
            Twisted's default one.
        @param clock: what the TTLs are counted on.
        """
        self.name = name
        self._resolver = resolver
        self._clock = clock
        self._kept: Optional[Answer] = None
        self._keptUntil = 0.0
        self._last: Optional[Answer] = None

    def lookup(self) -> Deferred[Answer]:
        """
        The answer for L{name}: the one kept, while its TTL lasts, or a new
        one.

        A name that does not exist (NXDOMAIN) is an empty answer, as a name
        with no SRV record is: some servers say the one for the other.
        Other failures (timeouts, a server failure) give the last answer
        there was, however old, and fail the lookup if there was none.

        @return: a C{Deferred} of its own for each caller, so that one who
            cancels it cancels no one else's.
        """
        if self._kept is not None and self._clock.seconds() < self._keptUntil:
            return succeed(self._kept)
        resolver = self._resolver if self._resolver is not None else defaultResolver()
        # No timeout of ours: the resolver's own retries, and the service's
        # attemptTimeout around the whole attempt, bound the lookup.
        asking: Deferred[Any] = resolver.lookupService(
            self.name.decode("ascii"), cast(Any, None)
        )
        return asking.addCallbacks(self._answered, self._failed)

    def _answered(self, result: tuple[Sequence[dns.RRHeader], Any, Any]) -> Answer:
        answers = result[0]
        answer = self._last = answerFrom(answers)
        ttls = [r.ttl for r in answers if r.type == dns.SRV]
        if ttls and min(ttls) > 0:
            self._kept = answer
            self._keptUntil = self._clock.seconds() + min(ttls)
        else:
            self._kept = None
        return answer

    def _failed(self, reason: Failure) -> Answer:
        self._kept = None
        if reason.check(CancelledError):
            # Called off by the caller, not a failure of DNS: nothing to
            # serve, stale or not.
            return reason  # type: ignore[return-value]
        if reason.check(DNSNameError):
            self._last = []
            return []
        if self._last is None:
            return reason  # type: ignore[return-value]
        return self._last
