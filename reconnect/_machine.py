"""
The state machine behind L{reconnect.ClientService}.

Its states, inputs and outputs follow Twisted's C{ClientService} machine;
one state (C{gaveUp}) and one input (C{_giveUp}) are added for retry
policies that can say "no more".  Every transition is declared in the block
at the bottom of L{_ClientMachine}, so the whole machine reads on one screen
and automat can draw it.

Inputs never run inside one another: an input that arrives while another is
being handled (because an output fired a user's callback, and the callback
called back into the service) waits in a queue and runs as soon as the
current one is done.  That is what makes every public call safe from inside
the service's own callbacks.
"""

from __future__ import annotations

from collections.abc import Callable
from time import time
from typing import Any, Generic, Optional, TypeVar, Union, overload

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
from ._driver import discard as _discard
from ._driver import installInputs, stateSlots
from ._errors import GaveUpConnecting
from ._keepalive import applyKeepAlive
from ._proxy import _ReconnectingProtocolProxy
from ._sessions import IEndpointSession, ISessionEndpoint
from ._settings import Settings

_T = TypeVar("_T")

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
# be true.
_FAILING_OVER = (
    "Connection to {target} lost after {seconds} seconds: {reason}. "
    "Connecting again at once (immediate failover: no delay, no failure counted)"
)


_INPUTS = (
    "start",
    "stop",
    "reconnect",
    "handOver",
    "whenConnected",
    "_connectionMade",
    "_connectionFailed",
    "_giveUp",
    "_reconnect",
    "_clientDisconnected",
    "_handOverMade",
    "_handOverFailed",
)


class _HandOver:
    """
    The attempt of a hand-over, and what hears how it went: the machine is
    told, and checks that the hand-over is still wanted.
    """

    __slots__ = ("_machine", "attempt")

    def __init__(self, machine: _ClientMachine) -> None:
        self._machine = machine
        self.attempt = machine.newAttempt(self)

    def attemptSucceeded(self, proxy: _ReconnectingProtocolProxy) -> None:
        self._machine.handOverSucceeded(self, proxy)

    def attemptFailed(self, reason: Failure) -> None:
        self._machine.handOverFailed(self, reason)

    def connectionEnded(
        self, proxy: _ReconnectingProtocolProxy, reason: Failure
    ) -> None:
        self._machine.connectionEnded(proxy, reason)


class _Occasional:
    """
    What a machine needs only now and then: the waiters of a stop, a
    hand-over under way, retired connections, the timer of C{resetAfter}.
    Most services, most of the time, need none of them; this object is
    made the first time one is set, so those services keep one slot for
    the four.
    """

    __slots__ = ("stopWaiters", "handOver", "retired", "resetCall")

    def __init__(self) -> None:
        self.stopWaiters: object = None
        self.handOver: object = None
        self.retired: object = None
        self.resetCall: object = None


