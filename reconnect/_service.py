"""
L{ClientService}: a service that keeps one outgoing connection up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional, Union, cast
from weakref import WeakKeyDictionary

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import (
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure

from ._backoff import RetryPolicy, backoffPolicy, ownPolicy
from ._checks import (
    checkCallables,
    checkClock,
    checkCount,
    checkFactory,
    checkSeconds,
)
from ._describe import endpointFrom
from ._errors import GaveUpConnecting
from ._keepalive import TCPKeepAlive
from ._machine import _ClientMachine
from ._sessions import ISessionEndpoint
from ._settings import Settings, sharedSettings
from ._stats import ConnectionStats

_defaultPolicy = backoffPolicy()


def _failsOver(endpoint: IStreamClientEndpoint) -> object:
    """
    Whether C{endpoint} says a lost connection can be replaced at once
    through another of its servers (see L{ISessionEndpoint}): its
    C{failsOver}, kept as it is when it is not a C{bool} (an endpoint whose
    servers change, as L{SRVEndpoint <reconnect.SRVEndpoint>}'s), so that
    its truth is asked at each lost connection.
    """
    if not ISessionEndpoint.providedBy(endpoint):
        return False
    failsOver = getattr(endpoint, "failsOver", False)
    bool(failsOver)  # One that cannot tell raises here, at the boundary.
    return failsOver


_loggers: WeakKeyDictionary[type, Logger] = WeakKeyDictionary()


def _loggerFor(serviceClass: type) -> Logger:
    """
    One logger per service class, named as C{Logger()} on the class would
    name it; each event carries its own service as C{log_source}, so that a
    service need not keep a logger of its own.
    """
    logger = _loggers.get(serviceClass)
    if logger is None:
        namespace = f"{serviceClass.__module__}.{serviceClass.__name__}"
        logger = _loggers[serviceClass] = Logger(namespace)
    return logger


def _globalReactorUnlessGiven(clock: Optional[IReactorTime]) -> IReactorTime:
    """
    The clock to use: C{clock} if given, else the global reactor, imported
    only now so that importing this module installs no reactor.
    """
    if clock is not None:
        return clock
    from twisted.internet import reactor

    return cast(IReactorTime, reactor)


class ClientService(Service):
    """
    Keeps one connection to an endpoint up: connects when started, and
    whenever the connection fails or ends, waits as the retry policy says and
    connects again.

    It behaves as Twisted's C{twisted.application.internet.ClientService}
    does, and adds: every method may be called from inside the service's own
    callbacks; an optional time limit per attempt; retry policies that may
    give up, and failures judged not worth retrying; callbacks on each
    connect and disconnect; optional damping of flapping connections; and
    the current state, readable as L{state}.  What a caller of Twisted's
    can see change is listed in README, under "Where reconnect differs from
    Twisted's ClientService".
    """

    _log = Logger()

    def __init__(
        self,
        endpoint: Union[IStreamClientEndpoint, str],
        factory: IProtocolFactory,
        retryPolicy: Optional[RetryPolicy] = None,
        clock: Optional[IReactorTime] = None,
        prepareConnection: Optional[Callable[[IProtocol], object]] = None,
        *,
        attemptTimeout: Optional[float] = None,
        isFatal: Optional[Callable[[Failure], bool]] = None,
        resetAfter: Optional[float] = None,
        onConnected: Optional[Callable[[IProtocol], object]] = None,
        onDisconnected: Optional[Callable[[IProtocol, Failure], object]] = None,
        onGaveUp: Optional[Callable[[GaveUpConnecting], object]] = None,
        immediateFailover: Optional[bool] = None,
        retireConnection: Optional[Callable[[IProtocol], object]] = None,
        tcpKeepAlive: Union[TCPKeepAlive, bool, None] = None,
    ) -> None:
        """
        @param endpoint: where to connect: an endpoint, or its string
            description (C{"tcp:example.com:7000"}), which connects through
            C{clock} if that is a reactor, else the global reactor.
        @param factory: builds the protocol for each connection.
        @param retryPolicy: given the number of consecutive failures, the
            seconds to wait before the next attempt, or C{None} to give up.
            L{backoffPolicy}C{()} by default.
        @param clock: schedules the retries; the global reactor by default.
        @param prepareConnection: called with each new protocol; may return
            a C{Deferred}.  Waiters see the connection only once it has
            finished; if it fails, the connection is closed and the attempt
            counts as failed.
        @param attemptTimeout: if given, an attempt (connect plus
            C{prepareConnection}) that takes longer is cancelled and counts
            as failed with L{reconnect.AttemptTimedOut}.
        @param isFatal: if given, called with each attempt's failure; a true
            result means no further attempt is made (see L{GaveUpConnecting
            <reconnect.GaveUpConnecting>}).
        @param resetAfter: if given, the count of failures passed to the
            policy goes back to zero only once a connection has stayed up for
            this many seconds, so that a server that accepts and at once
            hangs up meets a growing delay.  By default (as in Twisted) every
            connection resets it.
        @param onConnected: called with the protocol of each new connection.
        @param onDisconnected: called with the protocol and the reason when
            an established connection ends.
        @param onGaveUp: called with the L{GaveUpConnecting
            <reconnect.GaveUpConnecting>} error when the service gives up.
        @param immediateFailover: when a connection that was up for a
            second or more ends, connect again at once, counting no failure,
            rather than after the policy's first delay.  By default on when
            C{endpoint} says it fails over (an L{ISessionEndpoint
            <reconnect.ISessionEndpoint>} whose C{failsOver} is true, as a
            L{FailoverEndpoint <reconnect.FailoverEndpoint>} over several
            endpoints is: the next pass goes on to the others, so a dead
            server costs no backoff while another is up), and off otherwise,
            as in Twisted.
        @param retireConnection: makes L{reconnect} make-before-break:
            the current connection stays up until a new one is ready, which
            then becomes the service's (C{onConnected}, waiters), and the old
            protocol is passed to this callable, which is to close its
            connection once done with it (say, once the replies it owes
            have come).  If the new connection cannot be made, the old one
            simply stays.  L{stopService} closes retired connections still
            open and waits for them.
        @param tcpKeepAlive: a L{TCPKeepAlive <reconnect.TCPKeepAlive>}, or
            C{True} for its defaults: set on each connection's socket when
            the connection is made, so the kernel notices a peer that died
            while the connection was idle.  A transport without a TCP socket
            is left alone, with one debug event (C{keepAliveSkipped}).
        @raise TypeError: if an argument is of the wrong kind (an
            C{endpoint} that is neither an endpoint nor a string, a
            C{factory} with no C{buildProtocol}, a C{clock} that cannot
            schedule calls, a callback that is not callable, ...).
        @raise ValueError: if one is out of range, or C{endpoint} is a bad
            description; each error names the argument.
        """
        checkFactory("factory", factory)
        checkClock("clock", clock)
        endpoint = endpointFrom("endpoint", endpoint, clock)
        checkCallables(
            retryPolicy=retryPolicy,
            prepareConnection=prepareConnection,
            isFatal=isFatal,
            onConnected=onConnected,
            onDisconnected=onDisconnected,
            onGaveUp=onGaveUp,
            retireConnection=retireConnection,
        )
        if tcpKeepAlive is True:
            tcpKeepAlive = TCPKeepAlive()
        elif tcpKeepAlive is False:
            tcpKeepAlive = None
        elif tcpKeepAlive is not None and not isinstance(tcpKeepAlive, TCPKeepAlive):
            raise TypeError(
                f"tcpKeepAlive must be a TCPKeepAlive, a bool or None, "
                f"not {tcpKeepAlive!r}"
            )
        checkSeconds("attemptTimeout", attemptTimeout, zeroAllowed=False)
        checkSeconds("resetAfter", resetAfter, zeroAllowed=True)
        settings = Settings(
            _globalReactorUnlessGiven(clock),
            _loggerFor(type(self)),
            prepareConnection=prepareConnection,
            attemptTimeout=attemptTimeout,
            isFatal=isFatal,
            resetAfter=resetAfter,
            immediateFailover=(
                _failsOver(endpoint) if immediateFailover is None else immediateFailover
            ),
            onConnected=onConnected,
            onDisconnected=onDisconnected,
            onGaveUp=onGaveUp,
            retireConnection=retireConnection,
            tcpKeepAlive=tcpKeepAlive,
        )
        self._machine = _ClientMachine(
            endpoint,
            factory,
            _defaultPolicy if retryPolicy is None else ownPolicy(retryPolicy),
            sharedSettings(settings),
            self,
        )

    @property
    def state(self) -> str:
        """
        The machine's state: one of C{"init"}, C{"connecting"},
        C{"waiting"}, C{"connected"}, C{"handingOver"}, C{"reconnecting"},
        C{"dropping"}, C{"disconnecting"}, C{"restarting"}, C{"stopped"} and
        C{"gaveUp"}.
        """
        return cast(str, self._machine.state())

    @property
    def endpoint(self) -> IStreamClientEndpoint:
        """
        The endpoint the service connects to.
        """
        return self._machine.endpoint

    @property
    def failedAttempts(self) -> int:
        """
        How many attempts (or connections) have failed in a row.
        """
        return self._machine.failedAttempts

    def stats(self) -> ConnectionStats:
        """
        The service's counters and gauges, as they are now.
        """
        return self._machine.stats()

    @property
    def lastFailure(self) -> Optional[Failure]:
        """
        The failure of the last failed attempt, if any.
        """
        return self._machine.lastFailure

    def whenConnected(
        self, failAfterFailures: Optional[int] = None
    ) -> Deferred[IProtocol]:
        """
        The protocol of the current connection, or of the next one.

        @param failAfterFailures: if given, fail after this many further
            failed attempts (1: at the next failure) with that attempt's
            failure.
        @return: a C{Deferred} that fires with the protocol; fails with
            C{CancelledError} if the
            service stops first, or with L{GaveUpConnecting
            <reconnect.GaveUpConnecting>} if it gives up.  Cancelling it
            lets go of it at once.
        @raise TypeError: if C{failAfterFailures} is not an C{int}.
        @raise ValueError: if C{failAfterFailures} is less than 1.
        """
        if failAfterFailures is not None:
            checkCount("failAfterFailures", failAfterFailures, least=1)
        machine = self._machine
        connected: Deferred[IProtocol] = Deferred(machine.forgetWaiter)
        machine.dispatch(machine.whenConnected, connected, failAfterFailures)
        return connected

    def reconnect(self) -> None:
        """
        Connect again now: close the current connection, if there is one,
        and start a new attempt as soon as it has ended, or call off the
        wait before the next attempt.  No failure is counted and no backoff
        applies.  A stopped, stopping or given-up service, or one already
        connecting, is left as it is.

        Useful when the server announces it is going down, when the
        configuration changed, or to move back to a preferred server.

        With C{retireConnection}, the current connection is closed only
        once the new one is ready (make-before-break); the state is
        C{"handingOver"} meanwhile.
        """
        self._machine.requestReconnect()

    def dropConnection(self, failuresInARow: int = 0) -> None:
        """
        Drop the current connection, found dead (say, it answered no
        heartbeat in time): abort it, since a clean close would wait on the
        dead peer, and connect again once it has ended.

        With C{failuresInARow} 0 (the default), the next attempt starts at
        once, with no failure counted and no backoff (never
        make-before-break: the connection is no good).  With C{n >= 1},
        its end counts as a failed attempt, at least the C{n}-th in a row:
        the retry policy's delay for that count (or more, if more failures
        are counted) paces the next attempt, immediate failover or not,
        and the policy may give up; the state is C{"dropping"} until it
        has ended.  For a caller that sees connections die one after
        another: each may be dropped as the next failure, so that the
        server is not hammered.

        A service with no connection (connecting, waiting, stopped, given
        up) is left as it is; a stopping one aborts its connection and
        goes on stopping.

        @raise TypeError: if C{failuresInARow} is not an C{int}.
        @raise ValueError: if it is negative.
        """
        checkCount("failuresInARow", failuresInARow, least=0)
        machine = self._machine
        if failuresInARow:
            machine.dispatch(machine.dropAsFailed, failuresInARow)
        else:
            machine.dispatch(machine.dropAndReconnect)

    def startService(self) -> None:
        """
        Start connecting.  Starting a running service only logs a warning.
        """
        if self.running:
            self._log.warn("Duplicate ClientService.startService {log_source}")
            return
        Service.startService(self)
        self._machine.openSession(self.reconnect)
        self._machine.dispatch(self._machine.start)

    def stopService(self) -> Deferred[None]:
        """
        Stop connecting, and close the connection if there is one (and any
        retired one still open).

        @return: a C{Deferred} that fires once the connections are closed
            and no attempt is under way.
        """
        Service.stopService(self)
        self._machine.closeSession()
        stopped: Deferred[None] = Deferred()
        self._machine.dispatch(self._machine.stop, stopped)
        retired = self._machine.closeRetired()
        if not retired:
            return stopped
        return gatherResults([stopped, *retired]).addCallback(lambda _: None)
