"""
Looking up a service's SRV records, and what the answer means: the servers
to try, none (so the client falls back to the domain itself), or a service
that the domain says it does not offer.

Answers are kept for as long as their TTLs allow, so that a client that
reconnects often does not ask the resolver each time, and one that
reconnects after the records changed sees the change.  Past their TTL they
are still kept, for a while (RFC 8767's "serve stale"): the servers last
listed are better than none while DNS is down.  An earlier answer is
served when a lookup fails (a timeout, a server failure), and also when
the resolver has not answered within a short deadline of our own, so that
a client does not wait out the resolver's own retries (a minute, with
C{twisted.names}' defaults) while it knows a server to try; the lookup
goes on meanwhile, and its answer is kept for the next caller.

Lookups made while one is under way wait for its answer rather than ask
again: a hundred clients whose connections dropped together make one query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union, cast

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.error import DNSLookupError
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IResolver
from twisted.names import dns
from twisted.names.error import DNSNameError
from twisted.python.failure import Failure

from ._attempt import cancelQuietly
from ._srvorder import SRVTarget

#: Seconds after which a lookup that has not been answered is answered
#: from the earlier answer, if there is one: RFC 8767's suggested client
#: response timeout.
SERVE_STALE_AFTER = 1.8

#: Seconds past its TTL after which an earlier answer is no longer served:
#: one day, the low end of RFC 8767's suggested one to three, since a
#: fleet's servers change more often than most records do.
MAX_STALE_AGE = 86400.0

#: Seconds after which a query still under way is no longer waited on, once
#: its callers were answered from the earlier answer: the next lookup asks
#: again, so that a resolver with no timeout of its own cannot leave the
#: records unrefreshed for ever.  Twice C{twisted.names}' own minute.
ABANDON_QUERY_AFTER = 120.0


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
    as their TTLs allow, then for C{maxStaleAge} more as an earlier answer
    (see the module's docstring).

    @ivar name: the name looked up.
    """

    def __init__(
        self,
        name: bytes,
        resolver: Optional[IResolver],
        clock: IReactorTime,
        serveStaleAfter: float = SERVE_STALE_AFTER,
        maxStaleAge: float = MAX_STALE_AGE,
    ) -> None:
        """
        @param resolver: any C{twisted.names} resolver, or C{None} for
            Twisted's default one.
        @param clock: what the TTLs and the deadline are counted on.
        @param serveStaleAfter: seconds after which a lookup not answered
            yet is answered from the earlier answer, if there is one.
        @param maxStaleAge: seconds past its TTL for which an answer is
            still served when a lookup fails or is late.
        """
        self.name = name
        self._resolver = resolver
        self._clock = clock
        self._serveStaleAfter = serveStaleAfter
        self._maxStaleAge = maxStaleAge
        self._kept: Optional[Answer] = None
        self._keptUntil = 0.0
        self._last: Optional[Answer] = None
        self._lastExpired = 0.0
        # The query under way, the callers waiting on it, and the deadline
        # after which they are answered from the earlier answer.
        self._asking: Optional[Deferred[Answer]] = None
        self._waiting: list[Deferred[Answer]] = []
        self._deadline: Optional[IDelayedCall] = None
        self._askedAt = 0.0
        self._late = False

    def lookup(self) -> Deferred[Answer]:
        """
        The answer for L{name}: the one kept, while its TTL lasts, or a new
        one.

        A name that does not exist (NXDOMAIN) is an empty answer, as a name
        with no SRV record is: some servers say the one for the other.
        Other failures (timeouts, a server failure) give the earlier answer,
        if it is not older than C{maxStaleAge} past its TTL, and fail the
        lookup if there is none; so does a lookup not answered within
        C{serveStaleAfter} seconds, which goes on for the next caller.

        @return: a C{Deferred} of its own for each caller, so that one who
            cancels it (with C{CancelledError}, never an earlier answer)
            cancels no one else's; the query is called off when every
            caller waiting on it has cancelled.
        """
        if self._kept is not None and self._clock.seconds() < self._keptUntil:
            return succeed(self._kept)
        stale = self._stale()
        if self._late and stale is not None:
            if self._clock.seconds() - self._askedAt < ABANDON_QUERY_AFTER:
                # The query under way is late already: no need to wait.
                return succeed(stale)
            self._abandon()
        waiter: Deferred[Answer] = Deferred(self._cancelled)
        self._waiting.append(waiter)
        if self._asking is None:
            self._ask(stale is not None)
        return waiter

    def _ask(self, staleKnown: bool) -> None:
        """
        Send the query; with an earlier answer to serve, set the deadline.
        """
        try:
            resolver = (
                self._resolver if self._resolver is not None else defaultResolver()
            )
            # No timeout of ours: the resolver's own retries bound the
            # query; the deadline only stops callers from waiting on it.
            asking: Deferred[Any] = resolver.lookupService(
                self.name.decode("ascii"), cast(Any, None)
            )
            if not isinstance(asking, Deferred):
                raise TypeError(f"{resolver!r}.lookupService returned {asking!r}")
        except Exception:
            asking = fail()
        self._asking = asking
        self._askedAt = self._clock.seconds()
        self._late = False
        if staleKnown:
            self._deadline = self._clock.callLater(
                self._serveStaleAfter, self._deadlinePassed
            )
        asking.addCallbacks(self._answered, self._failed)
        asking.addBoth(self._settle, asking)

    def _stale(self) -> Optional[Answer]:
        """
        The earlier answer, if there is one not too old to serve.
        """
        if self._last is None:
            return None
        if self._clock.seconds() >= self._lastExpired + self._maxStaleAge:
            return None
        return self._last

    def _answered(self, result: tuple[Sequence[dns.RRHeader], Any, Any]) -> Answer:
        answers = result[0]
        answer = self._last = answerFrom(answers)
        ttls = [r.ttl for r in answers if r.type == dns.SRV]
        now = self._clock.seconds()
        if ttls and min(ttls) > 0:
            self._kept = answer
            self._keptUntil = self._lastExpired = now + min(ttls)
        else:
            self._kept = None
            self._lastExpired = now
        return answer

    def _failed(self, reason: Failure) -> Answer:
        self._kept = None
        if reason.check(CancelledError):
            # Called off by the caller, not a failure of DNS: nothing to
            # serve, stale or not.
            return reason  # type: ignore[return-value]
        if reason.check(DNSNameError):
            self._last = []
            self._lastExpired = self._clock.seconds()
            return []
        stale = self._stale()
        if stale is None:
            return reason  # type: ignore[return-value]
        return stale

    def _settle(
        self, outcome: Union[Answer, Failure], asking: Deferred[Answer]
    ) -> None:
        """
        The query is over: every caller still waiting gets its outcome.
        """
        if asking is not self._asking:
            return
        self._asking = None
        self._late = False
        self._stopDeadline()
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            if isinstance(outcome, Failure):
                waiter.errback(outcome)
            else:
                waiter.callback(outcome)

    def _deadlinePassed(self) -> None:
        """
        The query is late: the callers waiting on it are answered from the
        earlier answer, and so is every caller until it is over.
        """
        self._deadline = None
        stale = self._stale()
        if stale is None:
            return
        self._late = True
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.callback(stale)

    def _cancelled(self, waiter: Deferred[Answer]) -> None:
        """
        A caller gave up: it gets C{CancelledError}; if no caller waits on
        the query any more, the query is called off.
        """
        if waiter in self._waiting:
            self._waiting.remove(waiter)
        waiter.errback(Failure(CancelledError("SRV lookup cancelled")))
        if not self._waiting and not self._late:
            self._abandon()

    def _abandon(self) -> None:
        """
        Call off the query under way, if any; no caller waits on it.
        """
        asking, self._asking = self._asking, None
        self._late = False
        self._stopDeadline()
        if asking is not None:
            cancelQuietly(asking)

    def _stopDeadline(self) -> None:
        deadline, self._deadline = self._deadline, None
        if deadline is not None and deadline.active():
            deadline.cancel()
