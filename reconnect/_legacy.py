"""
Code written for the connector API keeps working: a drop-in
L{ReconnectingClientFactory}, and L{EndpointConnector}, which runs any client
factory over any client endpoint.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Optional, Union, cast

from twisted.internet import error
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
)
from twisted.internet.interfaces import (
    IAddress,
    IConnector,
    IDelayedCall,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import ClientFactory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ._attempt import abortTransport, cancelQuietly
from ._backoff import RetryPolicy, checkedDelay, ownPolicy
from ._checks import checkClock, checkFactory
from ._describe import describeEndpoint, endpointFrom
from ._proxy import _DisconnectFactory, _ReconnectingProtocolProxy
from ._sessions import IEndpointSession, ISessionEndpoint

_log = Logger()


class ReconnectingClientFactory(ClientFactory):
    """
    A client factory that reconnects with exponential backoff: Twisted's
    C{ReconnectingClientFactory}, attribute for attribute, with what its
    users trip over fixed.

    Differences, all compatible: the jittered delay is never negative and
    never above C{maxDelay}; an optional C{retryPolicy} (any policy from
    L{reconnect}) decides the delays instead of the attributes; with
    C{resetDelayOnConnect} the delay resets by itself whenever a connection
    is made; and the retries are timed on the connector's reactor when no
    C{clock} is set.

    @ivar maxDelay: the most seconds between attempts.
    @ivar initialDelay: the delay before the first retry.
    @ivar factor: how much the delay grows after each failure.
    @ivar jitter: the relative spread of the random noise on each delay.
    @ivar maxRetries: how many consecutive failures to retry, or C{None}.
    @ivar continueTrying: whether to retry at all (L{stopTrying} clears it).
    @ivar retries: consecutive failures so far.
    @ivar delay: the delay the next retry will use.
    @ivar connector: the connector of the last failure or loss.
    @ivar clock: what times the retries; not pickled.
    @ivar retryPolicy: if set, C{retryPolicy(retries)} gives each delay (or
        C{None}: give up), and the delay attributes are not used.
    @ivar resetDelayOnConnect: if true, L{resetDelay} is called each time a
        protocol is built for a new connection.
    """

    maxDelay: float = 3600
    initialDelay = 1.0
    factor = 2.7182818284590451
    jitter = 0.11962656492

    delay = initialDelay
    retries = 0
    maxRetries: Optional[int] = None
    continueTrying = 1
    connector: Optional[IConnector] = None
    clock: Optional[IReactorTime] = None
    retryPolicy: Optional[RetryPolicy] = None
    resetDelayOnConnect = False
    _callID: Optional[IDelayedCall] = None
    _ownPolicy: tuple[object, object]

    def buildProtocol(self, addr: Optional[IAddress]) -> Any:
        if self.resetDelayOnConnect:
            self.delay = self.initialDelay
            self.retries = 0
        return super().buildProtocol(addr)

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        if self.continueTrying:
            self.connector = connector
            self.retry()

    def clientConnectionLost(self, connector: IConnector, reason: Failure) -> None:
        if self.continueTrying:
            self.connector = connector
            self.retry()

    def retry(self, connector: Optional[IConnector] = None) -> None:
        """
        Connect C{connector} (by default the last one) again after the
        current delay, and grow the delay.
        """
        if not self.continueTrying:
            if self.noisy:
                _log.info(
                    "Abandoning {connector} on explicit request", connector=connector
                )
            return
        if connector is None:
            if self.connector is None:
                raise ValueError("no connector to retry")
            connector = self.connector

        self.retries += 1
        if self.maxRetries is not None and self.retries > self.maxRetries:
            if self.noisy:
                _log.info(
                    "Abandoning {connector} after {retries} retries.",
                    connector=connector,
                    retries=self.retries,
                )
            return

        policy = self._policy()
        if policy is not None:
            try:
                chosen = checkedDelay(policy(self.retries))
            except Exception:
                _log.failure(
                    "Abandoning {connector}: the retry policy failed",
                    connector=connector,
                )
                return
            if chosen is None:
                if self.noisy:
                    _log.info(
                        "Abandoning {connector}: the retry policy gave up",
                        connector=connector,
                    )
                return
            wait = chosen
        else:
            if self.jitter:
                noisy = random.normalvariate(self.delay, self.delay * self.jitter)
                self.delay = min(max(0.0, noisy), self.maxDelay)
            wait = self.delay
            self.delay = min(self.delay * self.factor, self.maxDelay)

        if self.noisy:
            _log.info(
                "{connector} will retry in {delay} seconds",
                connector=connector,
                delay=int(wait),
            )
        earlier = self._callID
        if earlier is not None and earlier.active():
            earlier.cancel()
        self._callID = self._clockFor(connector).callLater(
            wait, self._reconnect, connector
        )

    def _policy(self) -> Optional[RetryPolicy]:
        """
        This factory's own copy of C{retryPolicy}, however it was set.

        Set on the class, a plain function would come back from C{self} as
        a method (and be handed C{self} as its attempt number): it is read
        from the class's namespace instead, so a function, a C{staticmethod}
        and a policy object all work.  A policy that remembers its last
        delay is copied once per factory (see L{ownPolicy}), so factories
        sharing a class attribute do not pace each other.
        """
        for namespace in (self.__dict__, *(vars(k) for k in type(self).__mro__)):
            if "retryPolicy" in namespace:
                policy = namespace["retryPolicy"]
                break
        if isinstance(policy, staticmethod):
            policy = policy.__func__
        if policy is None:
            return None
        given, own = self.__dict__.get("_ownPolicy", (None, None))
        if given is not policy:
            own = ownPolicy(policy)
            self._ownPolicy = (policy, own)
        return cast(RetryPolicy, own)

    def _clockFor(self, connector: IConnector) -> IReactorTime:
        if self.clock is None:
            self.clock = cast(
                IReactorTime, getattr(connector, "reactor", None) or _globalReactor()
            )
        return self.clock

    def _reconnect(self, connector: IConnector) -> None:
        """
        The delay is over: connect again, unless retrying was stopped or
        someone connected the connector meanwhile (connecting it twice
        would raise).
        """
        self._callID = None
        busy = getattr(connector, "state", "disconnected") != "disconnected"
        if self.continueTrying and not busy:
            connector.connect()
        elif not busy:
            # Retrying was turned off without stopTrying: say so as
            # stopTrying does, so that an EndpointConnector lets go of its
            # endpoint session.
            try:
                connector.stopConnecting()
            except error.NotConnectingError:
                pass

    def stopTrying(self) -> None:
        """
        Stop reconnecting: call off the scheduled retry and any connection
        attempt under way.  Nothing is left scheduled and no further attempt
        is made until L{resetDelay} (or C{continueTrying = 1}) allows it.
        """
        call, self._callID = self._callID, None
        if call is not None and call.active():
            call.cancel()
        self.continueTrying = 0
        if self.connector is not None:
            try:
                self.connector.stopConnecting()
            except error.NotConnectingError:
                pass

    def resetDelay(self) -> None:
        """
        Call after a successful connection: the delay and the retry count
        start afresh, and retrying is on again.
        """
        self.delay = self.initialDelay
        self.retries = 0
        self.continueTrying = 1

    def __getstate__(self) -> dict[str, Any]:
        """
        Pickle how to reconnect, not where the reconnecting stands: the
        connector, the clock, the pending call and the counters are left
        out, so an unpickled factory starts as a new one.
        """
        state = self.__dict__.copy()
        for transient in (
            "connector",
            "retries",
            "delay",
            "continueTrying",
            "_callID",
            "clock",
            "_ownPolicy",
        ):
            state.pop(transient, None)
        return state


def _globalReactor() -> IReactorTime:
    from twisted.internet import reactor

    return cast(IReactorTime, reactor)


@implementer(IAddress)
class EndpointAddress:
    """
    The destination of an L{EndpointConnector} that has no connection to
    ask: the endpoint itself.
    """

    def __init__(self, endpoint: IStreamClientEndpoint) -> None:
        self.endpoint = endpoint

    def __repr__(self) -> str:
        return f"EndpointAddress({self.endpoint!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EndpointAddress) and other.endpoint is self.endpoint

    def __hash__(self) -> int:
        return hash(id(self.endpoint))


def _destinationOf(endpoint: IStreamClientEndpoint) -> IAddress:
    """
    Where C{endpoint} connects to, with C{host} and C{port} where it is one
    of Twisted's TCP or hostname endpoints (or one wrapped, as in TLS); an
    L{EndpointAddress} otherwise, or if Twisted's private attributes are not
    where they were.
    """
    while type(endpoint).__name__ == "_WrapperEndpoint":
        wrapped = getattr(endpoint, "_wrappedEndpoint", None)
        if wrapped is None:
            break
        endpoint = wrapped
    if isinstance(endpoint, HostnameEndpoint):
        host = getattr(endpoint, "_hostText", None)
    elif isinstance(endpoint, (TCP4ClientEndpoint, TCP6ClientEndpoint)):
        host = getattr(endpoint, "_host", None)
    else:
        host = None
    port = getattr(endpoint, "_port", None)
    if not isinstance(host, str) or not isinstance(port, int):
        return EndpointAddress(endpoint)
    if isinstance(endpoint, TCP6ClientEndpoint):
        return IPv6Address("TCP", host, port)
    return IPv4Address("TCP", host, port)


class _ConnectorFactory(_DisconnectFactory):
    """
    The factory an L{EndpointConnector} hands its endpoint: it passes the
    start and end of each transport to C{made} and C{lost}.  The connector
    itself starts and stops the user's factory, as the reactor's connectors
    do, so the endpoint's calls are not passed on.
    """

    __slots__ = ("_made", "_lost")

    def __init__(
        self,
        protocolFactory: IProtocolFactory,
        made: Callable[[_ReconnectingProtocolProxy], None],
        lost: Callable[[_ReconnectingProtocolProxy, Failure], None],
    ) -> None:
        super().__init__(protocolFactory)
        self._made = made
        self._lost = lost

    def transportMade(self, proxy: _ReconnectingProtocolProxy) -> None:
        self._made(proxy)

    def transportLost(self, proxy: _ReconnectingProtocolProxy, reason: Failure) -> None:
        self._lost(proxy, reason)

    def handshakeDone(self, proxy: _ReconnectingProtocolProxy) -> None:
        """
        Nothing to do: as with Twisted's own connectors, legacy code hears
        of a connection when TCP connects, and of a failed handshake as
        C{clientConnectionLost}.
        """

    def doStart(self) -> None:
        pass

    def doStop(self) -> None:
        pass


@implementer(IConnector)
class EndpointConnector:
    """
    An C{IConnector} over any C{IStreamClientEndpoint}, so that a client
    factory written for C{reactor.connectTCP} (a L{ReconnectingClientFactory}
    above all) runs over TLS, UNIX sockets, C{HostnameEndpoint} or a string
    description.

    It keeps the reactor connectors' contract: C{doStart} before the first
    attempt and C{doStop} once the factory has no further use for the
    connector; C{startedConnecting} before each attempt;
    C{clientConnectionFailed} with the attempt's failure (C{UserError} when
    L{stopConnecting} called it off); C{clientConnectionLost} when a
    connection ends.

    Over an endpoint that wants a session with each client (an
    L{ISessionEndpoint}, such as a L{FailoverEndpoint
    <reconnect.FailoverEndpoint>}), the connector opens one at its first
    C{connect()} and connects through it.  The session is the client's
    memory (the server it is on, the one it just lost, its shuffled order),
    so it is kept across a L{ReconnectingClientFactory}'s retries, though
    the factory is stopped and started again around each: it is closed
    when the factory, told of a failure or a loss, has no retry pending
    (no active C{_callID}, as Twisted's and ours keep it: it gave up, or
    it is not a reconnecting factory), and when C{stopConnecting()} or
    C{disconnect()} is called while nothing is under way (a factory's
    C{stopTrying()} calls the former).  When the endpoint asks it to move
    (failback: the preferred server is back), the connector closes its
    connection (the factory hears C{clientConnectionLost}) and, unless the
    factory connected again or stopped trying meanwhile, connects again at
    once.

    @ivar state: C{"disconnected"}, C{"connecting"} or C{"connected"}.
    """

    state = "disconnected"
    _factoryStarted = False
    _attempt: Optional[Deferred[Any]] = None
    _connection: Optional[_ReconnectingProtocolProxy] = None
    _token: Optional[object] = None
    _session: Optional[IEndpointSession] = None
    _connectedAt = 0.0
    # Why the connection is being closed, when the connector closes it:
    # "move" (failback) or "disconnect" (asked to).
    _closing: Optional[str] = None

    def __init__(
        self,
        endpoint: Union[IStreamClientEndpoint, str],
        factory: IProtocolFactory,
        reactor: Optional[IReactorTime] = None,
    ) -> None:
        """
        @param endpoint: where to connect: an endpoint, or its string
            description (C{"tcp:example.com:80"}), parsed as
            L{ClientService <reconnect.ClientService>} parses one, through
            C{reactor} if it can connect.
        @param factory: the client factory (an instance) that builds the
            protocols and is told of each attempt.
        @param reactor: the reactor a L{ReconnectingClientFactory} times its
            retries on (the global one by default), as with the reactor's
            own connectors.
        @raise TypeError: naming the argument, for an C{endpoint} that is
            neither an endpoint nor a string, a C{factory} with no
            C{buildProtocol} (or a factory class), a C{reactor} that cannot
            schedule calls.
        @raise ValueError: for a bad description, naming C{endpoint}.
        """
        checkFactory("factory", factory)
        checkClock("reactor", reactor)
        endpoint = endpointFrom("endpoint", endpoint, reactor)
        self.endpoint = endpoint
        self.factory = factory
        self.reactor = reactor

    def connect(self) -> None:
        """
        Start an attempt.

        @raise RuntimeError: if connecting or connected already.
        """
        if self.state != "disconnected":
            raise RuntimeError("can't connect in this state")
        self.state = "connecting"
        if not self._factoryStarted:
            self._factoryStarted = True
            self._callFactory("doStart")
        if self._session is None:
            self._openSession()
        self._callFactory("startedConnecting", self)
        if self.state != "connecting":
            return
        token = self._token = object()
        wrapped = _ConnectorFactory(
            self.factory, lambda proxy: self._made(token, proxy), self._lost
        )
        through = self.endpoint if self._session is None else self._session
        try:
            attempt = through.connect(wrapped)
            if not isinstance(attempt, Deferred):
                raise TypeError(
                    f"{self.endpoint!r}.connect returned {attempt!r}, not a Deferred"
                )
        except Exception:
            self._failed(token, Failure())
            return
        if self._token is token and not attempt.called:
            self._attempt = attempt
        attempt.addErrback(lambda reason: self._failed(token, reason))

    def _made(self, token: object, proxy: _ReconnectingProtocolProxy) -> None:
        """
        A transport is up.  One from an attempt that was called off (by an
        endpoint that could not cancel it) is not wanted.
        """
        if token is not self._token:
            abortTransport(proxy)
            return
        self._token = None
        self._attempt = None
        self._connection = proxy
        self._connectedAt = self._clock().seconds()
        self._closing = None
        self.state = "connected"

    def _failed(self, token: object, reason: Failure) -> None:
        if token is not self._token:
            return
        self._token = None
        self._attempt = None
        self.state = "disconnected"
        self._tell("clientConnectionFailed", reason)

    def _lost(self, proxy: _ReconnectingProtocolProxy, reason: Failure) -> None:
        if proxy is not self._connection:
            return
        closing, self._closing = self._closing, None
        session = self._session
        if closing is None and session is not None:
            upFor = self._clock().seconds() - self._connectedAt
            self._guarded(session.connectionEnded, upFor)
        self._connection = None
        self.state = "disconnected"
        self._tell("clientConnectionLost", reason, moving=closing == "move")

    def _tell(self, method: str, reason: Failure, moving: bool = False) -> None:
        """
        Give the factory the news; if it did not connect again, it is done
        with this connector and is stopped, unless the connector is moving
        (and the factory still wants to be connected), when it connects
        again at once.
        """
        self._callFactory(method, self, reason)
        if self.state != "disconnected" or not self._factoryStarted:
            return
        if moving and getattr(self.factory, "continueTrying", True):
            self.connect()
            return
        self._factoryStarted = False
        self._callFactory("doStop")
        if not self._retryPending():
            self._closeSession()

    def _retryPending(self) -> bool:
        """
        Whether the factory has scheduled a retry, as a
        L{ReconnectingClientFactory} (ours or Twisted's) keeps it.
        """
        try:
            call = getattr(self.factory, "_callID", None)
            return bool(
                call is not None
                and call.active()
                and getattr(self.factory, "continueTrying", True)
            )
        except Exception:
            _log.failure("Asking {factory!r} for its retry", factory=self.factory)
            return False

    def _closeSession(self) -> None:
        """
        The client is done with the endpoint: close its session, if any.
        """
        session, self._session = self._session, None
        if session is not None:
            self._guarded(session.close)

    def _openSession(self) -> None:
        """
        The factory starts: open a session with the endpoint, if it wants
        one.  An endpoint whose C{openSession} raises is connected to
        directly.
        """
        if ISessionEndpoint.providedBy(self.endpoint):
            try:
                self._session = self.endpoint.openSession(self._move)
            except Exception:
                _log.failure("{endpoint!r}.openSession raised", endpoint=self.endpoint)

    def _move(self) -> None:
        """
        The endpoint asks the connector to connect again (failback): close
        the connection; L{_lost} connects again.
        """
        if self.state == "connected" and self._connection is not None:
            transport = self._connection._transport
            if transport is not None and self._closing is None:
                self._closing = "move"
                transport.loseConnection()

    def _clock(self) -> IReactorTime:
        return self.reactor if self.reactor is not None else _globalReactor()

    def _guarded(self, call: Callable[..., object], *args: object) -> None:
        """
        Call the session (an endpoint's code): what it raises is logged.
        """
        try:
            call(*args)
        except Exception:
            _log.failure("{call!r} raised", call=call)

    def _callFactory(self, method: str, *args: object) -> None:
        """
        Call the factory's C{method}, if it has one.  The factory is the
        user's code: what it raises is logged, and the connector goes on
        keeping its contract.
        """
        call = getattr(self.factory, method, None)
        if call is None:
            return
        try:
            call(*args)
        except Exception:
            _log.failure(
                "{factory!r}.{method} raised", factory=self.factory, method=method
            )

    def stopConnecting(self) -> None:
        """
        Call off the attempt under way; the factory hears of it as a failure
        with C{UserError}.

        While disconnected, that means the factory stops trying (its
        C{stopTrying} calls this): the endpoint session is closed.

        @raise NotConnectingError: if no attempt is under way.
        """
        if self.state != "connecting":
            if self.state == "disconnected":
                self._closeSession()
            raise error.NotConnectingError("we're not trying to connect")
        self.state = "disconnected"
        self._token = None
        attempt, self._attempt = self._attempt, None
        if attempt is not None:
            cancelQuietly(attempt)
        self._tell("clientConnectionFailed", Failure(error.UserError()))

    def disconnect(self) -> None:
        """
        Call off the attempt, or close the connection, whichever there is;
        with neither, close the endpoint session.
        """
        if self.state == "disconnected":
            self._closeSession()
        elif self.state == "connecting":
            self.stopConnecting()
        elif self.state == "connected" and self._connection is not None:
            transport = self._connection._transport
            if transport is not None:
                self._closing = "disconnect"
                transport.loseConnection()

    def getDestination(self) -> IAddress:
        """
        The peer's address while connected.  Otherwise, as the reactor's
        connectors give, the address the endpoint connects to, with C{host}
        and C{port} (an C{IPv4Address}, or an C{IPv6Address} for a
        C{TCP6ClientEndpoint}, with the host as given, name or number), for
        Twisted's TCP and hostname endpoints, TLS-wrapped or not; for any
        other endpoint, an L{EndpointAddress} naming it.
        """
        if self._connection is not None and self._connection._transport is not None:
            return self._connection._transport.getPeer()
        return _destinationOf(self.endpoint)

    def __repr__(self) -> str:
        return (
            f"<EndpointConnector to {describeEndpoint(self.endpoint)} ({self.state})>"
        )
