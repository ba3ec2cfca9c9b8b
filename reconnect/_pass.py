"""
One I{pass} over several endpoints, and what is known about each server
from one pass to the next: the machinery of L{reconnect.FailoverEndpoint},
for any endpoint over several servers (the list may change between passes,
as DNS SRV records do).

A pass tries its candidates in order: the first at once; every C{stagger}
seconds that none has connected, or at once when one fails, the next beside
those still trying.  The first to connect wins and the others are called
off; the pass fails, with every candidate's failure, only when all have
failed.  For a client of ours (a L{reconnect.ClientService}), over TLS,
connected means the handshake is done: a server whose handshake fails (its
certificate not accepted) fails in the pass like one that refused, the ones
called off come back, and the pass goes on to them.

A L{HealthBook} keeps each server's record, shared by every client of the
endpoint that owns it: one that failed C{failuresBeforeCooling} times in a
row is I{cooling} for a while (doubling with each further failure, up to a
cap) and is tried after the others; a pass never skips one, and a success
clears its record.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, NamedTuple, Optional, cast

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from . import _debugevents
from ._attempt import cancelQuietly
from ._checks import checkCount, checkSeconds
from ._proxy import _DisconnectFactory

_log = Logger()

# Cooling doubles with each failure past the threshold; past this many
# doublings it is at its cap anyway, and 2 ** n stays a small number.
_MOST_DOUBLINGS = 64


class AllEndpointsFailed(Exception):
    """
    Every endpoint of a L{FailoverEndpoint <reconnect.FailoverEndpoint>}
    pass failed.

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
    How one endpoint of a L{FailoverEndpoint <reconnect.FailoverEndpoint>}
    has fared.

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


class HealthRecord:
    """
    What is known about one server: shared by every client of its
    L{HealthBook}.
    """

    __slots__ = (
        "key",
        "description",
        "failuresInARow",
        "coolingUntil",
        "connects",
        "failures",
    )

    def __init__(self, key: Hashable, description: str) -> None:
        self.key = key
        self.description = description
        self.failuresInARow = 0
        self.coolingUntil: Optional[float] = None
        self.connects = 0
        self.failures = 0

    def cooling(self, now: float) -> bool:
        return self.coolingUntil is not None and now < self.coolingUntil


Candidate = tuple[IStreamClientEndpoint, HealthRecord]
"""
One entry of a pass: the endpoint to connect through, and the record of
the server it reaches.
"""


class HealthBook:
    """
    The records of the servers of one endpoint, by key (an endpoint, or a
    C{(host, port)} target): shared knowledge, so that every client learns
    that a server is down.

    @ivar clock: what times the cooling.
    @ivar target: the owning endpoint, as its log events name it.
    """

    def __init__(
        self,
        clock: IReactorTime,
        target: str,
        *,
        failuresBeforeCooling: int = 5,
        coolingPeriod: float = 30.0,
        maxCoolingPeriod: float = 300.0,
    ) -> None:
        """
        @param failuresBeforeCooling: failures in a row after which a
            server is tried last.
        @param coolingPeriod: how long, at first; it doubles with each
            further failure, up to C{maxCoolingPeriod}.
        @raise TypeError: if an argument is of the wrong type.
        @raise ValueError: if one is out of range.
        """
        checkCount("failuresBeforeCooling", failuresBeforeCooling, least=1)
        checkSeconds("coolingPeriod", coolingPeriod, zeroAllowed=False)
        checkSeconds("maxCoolingPeriod", maxCoolingPeriod, zeroAllowed=False)
        if maxCoolingPeriod < coolingPeriod:
            raise ValueError(
                f"maxCoolingPeriod ({maxCoolingPeriod!r}) must not be less than "
                f"coolingPeriod ({coolingPeriod!r})"
            )
        self.clock = clock
        self.target = target
        self._failuresBeforeCooling = failuresBeforeCooling
        self._coolingPeriod = coolingPeriod
        self._maxCoolingPeriod = maxCoolingPeriod
        self._records: dict[Hashable, HealthRecord] = {}

    def record(self, key: Hashable, description: str) -> HealthRecord:
        """
        The record of the server C{key}, new if there is none.
        """
        record = self._records.get(key)
        if record is None:
            record = self._records[key] = HealthRecord(key, description)
        return record

    def retain(self, keys: Iterable[Hashable]) -> None:
        """
        Forget the records of every server but C{keys}: for a list of
        servers that changes, so that the book stays as large as the list.
        """
        kept = set(keys)
        for key in [k for k in self._records if k not in kept]:
            del self._records[key]

    def passOrder(
        self, candidates: Sequence[Candidate], last: Optional[HealthRecord] = None
    ) -> list[Candidate]:
        """
        A pass's order: the candidates that are not cooling, in the order
        given, then the one whose server is C{last} (a client's connection
        through it was just lost), then the cooling ones, the soonest to
        recover first.
        """
        now = self.clock.seconds()
        cooling = sorted(
            (c for c in candidates if c[1].cooling(now)),
            key=lambda c: cast(float, c[1].coolingUntil),
        )
        ready = [c for c in candidates if not c[1].cooling(now) and c[1] is not last]
        ready += [c for c in candidates if c[1] is last and not c[1].cooling(now)]
        return ready + cooling

    def report(
        self, records: Iterable[HealthRecord], current: Optional[str]
    ) -> list[EndpointHealth]:
        """
        C{records} as L{EndpointHealth} values; C{current} is the
        description of the server the last connection went through.
        """
        return [
            EndpointHealth(
                r.description,
                r.failuresInARow,
                r.coolingUntil,
                r.connects,
                r.failures,
                r.description == current,
            )
            for r in records
        ]

    def succeeded(self, record: HealthRecord) -> None:
        """
        A connection was made to the server: its record is clear.
        """
        self.recovered(record)
        record.connects += 1

    def recovered(self, record: HealthRecord) -> None:
        """
        The server answered (a probe, say): no longer failing nor cooling.
        """
        record.failuresInARow = 0
        record.coolingUntil = None

    def failed(self, record: HealthRecord, reason: Failure) -> None:
        """
        An attempt to reach the server failed; past C{failuresBeforeCooling}
        in a row, it cools.
        """
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
            target=self.target,
            via=record.description,
            failures=record.failuresInARow,
            reason=reason.getErrorMessage(),
            seconds=period,
        )