class _KeptOccasionally(Generic[_T]):
    """
    A machine attribute kept in its L{_Occasional}: C{None} until set.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name.lstrip("_")

    @overload
    def __get__(self, machine: None, owner: type) -> _KeptOccasionally[_T]: ...

    @overload
    def __get__(self, machine: _ClientMachine, owner: type) -> Optional[_T]: ...

    def __get__(
        self, machine: Optional[_ClientMachine], owner: type
    ) -> Union[_KeptOccasionally[_T], Optional[_T]]:
        if machine is None:
            return self
        occasional = machine._occasional
        if occasional is None:
            return None
        value: Optional[_T] = getattr(occasional, self._name)
        return value

    def __set__(self, machine: _ClientMachine, value: Optional[_T]) -> None:
        occasional = machine._occasional
        if occasional is None:
            if value is None:
                return
            occasional = machine._occasional = _Occasional()
        setattr(occasional, self._name, value)


class _ClientMachine:
    """
    Keeps one connection to C{endpoint}: the data and the machine of a
    L{reconnect.ClientService}.

    Public entry points (L{dispatch} and L{state}) are all the service uses;
    the inputs themselves are only ever run through L{dispatch}.
    """

    _machine = MethodicalMachine()

    # Thousands of services may run in one process: no per-instance dict.
    # The last slot is where automat keeps each instance's current state.
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
        "connectedSince",
        "_secondsConnectedBefore",
        "_stateBefore",
        "_attempt",
        "_connection",
        "_retryCall",
        "_connectWaiters",
        "_occasional",
        "_queue",
        "_session",
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
        self.connectedSince: Optional[float] = None
        self._secondsConnectedBefore = 0.0
        self._stateBefore: Optional[str] = None
        self._attempt: Optional[_Attempt] = None
        self._connection: Optional[_ReconnectingProtocolProxy] = None
        self._retryCall: Optional[IDelayedCall] = None
        # Made only when needed: most services, most of the time, have no
        # waiters, nothing queued and nothing retired.
        self._connectWaiters: Optional[list[ConnectWaiter]] = None
        self._occasional: Optional[_Occasional] = None
        self._queue: Optional[list[tuple[Callable[..., object], tuple[Any, ...]]]]
        self._queue = None
        self._session: Optional[IEndpointSession] = None

    _stopWaiters: _KeptOccasionally[list[Deferred[None]]] = _KeptOccasionally()
    _handOver: _KeptOccasionally[_HandOver] = _KeptOccasionally()
    _retired: _KeptOccasionally[
        dict[_ReconnectingProtocolProxy, list[Deferred[None]]]
    ] = _KeptOccasionally()
    _resetCall: _KeptOccasionally[IDelayedCall] = _KeptOccasionally()

    # -- running inputs one at a time ---------------------------------------

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

    @_machine.serializer()
    def state(self, state: str) -> str:
        """
        The name of the current state.
        """
        return state

    @property
    def endpoint(self) -> IStreamClientEndpoint:
        "The endpoint the service connects to."
        return self._endpoint

    @property
    def settings(self) -> Settings:
        "The service's settings."
        return self._settings

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

    def secondsConnected(self) -> float:
        """
        Seconds spent connected, over every connection so far.
        """
        total = self._secondsConnectedBefore
        if self.connectedSince is not None:
            total += self._settings.clock.seconds() - self.connectedSince
        return total

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

    # -- events from the connection, judged when their turn comes -----------

    def attemptSucceeded(self, proxy: _ReconnectingProtocolProxy) -> None:
        self.dispatch(self._attemptSucceeded, proxy)

    def attemptFailed(self, reason: Failure) -> None:
        self.dispatch(self._attemptFailed, reason)

    def connectionEnded(
        self, proxy: _ReconnectingProtocolProxy, reason: Failure
    ) -> None:
        self.dispatch(self._connectionEnded, proxy, reason)

    def _attemptSucceeded(self, proxy: _ReconnectingProtocolProxy) -> None:
        """
        The current attempt connected.  If the service was stopped while the
        news was on its way, the connection is not wanted: it is aborted, and
        the attempt counts as cancelled.
        """
        self._attempt = None
        if self.state() == "connecting":
            self._connectionMade(proxy)
        else:
            abortTransport(proxy)
            self._connectionFailed(Failure(CancelledError()), 0.0)

    def _attemptFailed(self, reason: Failure) -> None:
        """
        The current attempt failed.  While connecting, it counts as a
        failure, and the policy (and C{isFatal}) decide whether to try again;
        an attempt that a stop called off is no failure.
        """
        self._attempt = None
        if self.state() != "connecting":
            self._connectionFailed(reason, 0.0)
            return
        self.lastFailure = reason
        self.failures += 1
        judged = self._judge(reason, mayBeFatal=True)
        if isinstance(judged, Failure):
            self._giveUp(judged)
        else:
            self._connectionFailed(reason, judged)

    def _connectionEnded(
        self, proxy: _ReconnectingProtocolProxy, reason: Failure
    ) -> None:
        """
        An established connection ended.  Connections that are no longer
        the current one are no news.
        """
        if proxy is not self._connection:
            if self._retired is not None:
                for waiter in self._retired.pop(proxy, ()):
                    waiter.callback(None)
            return
        judged: Union[float, Failure] = 0.0
        if self.state() in ("connected", "handingOver"):
            if self._session is not None and self.connectedSince is not None:
                upFor = self._settings.clock.seconds() - self.connectedSince
                self._notify(self._session.connectionEnded, upFor)
            if not self._failsOverAtOnce():
                judged = self._judge(reason, mayBeFatal=False)
        if isinstance(judged, Failure):
            self._giveUp(judged)
        else:
            self._clientDisconnected(reason, judged)

    def handOverSucceeded(
        self, handOver: _HandOver, proxy: _ReconnectingProtocolProxy
    ) -> None:
        self.dispatch(self._handOverSucceeded, handOver, proxy)

    def handOverFailed(self, handOver: _HandOver, reason: Failure) -> None:
        self.dispatch(self._handOverEnded, handOver, reason)

    def _handOverSucceeded(
        self, handOver: _HandOver, proxy: _ReconnectingProtocolProxy
    ) -> None:
        """
        The new connection of a hand-over is ready.  If the hand-over was
        called off meanwhile, the connection is not wanted.
        """
        if handOver is self._handOver and self.state() == "handingOver":
            self._handOver = None
            self._handOverMade(proxy)
        else:
            abortTransport(proxy)

    def _handOverEnded(self, handOver: _HandOver, reason: Failure) -> None:
        """
        The new connection of a hand-over failed; if the hand-over was
        called off, that is no news.
        """
        if handOver is self._handOver and self.state() == "handingOver":
            self._handOver = None
            self._handOverFailed(reason)

    def closeRetired(self) -> list[Deferred[None]]:
        """
        Close every retired connection that is still open.

        @return: a C{Deferred} for each, firing once it has ended.
        """
        ended: list[Deferred[None]] = []
        # The holder is looked at first on the paths every stop and every
        # disconnect take: the descriptor costs a Python call.
        retired = self._retired if self._occasional is not None else None
        if not retired:
            return ended
        for proxy, waiters in list(retired.items()):
            waiter: Deferred[None] = Deferred()
            waiters.append(waiter)
            ended.append(waiter)
            transport = proxy._transport
            if transport is not None:
                transport.loseConnection()
        return ended

    def _failsOverAtOnce(self) -> bool:
        """
        Whether the connection that just ended is followed at once by a new
        attempt, with no failure counted: with C{immediateFailover}, for a
        connection that was up long enough not to look like a server that
        accepts and hangs up (which would make a tight loop).
        """
        if not self._settings.immediateFailover or self.connectedSince is None:
            return False
        upFor = self._settings.clock.seconds() - self.connectedSince
        return upFor >= _STEADY_CONNECTION

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

    # -- states -------------------------------------------------------------

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

    @_machine.state(serialized="disconnecting")
    def _disconnecting(self) -> None:
        "Stopping: waiting for the connection or attempt to end."

    @_machine.state(serialized="restarting")
    def _restarting(self) -> None:
        "Stopping, then starting again once the connection has ended."

    @_machine.state(serialized="stopped")
    def _stopped(self) -> None:
        "Stopped, with no connection and no attempt."

    @_machine.state(serialized="reconnecting")
    def _reconnecting(self) -> None:
        "Closing the connection, to connect again at once."

    @_machine.state(serialized="handingOver")
    def _handingOver(self) -> None:
        "Connected, and connecting anew to hand over to the new connection."

    @_machine.state(serialized="gaveUp")
    def _gaveUp(self) -> None:
        "The policy said no more attempts; waiting to be stopped."

    # -- inputs -------------------------------------------------------------

    @_machine.input()
    def start(self) -> None:
        "The service was started."

    @_machine.input()
    def stop(self, stopped: Deferred[None]) -> None:
        "The service was stopped; C{stopped} fires once it is quiet."

    @_machine.input()
    def reconnect(self) -> None:
        "Someone wants a new connection now, without waiting."

    @_machine.input()
    def handOver(self) -> None:
        "Someone wants a new connection now, keeping this one until it is up."

    @_machine.input()
    def whenConnected(
        self, connected: Deferred[IProtocol], failAfterFailures: Optional[int]
    ) -> None:
        "Someone wants the current or next connection's protocol."

    @_machine.input()
    def _connectionMade(self, protocol: _ReconnectingProtocolProxy) -> None:
        "The attempt connected, and the connection is prepared."

    @_machine.input()
    def _connectionFailed(self, reason: Failure, delay: float) -> None:
        "The attempt failed; if another is to follow, after C{delay} seconds."

    @_machine.input()
    def _giveUp(self, reason: Failure) -> None:
        "A failure after which no further attempt is to be made."

    @_machine.input()
    def _reconnect(self) -> None:
        "The delay before the next attempt is over."

    @_machine.input()
    def _clientDisconnected(self, reason: Failure, delay: float) -> None:
        """
        The established connection ended; if another attempt is to follow,
        after C{delay} seconds.
        """

    @_machine.input()
    def _handOverMade(self, protocol: _ReconnectingProtocolProxy) -> None:
        "The hand-over's new connection is up and prepared."

    @_machine.input()
    def _handOverFailed(self, reason: Failure) -> None:
        "The hand-over's new connection could not be made."

    # -- outputs ------------------------------------------------------------

    @_machine.output()
    def _resetFailedAttempts(self) -> None:
        "Forget failures from before the service was last stopped."
        self.failedAttempts = 0

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
        self._attempt = self.newAttempt(self)

    @_machine.output()
    def _startHandOver(self) -> None:
        "Start an attempt whose connection is to replace the current one."
        self.attempts += 1
        self._event(
            LogLevel.info,
            "Connecting to {target} again to hand over (attempt {attempt})",
            "handingOver",
            attempt=self.attempts,
            peer=self._peerOf(self._connection),
        )
        self._handOver = _HandOver(self)

    @_machine.output()
    def _abandonHandOver(self) -> None:
        "Call off the hand-over's attempt."
        handOver, self._handOver = self._handOver, None
        if handOver is not None:
            handOver.attempt.cancel()

    @_machine.output()
    def _noteHandOverFailed(self, reason: Failure) -> None:
        "Say that the hand-over failed; the current connection stays."
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
        retired = self._connection
        assert retired is not None
        if self._retired is None:
            self._retired = {}
        self._retired[retired] = []
        self._endConnection()
        self._keepConnection(protocol)
        retire = self._settings.retireConnection
        if retire is None or not self._notify(retire, retired._protocol):
            transport = retired._transport
            if transport is not None:
                transport.loseConnection()

    @_machine.output()
    def _cancelAttempt(self) -> None:
        "Abandon the attempt under way."
        if self._attempt is not None:
            self._attempt.cancel()

    @_machine.output()
    def _rememberConnection(self, protocol: _ReconnectingProtocolProxy) -> None:
        "Keep the new connection, and hand it to everyone waiting for one."
        self._keepConnection(protocol)

    def _keepConnection(self, protocol: _ReconnectingProtocolProxy) -> None:
        settings = self._settings
        keepAlive = settings.tcpKeepAlive
        if keepAlive is not None and not applyKeepAlive(keepAlive, protocol._transport):
            self._event(
                LogLevel.debug,
                "No TCP socket to set keepalive on for {target}: left as it is",
                "keepAliveSkipped",
            )
        self._connection = protocol
        self.connects += 1
        self.connectedSince = settings.clock.seconds()
        if settings.resetAfter is None:
            self.failedAttempts = 0
        else:
            self._resetCall = settings.clock.callLater(
                settings.resetAfter, self._connectionIsStable
            )
        self._event(
            LogLevel.info,
            "Connected to {target}",
            "connected",
            peer=self._peerOf(protocol),
            attempt=self.attempts,
        )
        self._fireConnectWaiters(protocol._protocol)
        if settings.onConnected is not None:
            self._notify(settings.onConnected, protocol._protocol)

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
    def _retryAfterFailure(self, reason: Failure, delay: float) -> None:
        "Say that the attempt failed, and schedule the next one."
        self._retry("attemptFailed", "Attempt failed", reason, delay, failure=reason)

    @_machine.output()
    def _retryAfterDisconnect(self, reason: Failure, delay: float) -> None:
        """
        Say that the connection ended, and schedule the next attempt; the
        connection is still the current one, to name its peer.
        """
        peer = self._peerOf(self._connection)
        if self._failsOverAtOnce():
            clock = self._settings.clock
            assert self.connectedSince is not None
            self._event(
                LogLevel.info,
                _FAILING_OVER,
                "failingOver",
                seconds=clock.seconds() - self.connectedSince,
                reason=reason.getErrorMessage(),
                peer=peer,
            )
            self._retryCall = clock.callLater(0, self.dispatch, self._reconnect)
            return
        self._retry("disconnected", "Connection lost", reason, delay, peer=peer)

    @_machine.output()
    def _cancelRetry(self) -> None:
        "Call off the scheduled attempt."
        if self._retryCall is not None:
            self._retryCall.cancel()
            self._retryCall = None

    @_machine.output()
    def _noteStopping(self) -> None:
        "Say that the service is stopping."
        self._event(LogLevel.debug, "Stopping connecting to {target}", "stopping")

    @_machine.output()
    def _noteReconnecting(self) -> None:
        "Say that the connection is closed on purpose, to connect again."
        self._event(
            LogLevel.info,
            "Reconnecting to {target} now, as asked",
            "reconnecting",
            peer=self._peerOf(self._connection),
        )

    @_machine.output()
    def _noteRestarting(self) -> None:
        "Say that the service will start again once it has stopped."
        self._event(
            LogLevel.debug,
            "Restarting: will connect to {target} again once stopped",
            "restarting",
        )

    @_machine.output()
    def _disconnect(self) -> None:
        "Close the current connection."
        assert self._connection is not None
        transport = self._connection._transport
        assert transport is not None
        transport.loseConnection()

    @_machine.output()
    def _forgetConnection(self, reason: Failure) -> None:
        "Let go of the connection that ended, and tell who asked to know."
        protocol = self._connection
        assert protocol is not None
        self._endConnection()
        onDisconnected = self._settings.onDisconnected
        if onDisconnected is not None:
            self._notify(onDisconnected, protocol._protocol, reason)

    def _endConnection(self) -> None:
        self._connection = None
        assert self.connectedSince is not None
        self.disconnects += 1
        upFor = self._settings.clock.seconds() - self.connectedSince
        self._secondsConnectedBefore += upFor
        self.connectedSince = None
        # The holder first, as in closeRetired.
        if self._occasional is not None and self._resetCall is not None:
            if self._resetCall.active():
                self._resetCall.cancel()
            self._resetCall = None

    @_machine.output()
    def _awaitConnection(
        self, connected: Deferred[IProtocol], failAfterFailures: Optional[int]
    ) -> None:
        "Keep C{connected} until the next connection, or enough failures."
        if self._connectWaiters is None:
            self._connectWaiters = []
        self._connectWaiters.append((connected, failAfterFailures))

    @_machine.output()
    def _currentConnection(self, connected: Deferred[IProtocol]) -> None:
        "Hand over the current connection's protocol."
        assert self._connection is not None
        connected.callback(self._connection._protocol)

    @_machine.output()
    def _noConnection(self, connected: Deferred[IProtocol]) -> None:
        "Tell the caller no connection is coming: the service is stopped."
        connected.errback(CancelledError())

    @_machine.output()
    def _noConnectionAfterGivingUp(self, connected: Deferred[IProtocol]) -> None:
        "Tell the caller no connection is coming: the service gave up."
        connected.errback(self._gaveUpError())

    @_machine.output()
    def _cancelConnectWaiters(self) -> None:
        "Fail everyone waiting for a connection: none is coming."
        if self._connectWaiters:
            self._failConnectWaiters(Failure(CancelledError()))

    @_machine.output()
    def _abandonConnectWaiters(self, reason: Failure) -> None:
        "Fail everyone waiting for a connection with the give-up error."
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

    @_machine.output()
    def _awaitStop(self, stopped: Deferred[None]) -> None:
        "Keep C{stopped} until the service is quiet."
        waiters = self._stopWaiters
        if waiters is None:
            self._stopWaiters = waiters = []
        waiters.append(stopped)

    @_machine.output()
    def _finishStopping(self) -> None:
        "The service is quiet: fire every stop waiter."
        waiters = self._stopWaiters or ()
        if waiters:
            self._stopWaiters = None
        self._event(LogLevel.info, "Stopped connecting to {target}", "stopped")
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(None)

    # -- helpers of the outputs ---------------------------------------------

    def _retry(
        self, event: str, why: str, reason: Failure, delay: float, **fields: object
    ) -> None:
        """
        Emit C{event} with Twisted's retry sentence followed by C{why} and
        the reason, then schedule the next attempt.
        """
        self._event(
            LogLevel.info,
            _SCHEDULING + " " + why + ": {reason}",
            event,
            attempt=self.failedAttempts,
            delay=delay,
            reason=reason.getErrorMessage(),
            **fields,
        )
        self._retryCall = self._settings.clock.callLater(delay, self._retryDue)

    def _retryDue(self) -> None:
        # A fired call is let go of at once: it refers back to the machine.
        self._retryCall = None
        self.dispatch(self._reconnect)

    def _connectionIsStable(self) -> None:
        self._resetCall = None
        self.failedAttempts = 0

    def _fireConnectWaiters(self, result: IProtocol) -> None:
        waiters, self._connectWaiters = self._connectWaiters or [], None
        for waiter, _ in waiters:
            if not waiter.called:
                waiter.callback(result)

    def _failConnectWaiters(self, failure: Failure) -> None:
        waiters, self._connectWaiters = self._connectWaiters or [], None
        for waiter, _ in waiters:
            if not waiter.called:
                waiter.errback(failure)

    def forgetWaiter(self, cancelled: Deferred[IProtocol]) -> None:
        """
        The canceller of every C{whenConnected} Deferred: a waiter that was
        cancelled leaves at once, rather than at the next connect.
        """
        left = [
            entry for entry in self._connectWaiters or () if entry[0] is not cancelled
        ]
        self._connectWaiters = left or None

    def _gaveUpError(self) -> GaveUpConnecting:
        assert self.lastFailure is not None
        return GaveUpConnecting(self.lastFailure, self.failedAttempts)

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
    def _peerOf(proxy: Optional[_ReconnectingProtocolProxy]) -> object:
        if proxy is None:
            return None
        transport = proxy._transport
        getPeer = getattr(transport, "getPeer", None)
        return getPeer() if getPeer is not None else None

    # -- the transitions ----------------------------------------------------

    _init.upon(start, enter=_connecting, outputs=[_connect], collector=_discard)
    _init.upon(
        stop,
        enter=_stopped,
        outputs=[_cancelConnectWaiters, _awaitStop, _finishStopping],
        collector=_discard,
    )
    _init.upon(
        whenConnected, enter=_init, outputs=[_awaitConnection], collector=_discard
    )

    _connecting.upon(start, enter=_connecting, outputs=[], collector=_discard)
    _connecting.upon(
        stop,
        enter=_disconnecting,
        outputs=[_awaitStop, _noteStopping, _cancelAttempt],
        collector=_discard,
    )
    _connecting.upon(
        whenConnected, enter=_connecting, outputs=[_awaitConnection], collector=_discard
    )
    _connecting.upon(
        _connectionMade,
        enter=_connected,
        outputs=[_rememberConnection],
        collector=_discard,
    )
    _connecting.upon(
        _connectionFailed,
        enter=_waiting,
        outputs=[_deliverConnectionFailure, _retryAfterFailure],
        collector=_discard,
    )
    _connecting.upon(
        _giveUp,
        enter=_gaveUp,
        outputs=[_deliverConnectionFailure, _abandonConnectWaiters],
        collector=_discard,
    )

    _waiting.upon(start, enter=_waiting, outputs=[], collector=_discard)
    _waiting.upon(
        stop,
        enter=_stopped,
        outputs=[_cancelRetry, _cancelConnectWaiters, _awaitStop, _finishStopping],
        collector=_discard,
    )
    _waiting.upon(
        whenConnected, enter=_waiting, outputs=[_awaitConnection], collector=_discard
    )
    _waiting.upon(_reconnect, enter=_connecting, outputs=[_connect], collector=_discard)

    _connected.upon(start, enter=_connected, outputs=[], collector=_discard)
    _connected.upon(
        stop,
        enter=_disconnecting,
        outputs=[_awaitStop, _noteStopping, _disconnect],
        collector=_discard,
    )
    _connected.upon(
        whenConnected,
        enter=_connected,
        outputs=[_currentConnection],
        collector=_discard,
    )
    _connected.upon(
        _clientDisconnected,
        enter=_waiting,
        outputs=[_retryAfterDisconnect, _forgetConnection],
        collector=_discard,
    )
    _connected.upon(
        _giveUp,
        enter=_gaveUp,
        outputs=[_forgetConnection, _abandonConnectWaiters],
        collector=_discard,
    )

    _init.upon(reconnect, enter=_init, outputs=[], collector=_discard)
    _connecting.upon(reconnect, enter=_connecting, outputs=[], collector=_discard)
    _waiting.upon(
        reconnect,
        enter=_connecting,
        outputs=[_cancelRetry, _connect],
        collector=_discard,
    )
    _connected.upon(
        reconnect,
        enter=_reconnecting,
        outputs=[_noteReconnecting, _disconnect],
        collector=_discard,
    )
    _connected.upon(
        handOver, enter=_handingOver, outputs=[_startHandOver], collector=_discard
    )
    _disconnecting.upon(reconnect, enter=_disconnecting, outputs=[], collector=_discard)
    _restarting.upon(reconnect, enter=_restarting, outputs=[], collector=_discard)
    _stopped.upon(reconnect, enter=_stopped, outputs=[], collector=_discard)
    _gaveUp.upon(reconnect, enter=_gaveUp, outputs=[], collector=_discard)

    # Where there is no connection to keep, a hand-over is a reconnect.
    _init.upon(handOver, enter=_init, outputs=[], collector=_discard)
    _connecting.upon(handOver, enter=_connecting, outputs=[], collector=_discard)
    _waiting.upon(
        handOver,
        enter=_connecting,
        outputs=[_cancelRetry, _connect],
        collector=_discard,
    )
    _reconnecting.upon(handOver, enter=_reconnecting, outputs=[], collector=_discard)
    _disconnecting.upon(handOver, enter=_disconnecting, outputs=[], collector=_discard)
    _restarting.upon(handOver, enter=_restarting, outputs=[], collector=_discard)
    _stopped.upon(handOver, enter=_stopped, outputs=[], collector=_discard)
    _gaveUp.upon(handOver, enter=_gaveUp, outputs=[], collector=_discard)

    _handingOver.upon(start, enter=_handingOver, outputs=[], collector=_discard)
    _handingOver.upon(reconnect, enter=_handingOver, outputs=[], collector=_discard)
    _handingOver.upon(handOver, enter=_handingOver, outputs=[], collector=_discard)
    _handingOver.upon(
        whenConnected,
        enter=_handingOver,
        outputs=[_currentConnection],
        collector=_discard,
    )
    _handingOver.upon(
        stop,
        enter=_disconnecting,
        outputs=[_awaitStop, _noteStopping, _abandonHandOver, _disconnect],
        collector=_discard,
    )
    _handingOver.upon(
        _handOverMade,
        enter=_connected,
        outputs=[_handOverConnection],
        collector=_discard,
    )
    _handingOver.upon(
        _handOverFailed,
        enter=_connected,
        outputs=[_noteHandOverFailed],
        collector=_discard,
    )
    _handingOver.upon(
        _clientDisconnected,
        enter=_waiting,
        outputs=[_abandonHandOver, _retryAfterDisconnect, _forgetConnection],
        collector=_discard,
    )
    _handingOver.upon(
        _giveUp,
        enter=_gaveUp,
        outputs=[_abandonHandOver, _forgetConnection, _abandonConnectWaiters],
        collector=_discard,
    )

    _reconnecting.upon(start, enter=_reconnecting, outputs=[], collector=_discard)
    _reconnecting.upon(reconnect, enter=_reconnecting, outputs=[], collector=_discard)
    _reconnecting.upon(
        stop,
        enter=_disconnecting,
        outputs=[_awaitStop, _noteStopping],
        collector=_discard,
    )
    _reconnecting.upon(
        whenConnected,
        enter=_reconnecting,
        outputs=[_awaitConnection],
        collector=_discard,
    )
    _reconnecting.upon(
        _clientDisconnected,
        enter=_connecting,
        outputs=[_forgetConnection, _connect],
        collector=_discard,
    )

    _disconnecting.upon(
        start, enter=_restarting, outputs=[_noteRestarting], collector=_discard
    )
    _disconnecting.upon(
        stop, enter=_disconnecting, outputs=[_awaitStop], collector=_discard
    )
    _disconnecting.upon(
        whenConnected,
        enter=_disconnecting,
        outputs=[_awaitConnection],
        collector=_discard,
    )
    _disconnecting.upon(
        _connectionFailed,
        enter=_stopped,
        outputs=[_cancelConnectWaiters, _finishStopping],
        collector=_discard,
    )
    _disconnecting.upon(
        _clientDisconnected,
        enter=_stopped,
        outputs=[_forgetConnection, _cancelConnectWaiters, _finishStopping],
        collector=_discard,
    )

    _restarting.upon(start, enter=_restarting, outputs=[], collector=_discard)
    _restarting.upon(
        stop,
        enter=_disconnecting,
        outputs=[_awaitStop, _noteStopping],
        collector=_discard,
    )
    _restarting.upon(
        whenConnected,
        enter=_restarting,
        outputs=[_awaitConnection],
        collector=_discard,
    )
    _restarting.upon(
        _connectionFailed,
        enter=_connecting,
        outputs=[_finishStopping, _resetFailedAttempts, _connect],
        collector=_discard,
    )
    _restarting.upon(
        _clientDisconnected,
        enter=_connecting,
        outputs=[_forgetConnection, _finishStopping, _resetFailedAttempts, _connect],
        collector=_discard,
    )

    _stopped.upon(
        start,
        enter=_connecting,
        outputs=[_resetFailedAttempts, _connect],
        collector=_discard,
    )
    _stopped.upon(
        stop, enter=_stopped, outputs=[_awaitStop, _finishStopping], collector=_discard
    )
    _stopped.upon(
        whenConnected, enter=_stopped, outputs=[_noConnection], collector=_discard
    )

    _gaveUp.upon(start, enter=_gaveUp, outputs=[], collector=_discard)
    _gaveUp.upon(
        stop, enter=_stopped, outputs=[_awaitStop, _finishStopping], collector=_discard
    )
    _gaveUp.upon(
        whenConnected,
        enter=_gaveUp,
        outputs=[_noConnectionAfterGivingUp],
        collector=_discard,
    )


_compiled = installInputs(_ClientMachine, _ClientMachine._machine, _INPUTS, _discard)
