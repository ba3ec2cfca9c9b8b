"""
L{FailoverEndpoint}: one client endpoint over several, so that anything that
connects through an endpoint (L{ClientService}, L{EndpointConnector},
SayStuff) fails over between servers with no change to it.

One C{connect()} is one I{pass} over the endpoints (see L{reconnect._pass}):
staggered attempts, the first to connect wins, and the pass fails only when
all have failed.  So a service's retry policy waits only after a whole pass.

Like any Twisted endpoint, one L{FailoverEndpoint} may serve many clients.
What is known about the servers (failures in a row, cooling) is shared, so
that every client learns that a server is down.  Everything about one client
(the endpoint it is on, the order it prefers them in, the lost one going
last, its failback probe) lives in that client's session (L{_Session}, an
L{IEndpointSession}), which a L{ClientService} or L{EndpointConnector} opens
when it starts and closes when it stops: stopping one client changes nothing
for another.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union, cast

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import (
    IDelayedCall,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ._attempt import cancelQuietly
from ._checks import checkSeconds
from ._describe import clientEndpoint, describeEndpoint
from ._pass import (
    AllEndpointsFailed,
    Candidate,
    EndpointHealth,
    HealthBook,
    HealthRecord,
    runPass,
)
from ._sessions import IEndpointSession, ISessionEndpoint

__all__ = ["AllEndpointsFailed", "EndpointHealth", "FailoverEndpoint"]

_log = Logger()


@implementer(IStreamClientEndpoint, ISessionEndpoint)
class FailoverEndpoint:
    """
    A client endpoint over several endpoints, tried in staggered passes.

    @ivar current: the description of the endpoint the last connection (of
        any client) went through, or C{None}.
    @ivar clock: what times the stagger and the cooling.
    @ivar failsOver: whether there is more than one endpoint (see
        L{ISessionEndpoint}).
    """

    def __init__(
        self,
        endpoints: Sequence[Union[IStreamClientEndpoint, str]],
        *,
        order: str = "priority",
        stagger: float = 0.25,
        clock: Optional[IReactorTime] = None,
        reactor: Any = None,
        failuresBeforeCooling: int = 5,
        coolingPeriod: float = 30.0,
        maxCoolingPeriod: float = 300.0,
        failback: Optional[float] = None,
        random: Callable[[], float] = _random.random,
    ) -> None:
        """
        @param endpoints: the endpoints, most preferred first: endpoint
            objects, or string descriptions (C{"tcp:host=a:port=7"}).
        @param order: C{"priority"}, to try them in the order given, or
            C{"shuffle"}, to shuffle them once for each client, so that a
            fleet of clients spreads over the servers.
        @param stagger: seconds to give one endpoint before the next is
            started beside it.
        @param clock: times the stagger and the cooling; by default
            C{reactor}, or the global reactor.
        @param reactor: what string descriptions connect with; by default
            the global reactor.
        @param failuresBeforeCooling: failures in a row after which an
            endpoint is tried last, by every client.
        @param coolingPeriod: how long, at first; it doubles with each
            further failure, up to C{maxCoolingPeriod}.
        @param failback: if given, while a client (a L{ClientService} or
            L{EndpointConnector} over this endpoint) is connected through
            any but its most preferred endpoint, try the preferred one for
            it every C{failback} seconds; once it accepts a connection
            (closed at once), the client is asked to connect again, and so
            moves back.
        @param random: a 0-argument callable returning a float in C{[0,
            1)}, for the shuffle.
        @raise TypeError: if an argument is of the wrong type.
        @raise ValueError: if one is out of range, or there is no endpoint.
        """
        if isinstance(endpoints, (str, bytes)) or not isinstance(endpoints, Sequence):
            raise TypeError(f"endpoints must be a sequence, not {endpoints!r}")
        if not endpoints:
            raise ValueError("endpoints must not be empty")
        if order not in ("priority", "shuffle"):
            raise ValueError(f"order must be 'priority' or 'shuffle', not {order!r}")
        checkSeconds("stagger", stagger, zeroAllowed=True)
        checkSeconds("failback", failback, zeroAllowed=False)
        if any(isinstance(e, str) for e in endpoints) or clock is None:
            if reactor is None:
                from twisted.internet import reactor
        self.clock = cast(IReactorTime, clock if clock is not None else reactor)
        resolved = [
            self._endpointFrom(reactor, e, f"endpoints[{i}]")
            for i, e in enumerate(endpoints)
        ]
        self._description = (
            "failover(" + ", ".join(describeEndpoint(e) for e in resolved) + ")"
        )
        self._health = HealthBook(
            self.clock,
            self._description,
            failuresBeforeCooling=failuresBeforeCooling,
            coolingPeriod=coolingPeriod,
            maxCoolingPeriod=maxCoolingPeriod,
        )
        # Keyed by position: the same endpoint object given twice is two
        # entries, as it always was.
        self._candidates: list[Candidate] = [
            (e, self._health.record(i, describeEndpoint(e)))
            for i, e in enumerate(resolved)
        ]
        self._shuffled = order == "shuffle"
        self._random = random
        # The endpoint's own order (shuffled once): what health() shows, what
        # a plain connect() uses, and what the first client to open a
        # session gets, so that one owner sees one order from start to end.
        self._ownOrder = list(self._candidates)
        if self._shuffled:
            _shuffle(self._ownOrder, random)
        self._ownOrderTaken = False
        self._stagger = stagger
        self._failback = failback
        self.current: Optional[str] = None
        self.failsOver = len(self._candidates) > 1
        self._plain = _Session(self, self._ownOrder, False, None)

    @staticmethod
    def _endpointFrom(
        reactor: Any, endpoint: Union[IStreamClientEndpoint, str], name: str
    ) -> IStreamClientEndpoint:
        if isinstance(endpoint, str):
            return clientEndpoint(reactor, endpoint, name)
        connect = getattr(endpoint, "connect", None)
        if not (IStreamClientEndpoint.providedBy(endpoint) or callable(connect)):
            raise TypeError(
                f"{endpoint!r} is neither an endpoint nor an endpoint description"
            )
        return endpoint

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """
        Make one pass over the endpoints, in the endpoint's own order, for
        a caller with no session (one that calls C{connect} itself): no
        failback, and no lost-goes-last, since nothing tells it.

        @return: a C{Deferred} that fires with the protocol of the first
            connection made, or fails with L{AllEndpointsFailed}.
            Cancelling it calls off every attempt of the pass.
        """
        return self._plain.connect(protocolFactory)

    def openSession(self, move: Callable[[], object]) -> IEndpointSession:
        """
        A client starts (see L{ISessionEndpoint}): its own session, with
        its own order (shuffled anew, with C{order="shuffle"}, unless no
        open session has the endpoint's own), current endpoint, lost one
        and failback probe.

        @param move: what failback calls to ask the client to move back.
        @raise TypeError: if C{move} is not callable.
        """
        if not callable(move):
            raise TypeError(f"move must be callable, not {move!r}")
        order = self._ownOrder
        ownsOrder = False
        if self._shuffled:
            if self._ownOrderTaken:
                order = list(self._candidates)
                _shuffle(order, self._random)
            else:
                self._ownOrderTaken = ownsOrder = True
        return _Session(self, order, ownsOrder, move)

    def health(self) -> list[EndpointHealth]:
        """
        Each endpoint's record (shared by every client), in the endpoint's
        own order (as given, or shuffled once).
        """
        return self._health.report((r for _, r in self._ownOrder), self.current)

    def _orderReturned(self) -> None:
        """
        The session that had the endpoint's own order was closed.
        """
        self._ownOrderTaken = False

    def __repr__(self) -> str:
        return self._description


def _shuffle(items: list[Any], random: Callable[[], float]) -> None:
    """
    Shuffle C{items} in place, uniformly, drawing from C{random}.
    """
    for i in range(len(items) - 1, 0, -1):
        j = min(i, math.floor(random() * (i + 1)))
        items[i], items[j] = items[j], items[i]


@implementer(IEndpointSession)
class _Session:
    """
    One client of a L{FailoverEndpoint}: the order it prefers the endpoints
    in, the one it is on, the one whose connection it just lost (tried last
    in its next pass: a server that is going down may still accept for a
    moment, and trying it first again would connect to a dying process),
    and its failback probe.

    @ivar current: the record of the endpoint this client's last connection
        went through, or C{None}.
    """

    __slots__ = (
        "_owner",
        "_order",
        "_ownsOrder",
        "_move",
        "current",
        "_lost",
        "_probe",
        "_probing",
        "_closed",
    )

    def __init__(
        self,
        owner: FailoverEndpoint,
        order: list[Candidate],
        ownsOrder: bool,
        move: Optional[Callable[[], object]],
    ) -> None:
        self._owner = owner
        self._order = order
        self._ownsOrder = ownsOrder
        self._move = move
        self.current: Optional[HealthRecord] = None
        self._lost: Optional[HealthRecord] = None
        self._probe: Optional[IDelayedCall] = None
        self._probing: Optional[Deferred[Any]] = None
        self._closed = False

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """
        Make one pass over the endpoints, in this client's order, the one
        it just lost last and cooling ones after the others.
        """
        owner = self._owner
        lost, self._lost = self._lost, None
        return runPass(
            owner._health.passOrder(self._order, lost),
            protocolFactory,
            owner._health,
            owner._stagger,
            self._connected,
        )

    def connectionEnded(self, secondsUp: float) -> None:
        self._lost = self.current

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._move = None
        self._stopProbing()
        if self._ownsOrder:
            self._ownsOrder = False
            self._owner._orderReturned()

    def _connected(self, record: HealthRecord) -> None:
        """
        This client's pass connected through C{record}'s endpoint; with
        C{failback}, through any but its preferred, the probe starts.  A
        client that stopped meanwhile (from the protocol's C{connectionMade},
        say) has aborted the connection: it is no news.
        """
        if self._closed:
            return
        owner = self._owner
        preferred = self._order[0][1]
        if self.current is not record:
            _log.info(
                "Connecting through {via}",
                reconnectEvent="endpointChosen",
                target=owner._description,
                via=record.description,
                preferred=record is preferred,
            )
        self.current = record
        owner.current = record.description
        self._stopProbing()
        if self._move is not None and record is not preferred:
            self._probeLater()

    def _stopProbing(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None and probe.active():
            probe.cancel()
        probing, self._probing = self._probing, None
        if probing is not None:
            cancelQuietly(probing)

    def _tryPreferred(self) -> None:
        """
        Connect to this client's preferred endpoint, only to see whether it
        is back.
        """
        self._probe = None
        endpoint, record = self._order[0]
        try:
            probing = endpoint.connect(_ProbeFactory())
            if not isinstance(probing, Deferred):
                raise TypeError(f"{record.description}: connect returned {probing!r}")
        except Exception:
            probing = Deferred()
            probing.errback()
        self._probing = probing
        probing.addCallbacks(self._preferredAccepted, self._preferredRefused)

    def _preferredAccepted(self, protocol: Protocol) -> None:
        self._probing = None
        owner = self._owner
        record = self._order[0][1]
        owner._health.recovered(record)
        move = self._move
        if move is None:
            return
        _log.info(
            "{via} is back: moving to it",
            reconnectEvent="endpointBack",
            target=owner._description,
            via=record.description,
        )
        # Probing goes on until this client connects through the preferred
        # endpoint: a client that cannot move now (it is connecting) is
        # asked again at the next probe.
        self._probeLater()
        try:
            move()
        except Exception:
            _log.failure("Failback: {move!r} raised", move=move)

    def _probeLater(self) -> None:
        failback = self._owner._failback
        if failback is not None and not self._closed and self._probe is None:
            self._probe = self._owner.clock.callLater(failback, self._tryPreferred)

    def _preferredRefused(self, reason: Failure) -> None:
        self._probing = None
        if not reason.check(CancelledError):
            self._probeLater()

    def __repr__(self) -> str:
        return f"<session of {self._owner!r}>"


class _HangUp(Protocol):
    """
    A probe's connection: closed as soon as it is made.
    """

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.loseConnection()


class _ProbeFactory(Factory):
    protocol = _HangUp
    noisy = False