def runPass(
    candidates: Sequence[Candidate],
    factory: IProtocolFactory,
    health: HealthBook,
    stagger: float,
    won: Callable[[HealthRecord], object] = lambda record: None,
) -> Deferred[IProtocol]:
    """
    Make one pass over C{candidates}, in the order given (see
    L{HealthBook.passOrder}), recording each outcome in C{health}.

    @param stagger: seconds to give one candidate before the next is
        started beside it (timed on C{health.clock}).
    @param won: called with the winner's record, just before the result
        fires.
    @return: a C{Deferred} that fires with the protocol of the first
        connection made, or fails with L{AllEndpointsFailed} (with no
        candidate, at once).  Cancelling it calls off every attempt of the
        pass.
    """
    return _Pass(list(candidates), factory, health, stagger, won).deferred


class _Pass:
    """
    One pass: staggered attempts, the first to connect wins.

    Each attempt has a L{_Contender} of its own, and only the live one of
    each server is heard: an attempt that was called off, and whatever it
    does later, is no news.  A candidate that builds its protocol claims the
    pass and the others are called off; if its connection then fails before
    it is handed over, those go back into the pass, so that the pass still
    fails only once every candidate has.
    """

    def __init__(
        self,
        order: list[Candidate],
        factory: IProtocolFactory,
        health: HealthBook,
        stagger: float,
        won: Callable[[HealthRecord], object],
    ) -> None:
        self._factory = factory
        self._health = health
        self._stagger = stagger
        self._won = won
        self._waiting = order
        self._trying: dict[HealthRecord, tuple[_Contender, Optional[Deferred[Any]]]]
        self._trying = {}
        self._calledOff: list[Candidate] = []
        self._failures: list[tuple[str, Failure]] = []
        self._winner: Optional[_Contender] = None
        self._timer: Optional[IDelayedCall] = None
        self._over = False
        self.deferred: Deferred[IProtocol] = Deferred(self._cancel)
        self._startNext()

    def _startNext(self) -> None:
        """
        Start the next candidate, and the stagger timer for the one after.
        """
        self._stopTimer()
        if self._over or self._winner is not None:
            return
        if not self._waiting:
            self._failIfDone()
            return
        candidate = self._waiting.pop(0)
        endpoint, record = candidate
        contender = _Contender(self, candidate, self._factory)
        # Live already while connect() runs: an endpoint may connect, and so
        # claim the pass, before it returns.
        self._trying[record] = (contender, None)
        try:
            trying = endpoint.connect(contender)
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
            self._timer = self._health.clock.callLater(self._stagger, self._startNext)

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
                self._calledOff.append(other.candidate)
                if trying is not None:
                    cancelQuietly(trying)
        return True

    def _attemptConnected(self, contender: _Contender, protocol: IProtocol) -> None:
        if self._winner is None and not self.claim(contender):
            return
        if contender is not self._winner or not self._isLive(contender):
            return
        handshake = _handshakeOf(self._factory, protocol)
        if handshake is not None:
            # Over TLS the pass is won once the handshake is done: a server
            # whose certificate is not accepted fails, and the pass goes on.
            handshake.addCallbacks(
                lambda _: self._conclude(contender, protocol),
                lambda reason: self._attemptFailed(contender, reason),
            )
            return
        self._conclude(contender, protocol)

    def _conclude(self, contender: _Contender, protocol: IProtocol) -> None:
        if contender is not self._winner or not self._isLive(contender):
            return
        del self._trying[contender.record]
        self._over = True
        self._health.succeeded(contender.record)
        try:
            self._won(contender.record)
        except Exception:
            _log.failure("{won!r} raised", won=self._won)
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

    def _failed(self, record: HealthRecord, reason: Failure) -> None:
        self._failures.append((record.description, reason))
        if _debugevents.enabled:
            _log.debug(
                "{via} failed: {reason}",
                reconnectEvent="endpointFailed",
                target=self._health.target,
                via=record.description,
                reason=reason.getErrorMessage(),
            )
        self._health.failed(record, reason)
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


def _handshakeOf(
    factory: IProtocolFactory, protocol: IProtocol
) -> Optional[Deferred[None]]:
    """
    When the TLS handshake of C{protocol}, built by C{factory} (through
    the contenders of passes, if passes are nested), is done, if the
    factory is a client of ours that waits for it (see
    L{_DisconnectFactory.whenHandshaken}); C{None} otherwise: a plain
    C{connect()} with a factory of the caller's is won when it connects,
    as with any endpoint.
    """
    while isinstance(factory, _Contender):
        factory = factory._factory
    if isinstance(factory, _DisconnectFactory):
        return factory.whenHandshaken(protocol)
    return None


@implementer(IProtocolFactory)
class _Contender:
    """
    The factory one attempt of a pass is given: it builds a protocol only
    for the connection that wins the pass, so a loser that connects too
    late is refused (and closed) before the user's factory sees it.
    """

    def __init__(
        self, race: _Pass, candidate: Candidate, factory: IProtocolFactory
    ) -> None:
        self._race = race
        self.candidate = candidate
        self.record = candidate[1]
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
