"""
L{FailoverEndpoint}: one client endpoint over several, so that anything that
connects through an endpoint (L{ClientService}, L{EndpointConnector},
SayStuff) fails over between servers with no change to it.

One C{connect()} is one I{pass} over the endpoints: the first is tried at
once; every C{stagger} seconds that none has connected, or at once when one
fails, the next is started beside those still trying.  The first to connect
wins and the others are called off; the pass fails, with every endpoint's
failure, only when all have failed.  So a service's retry policy waits only
after a whole pass.

Each endpoint's health is kept across passes: one that failed
C{failuresBeforeCooling} times in a row is I{cooling} for a while (doubling
with each further failure, up to a cap) and is tried after the others; a
pass never skips an endpoint, and a success clears its record.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Optional, Union, cast

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import (
    IAddress,
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

from . import _debugevents
from ._attempt import cancelQuietly
from ._checks import checkCount, checkSeconds
from ._describe import clientEndpoint, describeEndpoint

_log = Logger()

# Cooling doubles with each failure past the threshold; past this many
# doublings it is at its cap anyway, and 2 ** n stays a small number.
_MOST_DOUBLINGS = 64


class AllEndpointsFailed(Exception):
    """
    Every endpoint of a L{FailoverEndpoint} pass failed.

    @ivar failures: each endpoint's description and failure, in the order
        they were tried.
    """

    def __init__(self, failures: Sequence[tuple[str, Failure]]) -> None:
        super().__init__(
            "every endpoint failed: "
            + "; ".join(f"{where}: {why.getErrorMessage()}" for where, why in failures)
        )
        self.failures = list(failures)


class EndpointHealth(NamedTuple):
    """
    How one endpoint of a L{FailoverEndpoint} has fared.

    @ivar description: the endpoint, as log lines name it.
    @ivar failuresInARow: failed attempts since its last success.
    @ivar coolingUntil: until when (on the endpoint's clock) it is tried
        after the others, or C{None}.
    @ivar connects: connections made through it.
    @ivar failures: failed attempts through it, in all.
    @ivar current: whether the last connection went through it.
    """

    description: str
    failuresInARow: int
    coolingUntil: Optional[float]
    connects: int
    failures: int
    current: bool


class _Record:
    """
    One endpoint and its health.
    """

    __slots__ = (
        "endpoint",
        "description",
        "failuresInARow",
        "coolingUntil",
        "connects",
        "failures",
    )

    def __init__(self, endpoint: IStreamClientEndpoint) -> None:
        self.endpoint = endpoint
        self.description = describeEndpoint(endpoint)
        self.failuresInARow = 0
        self.coolingUntil: Optional[float] = None
        self.connects = 0
        self.failures = 0

    def cooling(self, now: float) -> bool:
        return self.coolingUntil is not None and now < self.coolingUntil


@implementer(IStreamClientEndpoint)
class FailoverEndpoint:
    """
    A client endpoint over several endpoints, tried in staggered passes.

    @ivar current: the description of the endpoint the last connection
        went through, or C{None}.
    @ivar clock: what times the stagger and the cooling.
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
            C{"shuffle"}, to shuffle them once for this client, so that a
            fleet of clients spreads over the servers.
        @param stagger: seconds to give one endpoint before the next is
            started beside it.
        @param clock: times the stagger and the cooling; by default
            C{reactor}, or the global reactor.
        @param reactor: what string descriptions connect with; by default
            the global reactor.
        @param failuresBeforeCooling: failures in a row after which an
            endpoint is tried last.
        @param coolingPeriod: how long, at first; it doubles with each
            further failure, up to C{maxCoolingPeriod}.
        @param failback: if given, while connected through any but this
            client's most preferred endpoint, try the preferred one every
            C{failback} seconds; once it accepts a connection (closed at
            once), tell whoever listens (a L{ClientService} over this
            endpoint reconnects, and so moves back).
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
        checkCount("failuresBeforeCooling", failuresBeforeCooling, least=1)
        checkSeconds("coolingPeriod", coolingPeriod, zeroAllowed=False)
        checkSeconds("maxCoolingPeriod", maxCoolingPeriod, zeroAllowed=False)
        checkSeconds("failback", failback, zeroAllowed=False)
        if maxCoolingPeriod < coolingPeriod:
            raise ValueError(
                f"maxCoolingPeriod ({maxCoolingPeriod!r}) must not be less than "
                f"coolingPeriod ({coolingPeriod!r})"
            )
        if any(isinstance(e, str) for e in endpoints) or clock is None:
            if reactor is None:
                from twisted.internet import reactor
        self.clock = cast(IReactorTime, clock if clock is not None else reactor)
        self._records = [_Record(self._endpointFrom(reactor, e)) for e in endpoints]
        if order == "shuffle":
            _shuffle(self._records, random)
        self._stagger = stagger
        self._failuresBeforeCooling = failuresBeforeCooling
        self._coolingPeriod = coolingPeriod
        self._maxCoolingPeriod = maxCoolingPeriod
        self.current: Optional[str] = None
        self._failback = failback
        self._probe: Optional[IDelayedCall] = None
        self._probing: Optional[Deferred[Any]] = None
        self._preferredBack: list[Callable[[], object]] = []
        self._lost: Optional[_Record] = None

    @staticmethod
    def _endpointFrom(
        reactor: Any, endpoint: Union[IStreamClientEndpoint, str]
    ) -> IStreamClientEndpoint:
        if isinstance(endpoint, str):
            return clientEndpoint(reactor, endpoint)
        connect = getattr(endpoint, "connect", None)
        if not (IStreamClientEndpoint.providedBy(endpoint) or callable(connect)):
            raise TypeError(
                f"{endpoint!r} is neither an endpoint nor an endpoint description"
            )
        return endpoint

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """
        Make one pass over the endpoints.

        @return: a C{Deferred} that fires with the protocol of the first
            connection made, or fails with L{AllEndpointsFailed}.
            Cancelling it calls off every attempt of the pass.
        """
        return _Pass(self, protocolFactory, self._passOrder()).deferred

    def health(self) -> list[EndpointHealth]:
        """
        Each endpoint's record, in the order this client prefers them.
        """
        return [
            EndpointHealth(
                r.description,
                r.failuresInARow,
                r.coolingUntil,
                r.connects,
                r.failures,
                r.description == self.current,
            )
            for r in self._records
        ]

    def currentLost(self) -> None:
        """
        The connection made through L{current} ended by itself: the next
        pass tries the others before it.  (A server that is going down may
        still accept for a moment; trying it first again would connect to a
        dying process.)  A L{ClientService} over this endpoint calls it.
        """
        self._lost = next(
            (r for r in self._records if r.description == self.current), None
        )

    def _passOrder(self) -> list[_Record]:
        """
        This pass's order: the endpoints that are not cooling, as
        preferred, then the one whose connection was just lost, then the
        cooling ones, the soonest to recover first.
        """
        now = self.clock.seconds()
        lost, self._lost = self._lost, None
        cooling = sorted(
            (r for r in self._records if r.cooling(now)),
            key=lambda r: cast(float, r.coolingUntil),
        )
        ready = [r for r in self._records if not r.cooling(now) and r is not lost]
        if lost is not None and not lost.cooling(now):
            ready.append(lost)
        return ready + cooling

    def _succeeded(self, record: _Record) -> None:
        record.failuresInARow = 0
        record.coolingUntil = None
        record.connects += 1
        if self.current != record.description:
            _log.info(
                "Connecting through {via}",
                reconnectEvent="endpointChosen",
                target=repr(self),
                via=record.description,
                preferred=record is self._records[0],
            )
        self.current = record.description
        self.stopProbing()
        if self._failback is not None and record is not self._records[0]:
            self._probe = self.clock.callLater(self._failback, self._tryPreferred)

    def whenPreferredIsBack(self, listener: Callable[[], object]) -> None:
        """
        With C{failback}, call C{listener} each time the preferred endpoint
        accepts a connection again while another is in use.
        """
        self._preferredBack.append(listener)

    def stopProbing(self) -> None:
        """
        Stop trying the preferred endpoint (until the next connection
        through another); what a service over this endpoint does when it
        stops, so that nothing stays scheduled.
        """
        probe, self._probe = self._probe, None
        if probe is not None and probe.active():
            probe.cancel()
        probing, self._probing = self._probing, None
        if probing is not None:
            cancelQuietly(probing)

    def _tryPreferred(self) -> None:
        """
        Connect to the preferred endpoint, only to see whether it is back.
        """
        self._probe = None
        preferred = self._records[0]
        try:
            probing = preferred.endpoint.connect(_ProbeFactory())
            if not isinstance(probing, Deferred):
                raise TypeError(
                    f"{preferred.description}: connect returned {probing!r}"
                )
        except Exception:
            probing = Deferred()
            probing.errback()
        self._probing = probing
        probing.addCallbacks(self._preferredAccepted, self._preferredRefused)

    def _preferredAccepted(self, protocol: Protocol) -> None:
        self._probing = None
        preferred = self._records[0]
        preferred.failuresInARow = 0
        preferred.coolingUntil = None
        _log.info(
            "{via} is back: moving to it",
            reconnectEvent="endpointBack",
            target=repr(self),
            via=self._records[0].description,
        )
        for listener in list(self._preferredBack):
            try:
                listener()
            except Exception:
                _log.failure("Failback listener {listener!r} raised", listener=listener)

    def _preferredRefused(self, reason: Failure) -> None:
        self._probing = None
        if not reason.check(CancelledError) and self._failback is not None:
            self._probe = self.clock.callLater(self._failback, self._tryPreferred)

    def _failed(self, record: _Record, reason: Failure) -> None:
        record.failuresInARow += 1
        record.failures += 1
        beyond = record.failuresInARow - self._failuresBeforeCooling
        if beyond < 0:
            return
        period = min(
            self._maxCoolingPeriod,
            self._coolingPeriod * 2 ** min(beyond, _MOST_DOUBLINGS),
        )
        record.coolingUntil = self.clock.seconds() + period
        _log.warn(
            "{via} failed {failures} times in a row ({reason}): "
            "tried after the others for {seconds} seconds",
            reconnectEvent="endpointCooling",
            target=repr(self),
            via=record.description,
            failures=record.failuresInARow,
            reason=reason.getErrorMessage(),
            seconds=period,
        )

    def __repr__(self) -> str:
        return "failover(" + ", ".join(r.description for r in self._records) + ")"


def _shuffle(items: list[Any], random: Callable[[], float]) -> None:
    """
    Shuffle C{items} in place, uniformly, drawing from C{random}.
    """
    for i in range(len(items) - 1, 0, -1):
        j = min(i, math.floor(random() * (i + 1)))
        items[i], items[j] = items[j], items[i]


class _Pass:
    """
    One C{connect()} of a L{FailoverEndpoint}: staggered attempts, the
    first to connect wins.

    Each attempt has a L{_Contender} of its own, and only the live one of
    each endpoint is heard: an attempt that was called off, and whatever it
    does later, is no news.  An endpoint that builds its protocol claims the
    pass and the others are called off; if its connection then fails before
    it is handed over, those go back into the pass, so that the pass still
    fails only once every endpoint has.
    """

    def __init__(
        self,
        owner: FailoverEndpoint,
        factory: IProtocolFactory,
        order: list[_Record],
    ) -> None:
        self._owner = owner
        self._factory = factory
        self._waiting = order
        self._trying: dict[_Record, tuple[_Contender, Optional[Deferred[Any]]]] = {}
        self._calledOff: list[_Record] = []
        self._failures: list[tuple[str, Failure]] = []
        self._winner: Optional[_Contender] = None
        self._timer: Optional[IDelayedCall] = None
        self._over = False
        self.deferred: Deferred[IProtocol] = Deferred(self._cancel)
        self._startNext()

    def _startNext(self) -> None:
        """
        Start the next endpoint, and the stagger timer for the one after.
        """
        self._stopTimer()
        if self._over or self._winner is not None:
            return
        if not self._waiting:
            self._failIfDone()
            return
        record = self._waiting.pop(0)
        contender = _Contender(self, record, self._factory)
        # Live already while connect() runs: an endpoint may connect, and so
        # claim the pass, before it returns.
        self._trying[record] = (contender, None)
        try:
            trying = record.endpoint.connect(contender)
            if not isinstance(trying, Deferred):
                raise TypeError(f"{record.description}: connect returned {trying!r}")
        except Exception:
            self._attemptFailed(contender, Failure())
            return
        if not self._isLive(contender):
            cancelQuietly(trying)
            return
        self._trying[record] = (contender, trying)
        trying.addCallbacks(
            lambda protocol: self._attemptConnected(contender, protocol),
            lambda reason: self._attemptFailed(contender, reason),
        )
        if self._isLive(contender) and self._waiting and self._winner is None:
            self._timer = self._owner.clock.callLater(
                self._owner._stagger, self._startNext
            )

    def _isLive(self, contender: _Contender) -> bool:
        """
        Whether C{contender}'s attempt is one the pass still waits on.
        """
        live = self._trying.get(contender.record)
        return not self._over and live is not None and live[0] is contender

    def claim(self, contender: _Contender) -> bool:
        """
        C{contender}'s connection is up: it wins, unless another did first
        or it was called off.  The others are called off.
        """
        if self._winner is not None or not self._isLive(contender):
            return False
        self._winner = contender
        self._stopTimer()
        for record, (other, trying) in list(self._trying.items()):
            if other is not contender:
                del self._trying[record]
                self._calledOff.append(record)
                if trying is not None:
                    cancelQuietly(trying)
        return True

    def _attemptConnected(self, contender: _Contender, protocol: IProtocol) -> None:
        if self._winner is None and not self.claim(contender):
            return
        if contender is not self._winner or not self._isLive(contender):
            return
        del self._trying[contender.record]
        self._over = True
        self._owner._succeeded(contender.record)
        self.deferred.callback(protocol)

    def _attemptFailed(self, contender: _Contender, reason: Failure) -> None:
        if not self._isLive(contender):
            return  # called off: another won, or the pass is over
        del self._trying[contender.record]
        if contender is self._winner:
            # It connected, then failed before it was handed over: those it
            # called off are back in the pass, first.
            self._winner = None
            self._waiting[:0] = self._calledOff
            self._calledOff = []
        self._failed(contender.record, reason)

    def _failed(self, record: _Record, reason: Failure) -> None:
        self._failures.append((record.description, reason))
        if _debugevents.enabled:
            _log.debug(
                "{via} failed: {reason}",
                reconnectEvent="endpointFailed",
                target=repr(self._owner),
                via=record.description,
                reason=reason.getErrorMessage(),
            )
        self._owner._failed(record, reason)
        self._startNext()

    def _failIfDone(self) -> None:
        if self._trying or self._over:
            return
        self._over = True
        self.deferred.errback(Failure(AllEndpointsFailed(self._failures)))

    def _stopTimer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _cancel(self, deferred: Deferred[IProtocol]) -> None:
        """
        The caller gave up on the pass: call off every attempt.
        """
        self._over = True
        self._stopTimer()
        trying = [attempt for _, attempt in self._trying.values()]
        self._trying.clear()
        for attempt in trying:
            if attempt is not None:
                cancelQuietly(attempt)
        if not deferred.called:
            deferred.errback(Failure(CancelledError("failover pass cancelled")))


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


@implementer(IProtocolFactory)
class _Contender:
    """
    The factory one endpoint of a pass is given: it builds a protocol only
    for the connection that wins the pass, so a loser that connects too
    late is refused (and closed) before the user's factory sees it.
    """

    def __init__(self, race: _Pass, record: _Record, factory: IProtocolFactory) -> None:
        self._race = race
        self.record = record
        self._factory = factory

    def buildProtocol(self, addr: IAddress) -> Optional[IProtocol]:
        if not self._race.claim(self):
            return None
        return self._factory.buildProtocol(addr)

    def doStart(self) -> None:
        self._factory.doStart()

    def doStop(self) -> None:
        self._factory.doStop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._factory, name)
