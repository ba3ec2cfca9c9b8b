"""
The state machine behind L{reconnect.ClientService}.

Its states, inputs and outputs follow Twisted's C{ClientService} machine;
one state (C{gaveUp}) and three inputs (C{_retryLater}, C{_giveUp}: the retry
policy's verdict; C{_failOver}, with C{immediateFailover}) are added for
retry policies that can say "no more" and for failover endpoints, one
(C{_connectionRejected}) for a TLS peer that refuses the client's
certificate only after the client's side of the handshake is done, and
two states (C{reconnecting}, C{handingOver}) for L{reconnect
<reconnect.ClientService.reconnect>}, and one (C{dropping}) for
L{dropConnection <reconnect.ClientService.dropConnection>}.  Every decision
is a row of the table at the bottom of L{_ClientMachine}, grouped by state;
C{docs/clientservice.svg} is drawn from it (L{reconnect._diagram}).

Each state keeps what only it needs in one object, the machine's C{_data}:
L{_Connecting} (the attempt), L{_Waiting} (the retry timer), L{_Connected}
(the connection; also the data of C{reconnecting} and C{dropping}),
L{_HandingOver} (the connection and the new attempt) and L{_Stopping}
(the stop's waiters and the connection still to end; for C{disconnecting}
and C{restarting}).  The states without data (C{init}, C{stopped},
C{gaveUp}) keep L{_IDLE}.  In each row, the outputs read the data of the
state left, and the output that sets up the state entered replaces it:
between two inputs, C{_data} is always the current state's.

Inputs never run inside one another, with one exception: an output that asks
the retry policy fires the policy's verdict as an input, as its last act.
An input that arrives while another is being handled (because an output
fired a user's callback, and the callback called back into the service)
waits in a queue and runs as soon as the current one is done.  That is what
makes every public call safe from inside the service's own callbacks.
"""

from __future__ import annotations

from collections.abc import Callable
from time import time
from typing import Any, Optional, Union

from automat import MethodicalMachine
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import (
    IDelayedCall,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from . import _debugevents
from ._attempt import AttemptListener, _Attempt, abortTransport
from ._backoff import RetryPolicy, checkedDelay
from ._describe import describeEndpoint
from ._driver import declaredInputs, ignore, installInputs, stateSlots, transition
from ._driver import discard as _discard
from ._errors import GaveUpConnecting
from ._keepalive import applyKeepAlive
from ._proxy import _ReconnectingProtocolProxy
from ._sessions import IEndpointSession, ISessionEndpoint
from ._settings import Settings
from ._stats import ConnectionStats
from ._tls import isCertificateError

ConnectWaiter = tuple["Deferred[IProtocol]", Optional[int]]

# A connection up for less than this, when it ends, counts as a failure even
# with immediateFailover: a server that accepts and hangs up at once must
# meet the retry policy, not a tight loop.
_STEADY_CONNECTION = 1.0

# Twisted's message, kept word for word: log searches written for Twisted's
# ClientService still find it.
_SCHEDULING = "Scheduling retry {attempt} to connect {target} in {delay} seconds."

# What a connection lost with immediateFailover is followed by: no retry is
# scheduled, so Twisted's sentence ("retry 0 ... in 0.0 seconds") would not
# be true.  One sentence, the reason last: whatever its punctuation, it
# ends the sentence.
_FAILING_OVER = (
    "Connecting to {target} again at once (immediate failover: no delay, no "
    "failure counted); the connection was lost after {seconds} seconds: {reason}"
)


# -- what each state keeps ---------------------------------------------------


class _StateData:
    """
    What a state keeps; this one, L{_IDLE}, is kept by the states that keep
    nothing.

    @ivar connected: the service's established connection, in the states
        that have one.
    """

    __slots__ = ()

    connected: Optional[_Connected] = None

    def withoutConnection(self) -> _StateData:
        """
        This state's data once its connection has ended.
        """
        return self


_IDLE = _StateData()


class _Connecting(_StateData):
    """
    C{connecting}: the attempt under way.
    """

    __slots__ = ("attempt",)

    def __init__(self, attempt: _Attempt) -> None:
        self.attempt = attempt


class _Waiting(_StateData):
    """
    C{waiting}: the timer of the next attempt.
    """

    __slots__ = ("retryCall",)

    def __init__(self, retryCall: IDelayedCall) -> None:
        self.retryCall = retryCall


class _Connected(_StateData):
    """
    C{connected}, and C{reconnecting} (which closes it): the connection.

    @ivar proxy: the connection's protocol proxy.
    @ivar since: when it was made, by the service's clock.
    @ivar resetCall: with C{resetAfter}, the timer that forgets past
        failures once the connection has lasted; C{None} once it has fired.
    @ivar failedBefore: the failed attempts in a row before it was made:
        what the count goes back to if the peer turns out to have refused
        its certificate.
    """

    __slots__ = ("proxy", "since", "resetCall", "failedBefore")

    def __init__(
        self, proxy: _ReconnectingProtocolProxy, since: float, failedBefore: int
    ) -> None:
        self.proxy = proxy
        self.since = since
        self.resetCall: Optional[IDelayedCall] = None
        self.failedBefore = failedBefore

    @property
    def connected(self) -> _Connected:  # type: ignore[override]
        return self

    def withoutConnection(self) -> _StateData:
        return _IDLE


class _HandingOver(_StateData):
    """
    C{handingOver}: the connection, and the attempt at its successor.  It
    hears how the attempt went, and tells the machine if it is still the
    machine's hand-over when its turn comes.
    """

    __slots__ = ("_machine", "connected", "attempt")

    def __init__(self, machine: _ClientMachine, connected: _Connected) -> None:
        self._machine = machine
        self.connected = connected
        self.attempt = machine.newAttempt(self)

    def attemptSucceeded(self, proxy: _ReconnectingProtocolProxy) -> None:
        self._machine.dispatch(self._succeeded, proxy)

    def attemptFailed(self, reason: Failure) -> None:
        self._machine.dispatch(self._failed, reason)

    def connectionEnded(
        self, proxy: _ReconnectingProtocolProxy, reason: Failure
    ) -> None:
        self._machine.connectionEnded(proxy, reason)

    def _succeeded(self, proxy: _ReconnectingProtocolProxy) -> None:
        if self._machine._data is self:
            self._machine._handOverMade(proxy)
        else:
            # Called off meanwhile: not wanted.
            abortTransport(proxy)

    def _failed(self, reason: Failure) -> None:
        if self._machine._data is self:
            self._machine._handOverFailed(reason)


class _Stopping(_StateData):
    """
    C{disconnecting} and C{restarting}: who waits for the stop, and the
    connection still to end.  Stopping while connecting calls the attempt
    off at once, so a C{_Stopping} without a connection lasts only until
    that news, already queued, is handled.
    """

    __slots__ = ("waiters", "connected")

    def __init__(
        self, waiters: list[Deferred[None]], connected: Optional[_Connected]
    ) -> None:
        self.waiters = waiters
        self.connected = connected

    def withoutConnection(self) -> _StateData:
        self.connected = None
        return self


# -- the machine ----------------------------------------------------------------


class _ClientMachine:
    """
    Keeps one connection to C{endpoint}: the data and the machine of a
    L{reconnect.ClientService}.

    The service runs inputs only through L{dispatch}, and reads the machine
    through L{state}, L{stats}, L{endpoint}, L{closeRetired} and the
    counters.
    """

    _machine = MethodicalMachine()

    # Thousands of services may run in one process: no per-instance dict.
    # The last slots keep the state: automat's, and the compiled inputs'.
    __slots__ = (
        "_endpoint",
        "_target",
        "_factory",
        "_retryPolicy",
        "_settings",
        "_source",
        "failedAttempts",
        "lastFailure",
        "attempts",
        "failures",
        "connects",
        "disconnects",
        "_secondsConnectedBefore",
        "_stateBefore",
        "_queue",
        "_connectWaiters",
        "_retired",
        "_session",
        "_data",
        *stateSlots(_machine),
    )

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        factory: IProtocolFactory,
        retryPolicy: RetryPolicy,
        settings: Settings,
        source: object,
    ) -> None:
        self._endpoint = endpoint
        self._target = describeEndpoint(endpoint)
        self._factory = factory
        self._retryPolicy = retryPolicy
        self._settings = settings
        self._source = source

        self.failedAttempts = 0
        self.lastFailure: Optional[Failure] = None
        self.attempts = 0
        self.failures = 0
        self.connects = 0
        self.disconnects = 0
        self._secondsConnectedBefore = 0.0
        self._stateBefore: Optional[str] = None
        # Made only when needed: most services, most of the time, have no
        # waiters, nothing queued and nothing retired.
        self._queue: Optional[list[tuple[Callable[..., object], tuple[Any, ...]]]]
        self._queue = None
        self._connectWaiters: Optional[list[ConnectWaiter]] = None
        # Connections handed over from, until they end: each with who waits
        # for its end.
        self._retired: Optional[
            dict[_ReconnectingProtocolProxy, list[Deferred[None]]]
        ] = None
        self._session: Optional[IEndpointSession] = None
        self._data: _StateData = _IDLE

    # -- what the service reads -----------------------------------------------

    @property
    def endpoint(self) -> IStreamClientEndpoint:
        """
        Where the machine connects.
        """
        return self._endpoint

    @property
    def settings(self) -> Settings:
        """
        The service's settings.
        """
        return self._settings

    @_machine.serializer()
    def state(self, state: str) -> str:
        """
        The name of the current state.
        """
        return state

    def stats(self) -> ConnectionStats:
        """
        The counters and gauges, as they are now.
        """
        return ConnectionStats(
            state=self.state(),
            attempts=self.attempts,
            failures=self.failures,
            failedAttempts=self.failedAttempts,
            connects=self.connects,
            disconnects=self.disconnects,
            connected=self._data.connected is not None,
            secondsConnected=self.secondsConnected(),
        )

    def secondsConnected(self) -> float:
        """
        Seconds spent connected, over every connection so far.
        """
        total = self._secondsConnectedBefore
        connected = self._data.connected
        if connected is not None:
            total += self._settings.clock.seconds() - connected.since
        return total

    # -- running inputs one at a time -------------------------------------------

    def dispatch(self, step: Callable[..., object], *args: Any) -> None:
        """
        Run C{step(*args)} now, or, if a step is already running, as soon as
        it and every step queued before this one are done.

        While a step runs, L{_stateBefore} is the state it began in (its
        events say it); at any other time it is C{None}.
        """
        if self._stateBefore is not None:
            if self._queue is None:
                self._queue = []
            self._queue.append((step, args))
            return
        try:
            if self._queue:
                # Left behind by a step that raised: they go first.
                self._queue.append((step, args))
                step, args = self._queue.pop(0)
            self._stateBefore = self.state()
            step(*args)
            while self._queue:
                step, args = self._queue.pop(0)
                self._stateBefore = self.state()
                step(*args)
            self._queue = None
        finally:
            self._stateBefore = None

    def requestReconnect(self) -> None:
        """
        Someone wants a new connection now: with C{retireConnection}, a
        hand-over, otherwise a close and a reconnect.
        """
        if self._settings.retireConnection is not None:
            self.dispatch(self.handOver)
        else:
            self.dispatch(self.closeAndReconnect)

    def openSession(self, move: Callable[[], object]) -> None:
        """
        The service starts: if its endpoint wants a session with each
        client (L{ISessionEndpoint}), open this service's, to connect
        through until L{closeSession}.  C{move} is what the endpoint calls
        to ask the service to connect again now.  The endpoint is user
        code: if C{openSession} raises, that is logged and the service
        connects to the endpoint itself.
        """
        endpoint = self._endpoint
        if self._session is not None or not ISessionEndpoint.providedBy(endpoint):
            return
        try:
            self._session = endpoint.openSession(move)
        except Exception:
            self._event(
                LogLevel.error,
                "Error in connection callback {callback!r}",
                "callbackFailed",
                callback=endpoint.openSession,
                log_failure=Failure(),
            )

    def closeSession(self) -> None:
        """
        The service stops: close its session, if it has one.
        """
        session, self._session = self._session, None
        if session is not None:
            self._notify(session.close)

    def newAttempt(self, listener: AttemptListener) -> _Attempt:
        """
        Start an attempt at a connection for this service, as its settings
        say, reporting to C{listener}: through the service's session, if it
        has one.
        """
        settings = self._settings
        session = self._session
        return _Attempt(
            self._endpoint if session is None else session,
            self._factory,
            settings.clock,
            settings.prepareConnection,
            settings.attemptTimeout,
            listener,
        )

    # -- news of the attempt and of the connection, as its turn comes ---------

    def attemptSucceeded(self, proxy: _ReconnectingProtocolProxy) -> None:
        self.dispatch(self._connectionMade, proxy)

    def attemptFailed(self, reason: Failure) -> None:
        self.dispatch(self._connectionFailed, reason)

    def connectionEnded(
        self, proxy: _ReconnectingProtocolProxy, reason: Failure
    ) -> None:
        self.dispatch(self._connectionEnded, proxy, reason)

    def _connectionEnded(
        self, proxy: _ReconnectingProtocolProxy, reason: Failure
    ) -> None:
        """
        A connection ended: the service's, which is news for the machine
        (news of its own if a certificate was refused: see
        L{_connectionRejected}); a retired one, whose waiters are told; or
        one never handed to the service (aborted as unwanted), which is no
        news.
        """
        connected = self._data.connected
        if connected is not None and proxy is connected.proxy:
            if isCertificateError(reason):
                self._connectionRejected(reason)
            else:
                self._clientDisconnected(reason)
        elif self._retired is not None:
            for waiter in self._retired.pop(proxy, ()):
                waiter.callback(None)

    def closeRetired(self) -> list[Deferred[None]]:
        """
        Close every retired connection that is still open.

        @return: a C{Deferred} for each, firing once it has ended.
        """
        ended: list[Deferred[None]] = []
        for proxy, waiters in list((self._retired or {}).items()):
            waiter: Deferred[None] = Deferred()
            waiters.append(waiter)
            ended.append(waiter)
            transport = proxy._transport
            if transport is not None:
                transport.loseConnection()
        return ended

    def forgetWaiter(self, cancelled: Deferred[IProtocol]) -> None:
        """
        The canceller of every C{whenConnected} Deferred: a waiter that was
        cancelled leaves at once, rather than at the next connect.
        """
        left = [
            entry for entry in self._connectWaiters or () if entry[0] is not cancelled
        ]
        self._connectWaiters = left or None

    # -- events -------------------------------------------------------------------

    def _event(
        self, level: LogLevel, format: str, event: str, **fields: object
    ) -> None:
        """
        Emit one structured event of a transition: every event names itself
        in C{reconnectEvent} and carries the endpoint (as the object, and as
        C{target}, its description) and the states left and entered,
        whatever else it says.

        The event is handed straight to the logger's observer, with the
        keys C{Logger.emit} would give it: our levels need no checking.  A
        debug event is emitted only if debug events are on (see
        L{reconnect._debugevents}).
        """
        if level is LogLevel.debug and not _debugevents.enabled:
            return
        log = self._settings.log
        fields["reconnectEvent"] = event
        fields["endpoint"] = self._endpoint
        fields["target"] = self._target
        state = fields["toState"] = self.state()
        before = self._stateBefore
        fields["fromState"] = state if before is None else before
        fields["log_logger"] = log
        fields["log_level"] = level
        fields["log_namespace"] = log.namespace
        fields["log_source"] = self._source
        fields["log_format"] = format
        fields["log_time"] = time()
        log.observer(fields)

    def _notify(self, callback: Callable[..., object], *args: object) -> bool:
        """
        Call a user's lifecycle callback; what it raises is logged, not
        allowed to derail the machine.

        @return: whether it returned without raising.
        """
        try:
            callback(*args)
        except Exception:
            self._event(
                LogLevel.error,
                "Error in connection callback {callback!r}",
                "callbackFailed",
                callback=callback,
                log_failure=Failure(),
            )
            return False
        return True

    @staticmethod
    def _peerOf(connected: Optional[_Connected]) -> object:
        if connected is None:
            return None
        getPeer = getattr(connected.proxy._transport, "getPeer", None)
        return getPeer() if getPeer is not None else None

    # -- helpers of the outputs -----------------------------------------------------

    def _judge(self, reason: Failure, mayBeFatal: bool) -> Union[float, Failure]:
        """
        Count one more failure and ask the user's code whether, and after
        how long, to try again.

        The policy and C{isFatal} are the user's: whatever they raise, and
        a delay that is not C{None} or a finite number C{>= 0}, is a reason
        to give up, and becomes the failure given up with.

        @param reason: the attempt's failure, or the lost connection's
            reason.
        @param mayBeFatal: whether C{isFatal} judges C{reason} (attempts
            only: a lost connection is never fatal).
        @return: the seconds to wait before trying again, or the failure to
            give up with.
        """
        self.failedAttempts += 1
        try:
            isFatal = self._settings.isFatal
            if mayBeFatal and isFatal is not None and isFatal(reason):
                return reason
            delay = checkedDelay(self._retryPolicy(self.failedAttempts))
        except Exception:
            return Failure()
        if delay is None:
            return reason
        return delay

    def _becomeConnected(self, proxy: _ReconnectingProtocolProxy) -> None:
        """
        Make C{proxy}'s connection the service's: count it, say so, and
        hand it to everyone waiting for one.
        """
        settings = self._settings
        keepAlive = settings.tcpKeepAlive
        if keepAlive is not None and not applyKeepAlive(keepAlive, proxy._transport):
            self._event(
                LogLevel.debug,
                "No TCP socket to set keepalive on for {target}: left as it is",
                "keepAliveSkipped",
            )
        connected = self._data = _Connected(
            proxy, settings.clock.seconds(), self.failedAttempts
        )
        self.connects += 1
        if settings.resetAfter is None:
            self.failedAttempts = 0
        else:
            connected.resetCall = settings.clock.callLater(
                settings.resetAfter, self._connectionIsStable, connected
            )
        self._event(
            LogLevel.info,
            "Connected to {target}",
            "connected",
            peer=self._peerOf(connected),
            attempt=self.attempts,
        )
        waiters, self._connectWaiters = self._connectWaiters or [], None
        for waiter, _ in waiters:
            if not waiter.called:
                waiter.callback(proxy._protocol)
        if settings.onConnected is not None:
            self._notify(settings.onConnected, proxy._protocol)

    def _connectionIsStable(self, connected: _Connected) -> None:
        connected.resetCall = None
        self.failedAttempts = 0

    def _countEnded(self, connected: _Connected) -> None:
        """
        Count a connection of the service's as ended, and stop its timer.
        """
        self.disconnects += 1
        upFor = self._settings.clock.seconds() - connected.since
        self._secondsConnectedBefore += upFor
        if connected.resetCall is not None:
            if connected.resetCall.active():
                connected.resetCall.cancel()
            connected.resetCall = None

    def _failConnectWaiters(self, failure: Failure) -> None:
        waiters, self._connectWaiters = self._connectWaiters or [], None
        for waiter, _ in waiters:
            if not waiter.called:
                waiter.errback(failure)

    def _gaveUpError(self) -> GaveUpConnecting:
        assert self.lastFailure is not None
        return GaveUpConnecting(self.lastFailure, self.failedAttempts)

    def _announceStopped(self, waiters: list[Deferred[None]]) -> None:
        self._event(LogLevel.info, "Stopped connecting to {target}", "stopped")
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(None)

    # -- states -------------------------------------------------------------------

    @_machine.state(initial=True, serialized="init")
    def _init(self) -> None:
        "The service has not been started."

    @_machine.state(serialized="connecting")
    def _connecting(self) -> None:
        "A connection attempt is under way."

    @_machine.state(serialized="waiting")
    def _waiting(self) -> None:
        "Waiting out the delay before the next attempt."

    @_machine.state(serialized="connected")
    def _connected(self) -> None:
        "A prepared connection is up."

    @_machine.state(serialized="handingOver")
    def _handingOver(self) -> None:
        "Connected, and connecting anew to hand over to the new connection."

    @_machine.state(serialized="reconnecting")
    def _reconnecting(self) -> None:
        "Closing the connection, to connect again at once."

    @_machine.state(serialized="dropping")
    def _dropping(self) -> None:
        "Aborting a connection found dead; its end is a failed attempt."

    @_machine.state(serialized="disconnecting")
    def _disconnecting(self) -> None:
        "Stopping: waiting for the connection or attempt to end."

    @_machine.state(serialized="restarting")
    def _restarting(self) -> None:
        "Stopping, then starting again once the connection has ended."

    @_machine.state(serialized="stopped")
    def _stopped(self) -> None:
        "Stopped, with no connection and no attempt."

    @_machine.state(serialized="gaveUp")
    def _gaveUp(self) -> None:
        "The policy said no more attempts; waiting to be stopped."

    # -- inputs: from the service -------------------------------------------------

    @_machine.input()
    def start(self) -> None:
        "The service was started."

    @_machine.input()
    def stop(self, stopped: Deferred[None]) -> None:
        "The service was stopped; C{stopped} fires once it is quiet."

    @_machine.input()
    def whenConnected(
        self, connected: Deferred[IProtocol], failAfterFailures: Optional[int]
    ) -> None:
        "Someone wants the current or next connection's protocol."

    @_machine.input()
    def closeAndReconnect(self) -> None:
        "Someone wants a new connection now: close this one, then connect."

    @_machine.input()
    def handOver(self) -> None:
        "Someone wants a new connection now, keeping this one until it is up."

    @_machine.input()
    def dropAndReconnect(self) -> None:
        "The connection is found dead: abort it, then connect again at once."

    @_machine.input()
    def dropAsFailed(self, failuresInARow: int) -> None:
        """
        The connection is found dead: abort it; its end is a failed
        attempt, at least the C{failuresInARow}-th in a row.
        """

    # -- inputs: from the attempt, the connection and the clock -------------------

    @_machine.input()
    def _connectionMade(self, protocol: _ReconnectingProtocolProxy) -> None:
        "The attempt connected, and the connection is prepared."

    @_machine.input()
    def _connectionFailed(self, reason: Failure) -> None:
        "The attempt failed, or was called off."

    @_machine.input()
    def _clientDisconnected(self, reason: Failure) -> None:
        "The service's connection ended."

    @_machine.input()
    def _connectionRejected(self, reason: Failure) -> None:
        """
        The service's connection ended with a certificate error: the peer
        refused a certificate after the client's side of the handshake was
        done (TLS 1.3 checks the client's certificate only then), so the
        attempt that made it failed after all.
        """

    @_machine.input()
    def _reconnect(self) -> None:
        "The delay before the next attempt is over."

    @_machine.input()
    def _handOverMade(self, protocol: _ReconnectingProtocolProxy) -> None:
        "The hand-over's new connection is up and prepared."

    @_machine.input()
    def _handOverFailed(self, reason: Failure) -> None:
        "The hand-over's new connection could not be made."

    # -- inputs: the retry policy's verdict on a failure --------------------------

    @_machine.input()
    def _retryLater(self, reason: Failure, delay: float) -> None:
        "Try again after C{delay} seconds."

    @_machine.input()
    def _giveUp(self, reason: Failure) -> None:
        "Make no further attempt."

    @_machine.input()
    def _failOver(self, reason: Failure) -> None:
        "Connect again at once, counting no failure (immediate failover)."

    # -- outputs: connecting ------------------------------------------------------

    @_machine.output()
    def _connect(self) -> None:
        "Start an attempt."
        self.attempts += 1
        self._event(
            LogLevel.debug,
            "Connecting to {target} (attempt {attempt})",
            "attempt",
            attempt=self.attempts,
        )
        self._data = _Connecting(self.newAttempt(self))

    @_machine.output()
    def _resetFailedAttempts(self) -> None:
        "Forget failures from before the service was last stopped."
        self.failedAttempts = 0

    @_machine.output()
    def _cancelAttempt(self) -> None:
        "Abandon the attempt under way."
        data = self._data
        assert isinstance(data, _Connecting)
        data.attempt.cancel()

    @_machine.output()
    def _judgeFailure(self, reason: Failure) -> None:
        "Count the attempt's failure and fire the retry policy's verdict."
        self.lastFailure = reason
        self.failures += 1
        verdict = self._judge(reason, mayBeFatal=True)
        if isinstance(verdict, Failure):
            self._giveUp(verdict)
        else:
            self._retryLater(reason, verdict)

    @_machine.output()
    def _deliverConnectionFailure(self, reason: Failure) -> None:
        "Fail the waiters whose C{failAfterFailures} this failure reaches."
        if not self._connectWaiters:
            return
        stillWaiting: list[ConnectWaiter] = []
        due = []
        for waiter, remaining in self._connectWaiters:
            if remaining is None:
                stillWaiting.append((waiter, None))
            elif remaining <= 1:
                due.append(waiter)
            else:
                stillWaiting.append((waiter, remaining - 1))
        self._connectWaiters = stillWaiting or None
        for waiter in due:
            if not waiter.called:
                waiter.errback(reason)

    @_machine.output()
    def _noteAttemptFailed(self, reason: Failure, delay: float) -> None:
        "Say that the attempt failed, and when the next one is."
        self._event(
            LogLevel.info,
            _SCHEDULING + " Attempt failed: {reason}",
            "attemptFailed",
            attempt=self.failedAttempts,
            delay=delay,
            reason=reason.getErrorMessage(),
            failure=reason,
        )

    @_machine.output()
    def _scheduleRetry(self, reason: Failure, delay: float) -> None:
        "Start the timer of the next attempt."
        call = self._settings.clock.callLater(delay, self.dispatch, self._reconnect)
        self._data = _Waiting(call)

    @_machine.output()
    def _retryAtOnce(self, reason: Failure) -> None:
        "Start the next attempt as soon as the reactor can."
        call = self._settings.clock.callLater(0, self.dispatch, self._reconnect)
        self._data = _Waiting(call)

    @_machine.output()
    def _cancelRetry(self) -> None:
        "Call off the timer of the next attempt."
        data = self._data
        assert isinstance(data, _Waiting)
        data.retryCall.cancel()
        self._data = _IDLE

    # -- outputs: the connection --------------------------------------------------

    @_machine.output()
    def _adoptConnection(self, protocol: _ReconnectingProtocolProxy) -> None:
        "Make the attempt's connection the service's."
        self._becomeConnected(protocol)

    @_machine.output()
    def _abortConnection(self, protocol: _ReconnectingProtocolProxy) -> None:
        "Close, at once, a connection made after it stopped being wanted."
        abortTransport(protocol)

    @_machine.output()
    def _giveCurrentProtocol(self, connected: Deferred[IProtocol]) -> None:
        "Hand over the current connection's protocol."
        current = self._data.connected
        assert current is not None
        connected.callback(current.proxy._protocol)

    @_machine.output()
    def _judgeLoss(self, reason: Failure) -> None:
        """
        Tell the endpoint's session, then fire the retry policy's verdict on
        the connection's end; with C{immediateFailover}, a connection that
        was up long enough not to look like a server that accepts and hangs
        up (which would make a tight loop) is failed over from at once,
        with no failure counted.
        """
        current = self._data.connected
        assert current is not None
        settings = self._settings
        if self._session is not None:
            upFor = settings.clock.seconds() - current.since
            self._notify(self._session.connectionEnded, upFor)
        if settings.immediateFailover:
            upFor = settings.clock.seconds() - current.since
            if upFor >= _STEADY_CONNECTION:
                self._failOver(reason)
                return
        verdict = self._judge(reason, mayBeFatal=False)
        if isinstance(verdict, Failure):
            self._giveUp(verdict)
        else:
            self._retryLater(reason, verdict)

    @_machine.output()
    def _noteDisconnected(self, reason: Failure, delay: float) -> None:
        "Say that the connection ended, and when the next attempt is."
        self._event(
            LogLevel.info,
            _SCHEDULING + " Connection lost: {reason}",
            "disconnected",
            attempt=self.failedAttempts,
            delay=delay,
            reason=reason.getErrorMessage(),
            peer=self._peerOf(self._data.connected),
        )

    @_machine.output()
    def _noteFailingOver(self, reason: Failure) -> None:
        "Say that the connection ended, and that the next attempt is at once."
        current = self._data.connected
        assert current is not None
        self._event(
            LogLevel.info,
            _FAILING_OVER,
            "failingOver",
            seconds=self._settings.clock.seconds() - current.since,
            reason=reason.getErrorMessage(),
            peer=self._peerOf(current),
        )

    @_machine.output()
    def _forgetConnection(self, reason: Failure) -> None:
        "Let go of the connection that ended, and tell who asked to know."
        ended = self._data.connected
        assert ended is not None
        self._data = self._data.withoutConnection()
        self._countEnded(ended)
        onDisconnected = self._settings.onDisconnected
        if onDisconnected is not None:
            self._notify(onDisconnected, ended.proxy._protocol, reason)

    @_machine.output()
    def _forgetRejectedConnection(self, reason: Failure) -> None:
        """
        Let go of a connection whose certificate the peer refused, and tell
        who asked to know (it was handed out); its attempt is judged next,
        as a failed one: the failures in a row are what they were before it
        was made, and the session hears of the end, so that the server goes
        last in the next pass.
        """
        ended = self._data.connected
        assert ended is not None
        self._data = self._data.withoutConnection()
        self.failedAttempts = ended.failedBefore
        self._countEnded(ended)
        if self._session is not None:
            upFor = self._settings.clock.seconds() - ended.since
            self._notify(self._session.connectionEnded, upFor)
        onDisconnected = self._settings.onDisconnected
        if onDisconnected is not None:
            self._notify(onDisconnected, ended.proxy._protocol, reason)

    @_machine.output()
    def _disconnect(self) -> None:
        "Close the current connection."
        current = self._data.connected
        assert current is not None and current.proxy._transport is not None
        current.proxy._transport.loseConnection()

    @_machine.output()
    def _noteReconnecting(self) -> None:
        "Say that the connection is closed on purpose, to connect again."
        self._event(
            LogLevel.info,
            "Reconnecting to {target} now, as asked",
            "reconnecting",
            peer=self._peerOf(self._data.connected),
        )

    @_machine.output()
    def _noteDropping(self) -> None:
        "Say that the connection, found dead, is aborted."
        self._event(
            LogLevel.info,
            "Dropping the connection to {target}, found dead",
            "dropping",
            peer=self._peerOf(self._data.connected),
        )

    @_machine.output()
    def _abortCurrent(self) -> None:
        "Abort the connection, if there is one: a dead peer would hold a close up."
        current = self._data.connected
        if current is not None:
            abortTransport(current.proxy)

    @_machine.output()
    def _countFailuresBefore(self, failuresInARow: int) -> None:
        """
        Count at least C{failuresInARow - 1} failures before the dropped
        connection's; a connection found dead is not a stable one.
        """
        current = self._data.connected
        assert current is not None
        if current.resetCall is not None:
            if current.resetCall.active():
                current.resetCall.cancel()
            current.resetCall = None
        self.failedAttempts = max(self.failedAttempts, failuresInARow - 1)

    @_machine.output()
    def _judgeDrop(self, reason: Failure) -> None:
        """
        Tell the endpoint's session, then fire the retry policy's verdict on
        the dropped connection's end, a failed attempt (immediate failover
        or not).
        """
        current = self._data.connected
        assert current is not None
        if self._session is not None:
            upFor = self._settings.clock.seconds() - current.since
            self._notify(self._session.connectionEnded, upFor)
        verdict = self._judge(reason, mayBeFatal=False)
        if isinstance(verdict, Failure):
            self._giveUp(verdict)
        else:
            self._retryLater(reason, verdict)

    # -- outputs: handing over ----------------------------------------------------

    @_machine.output()
    def _startHandOver(self) -> None:
        "Start an attempt whose connection is to replace the current one."
        current = self._data.connected
        assert current is not None
        self.attempts += 1
        self._event(
            LogLevel.info,
            "Connecting to {target} again to hand over (attempt {attempt})",
            "handingOver",
            attempt=self.attempts,
            peer=self._peerOf(current),
        )
        self._data = _HandingOver(self, current)

    @_machine.output()
    def _abandonHandOver(self) -> None:
        "Call off the hand-over's attempt; the current connection stays."
        handingOver = self._data
        assert isinstance(handingOver, _HandingOver)
        current = handingOver.connected
        assert current is not None
        self._data = current
        handingOver.attempt.cancel()

    @_machine.output()
    def _keepCurrentConnection(self, reason: Failure) -> None:
        "Say that the hand-over failed; the current connection stays."
        current = self._data.connected
        assert current is not None
        self._data = current
        self._event(
            LogLevel.warn,
            "Could not hand over to a new connection to {target}; keeping "
            "the current one: {reason}",
            "handOverFailed",
            reason=reason.getErrorMessage(),
            failure=reason,
        )

    @_machine.output()
    def _handOverConnection(self, protocol: _ReconnectingProtocolProxy) -> None:
        """
        The new connection becomes the service's; the old one is retired:
        counted as ended, but left open for C{retireConnection} to close when
        it is done with it (closed at once if there is no such callback, or
        it raises).
        """
        old = self._data.connected
        assert old is not None
        if self._retired is None:
            self._retired = {}
        self._retired[old.proxy] = []
        self._countEnded(old)
        self._becomeConnected(protocol)
        retire = self._settings.retireConnection
        if retire is None or not self._notify(retire, old.proxy._protocol):
            transport = old.proxy._transport
            if transport is not None:
                transport.loseConnection()

    # -- outputs: waiters ---------------------------------------------------------

    @_machine.output()
    def _awaitConnection(
        self, connected: Deferred[IProtocol], failAfterFailures: Optional[int]
    ) -> None:
        "Keep C{connected} until the next connection, or enough failures."
        if self._connectWaiters is None:
            self._connectWaiters = []
        self._connectWaiters.append((connected, failAfterFailures))

    @_machine.output()
    def _refuseStopped(self, connected: Deferred[IProtocol]) -> None:
        "Tell the caller no connection is coming: the service is stopped."
        connected.errback(CancelledError())

    @_machine.output()
    def _refuseGaveUp(self, connected: Deferred[IProtocol]) -> None:
        "Tell the caller no connection is coming: the service gave up."
        connected.errback(self._gaveUpError())

    @_machine.output()
    def _cancelConnectWaiters(self) -> None:
        "Fail everyone waiting for a connection: none is coming."
        if self._connectWaiters:
            self._failConnectWaiters(Failure(CancelledError()))

    @_machine.output()
    def _announceGivingUp(self, reason: Failure) -> None:
        "Say so, and fail everyone waiting for a connection with the give-up error."
        self._data = _IDLE
        self.lastFailure = reason
        self._event(
            LogLevel.error,
            "Gave up connecting to {target} after {attempt} failed attempt(s): "
            "{reason}",
            "gaveUp",
            attempt=self.failedAttempts,
            reason=reason.getErrorMessage(),
            failure=reason,
            log_failure=reason,
        )
        gaveUp = self._gaveUpError()
        self._failConnectWaiters(Failure(gaveUp))
        onGaveUp = self._settings.onGaveUp
        if onGaveUp is not None:
            self._notify(onGaveUp, gaveUp)

    # -- outputs: stopping --------------------------------------------------------

    @_machine.output()
    def _beginStopping(self, stopped: Deferred[None]) -> None:
        "Keep C{stopped} until the connection or the attempt has ended."
        self._data = _Stopping([stopped], self._data.connected)

    @_machine.output()
    def _awaitStop(self, stopped: Deferred[None]) -> None:
        "Keep C{stopped} too until the service is quiet."
        stopping = self._data
        assert isinstance(stopping, _Stopping)
        stopping.waiters.append(stopped)

    @_machine.output()
    def _noteStopping(self) -> None:
        "Say that the service is stopping."
        self._event(LogLevel.debug, "Stopping connecting to {target}", "stopping")

    @_machine.output()
    def _noteRestarting(self) -> None:
        "Say that the service will start again once it has stopped."
        self._event(
            LogLevel.debug,
            "Restarting: will connect to {target} again once stopped",
            "restarting",
        )

    @_machine.output()
    def _finishStopping(self) -> None:
        "The service is quiet: fire every stop waiter."
        stopping = self._data
        assert isinstance(stopping, _Stopping)
        self._data = _IDLE
        self._announceStopped(stopping.waiters)

    @_machine.output()
    def _stopAtOnce(self, stopped: Deferred[None]) -> None:
        "Nothing to wait for: the service is quiet, fire C{stopped}."
        self._announceStopped([stopped])

    # -- the transitions, by state ------------------------------------------------

    # fmt: off

    # init: not started; waiters wait for the first connection.
    transition(_init, start, _connecting, _connect)
    transition(_init, stop, _stopped, _cancelConnectWaiters, _stopAtOnce)
    transition(_init, whenConnected, _init, _awaitConnection)
    ignore(_init, closeAndReconnect, handOver, dropAndReconnect, dropAsFailed)

    # connecting: the attempt's outcome, then the policy's verdict on a failure.
    transition(_connecting, stop, _disconnecting,
               _cancelAttempt, _beginStopping, _noteStopping)
    transition(_connecting, whenConnected, _connecting, _awaitConnection)
    transition(_connecting, _connectionMade, _connected, _adoptConnection)
    transition(_connecting, _connectionFailed, _connecting, _judgeFailure)
    transition(_connecting, _retryLater, _waiting,
               _deliverConnectionFailure, _noteAttemptFailed, _scheduleRetry)
    transition(_connecting, _giveUp, _gaveUp,
               _deliverConnectionFailure, _announceGivingUp)
    ignore(_connecting, start, closeAndReconnect, handOver,
           dropAndReconnect, dropAsFailed)

    # waiting: the retry timer runs; asking for a connection cuts it short.
    transition(_waiting, _reconnect, _connecting, _connect)
    transition(_waiting, closeAndReconnect, _connecting, _cancelRetry, _connect)
    transition(_waiting, handOver, _connecting, _cancelRetry, _connect)
    transition(_waiting, stop, _stopped,
               _cancelRetry, _cancelConnectWaiters, _stopAtOnce)
    transition(_waiting, whenConnected, _waiting, _awaitConnection)
    ignore(_waiting, start, dropAndReconnect, dropAsFailed)

    # connected: the connection ends (the policy's verdict follows), or is replaced.
    transition(_connected, _clientDisconnected, _connected, _judgeLoss)
    # A certificate refused after the handshake: judged as the attempt's
    # failure, by the connecting rows of the verdict.
    transition(_connected, _connectionRejected, _connecting,
               _forgetRejectedConnection, _judgeFailure)
    transition(_connected, _retryLater, _waiting,
               _noteDisconnected, _forgetConnection, _scheduleRetry)
    transition(_connected, _giveUp, _gaveUp, _forgetConnection, _announceGivingUp)
    transition(_connected, _failOver, _waiting,
               _noteFailingOver, _forgetConnection, _retryAtOnce)
    transition(_connected, closeAndReconnect, _reconnecting,
               _noteReconnecting, _disconnect)
    transition(_connected, handOver, _handingOver, _startHandOver)
    transition(_connected, dropAndReconnect, _reconnecting,
               _noteDropping, _abortCurrent)
    transition(_connected, dropAsFailed, _dropping,
               _noteDropping, _countFailuresBefore, _abortCurrent)
    transition(_connected, stop, _disconnecting,
               _beginStopping, _noteStopping, _disconnect)
    transition(_connected, whenConnected, _connected, _giveCurrentProtocol)
    ignore(_connected, start)

    # handingOver: connected, as above, while the successor is being made.
    transition(_handingOver, _handOverMade, _connected, _handOverConnection)
    transition(_handingOver, _handOverFailed, _connected, _keepCurrentConnection)
    transition(_handingOver, _clientDisconnected, _handingOver, _judgeLoss)
    transition(_handingOver, _connectionRejected, _connecting,
               _abandonHandOver, _forgetRejectedConnection, _judgeFailure)
    transition(_handingOver, _retryLater, _waiting,
               _abandonHandOver, _noteDisconnected, _forgetConnection, _scheduleRetry)
    transition(_handingOver, _giveUp, _gaveUp,
               _abandonHandOver, _forgetConnection, _announceGivingUp)
    transition(_handingOver, _failOver, _waiting,
               _abandonHandOver, _noteFailingOver, _forgetConnection, _retryAtOnce)
    transition(_handingOver, stop, _disconnecting,
               _abandonHandOver, _beginStopping, _noteStopping, _disconnect)
    transition(_handingOver, dropAndReconnect, _reconnecting,
               _abandonHandOver, _noteDropping, _abortCurrent)
    transition(_handingOver, dropAsFailed, _dropping,
               _abandonHandOver, _noteDropping, _countFailuresBefore, _abortCurrent)
    transition(_handingOver, whenConnected, _handingOver, _giveCurrentProtocol)
    ignore(_handingOver, start, closeAndReconnect, handOver)

    # reconnecting: the connection is closing; once it has, connect at once.
    transition(_reconnecting, _clientDisconnected, _connecting,
               _forgetConnection, _connect)
    transition(_reconnecting, _connectionRejected, _connecting,
               _forgetConnection, _connect)
    transition(_reconnecting, stop, _disconnecting, _beginStopping, _noteStopping)
    transition(_reconnecting, whenConnected, _reconnecting, _awaitConnection)
    transition(_reconnecting, dropAndReconnect, _reconnecting,
               _noteDropping, _abortCurrent)
    transition(_reconnecting, dropAsFailed, _dropping,
               _noteDropping, _countFailuresBefore, _abortCurrent)
    ignore(_reconnecting, start, closeAndReconnect, handOver)

    # dropping: a connection found dead is aborted; its end is a failed attempt.
    transition(_dropping, _clientDisconnected, _dropping, _judgeDrop)
    transition(_dropping, _connectionRejected, _dropping, _judgeDrop)
    transition(_dropping, _retryLater, _waiting,
               _noteDisconnected, _forgetConnection, _scheduleRetry)
    transition(_dropping, _giveUp, _gaveUp, _forgetConnection, _announceGivingUp)
    transition(_dropping, stop, _disconnecting, _beginStopping, _noteStopping)
    transition(_dropping, whenConnected, _dropping, _awaitConnection)
    ignore(_dropping, start, closeAndReconnect, handOver,
           dropAndReconnect, dropAsFailed)

    # disconnecting: once the connection or the attempt has ended, stopped.
    transition(_disconnecting, _clientDisconnected, _stopped,
               _forgetConnection, _cancelConnectWaiters, _finishStopping)
    transition(_disconnecting, _connectionRejected, _stopped,
               _forgetConnection, _cancelConnectWaiters, _finishStopping)
    transition(_disconnecting, _connectionFailed, _stopped,
               _cancelConnectWaiters, _finishStopping)
    transition(_disconnecting, _connectionMade, _stopped,
               _abortConnection, _cancelConnectWaiters, _finishStopping)
    transition(_disconnecting, start, _restarting, _noteRestarting)
    transition(_disconnecting, stop, _disconnecting, _awaitStop)
    transition(_disconnecting, whenConnected, _disconnecting, _awaitConnection)
    transition(_disconnecting, dropAndReconnect, _disconnecting, _abortCurrent)
    transition(_disconnecting, dropAsFailed, _disconnecting, _abortCurrent)
    ignore(_disconnecting, closeAndReconnect, handOver)

    # restarting: as disconnecting, then connect again.
    transition(_restarting, _clientDisconnected, _connecting,
               _forgetConnection, _finishStopping, _resetFailedAttempts, _connect)
    transition(_restarting, _connectionRejected, _connecting,
               _forgetConnection, _finishStopping, _resetFailedAttempts, _connect)
    transition(_restarting, _connectionFailed, _connecting,
               _finishStopping, _resetFailedAttempts, _connect)
    transition(_restarting, _connectionMade, _connecting,
               _abortConnection, _finishStopping, _resetFailedAttempts, _connect)
    transition(_restarting, stop, _disconnecting, _awaitStop, _noteStopping)
    transition(_restarting, whenConnected, _restarting, _awaitConnection)
    transition(_restarting, dropAndReconnect, _restarting, _abortCurrent)
    transition(_restarting, dropAsFailed, _restarting, _abortCurrent)
    ignore(_restarting, start, closeAndReconnect, handOver)

    # stopped: starting again forgets past failures.
    transition(_stopped, start, _connecting, _resetFailedAttempts, _connect)
    transition(_stopped, stop, _stopped, _stopAtOnce)
    transition(_stopped, whenConnected, _stopped, _refuseStopped)
    ignore(_stopped, closeAndReconnect, handOver, dropAndReconnect, dropAsFailed)

    # gaveUp: only a stop gets the service going again (through stopped).
    transition(_gaveUp, stop, _stopped, _stopAtOnce)
    transition(_gaveUp, whenConnected, _gaveUp, _refuseGaveUp)
    ignore(_gaveUp, start, closeAndReconnect, handOver, dropAndReconnect, dropAsFailed)
    # fmt: on


_INPUTS = declaredInputs(_ClientMachine, _ClientMachine._machine)
_compiled = installInputs(_ClientMachine, _ClientMachine._machine, _discard)
