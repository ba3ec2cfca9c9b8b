"""
One connection attempt: connect to an endpoint, prepare the connection,
optionally within a time limit, and report the outcome exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional, Protocol, cast

from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.interfaces import (
    IDelayedCall,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure

from ._errors import AttemptTimedOut
from ._proxy import _DisconnectFactory, _ReconnectingProtocolProxy
from ._tls import tellsHandshakeTo

_log = Logger()


def abortTransport(proxy: _ReconnectingProtocolProxy) -> None:
    """
    Close the connection under C{proxy} at once, without waiting for
    buffered data.
    """
    transport = proxy._transport
    if transport is None:
        return
    abort = getattr(transport, "abortConnection", None)
    if abort is not None:
        abort()
    else:
        transport.loseConnection()


def cancelQuietly(step: Deferred[Any]) -> None:
    """
    Cancel a C{Deferred} that user code made (an endpoint's or
    C{prepareConnection}'s): a canceller that raises is logged, and the
    attempt ends all the same.
    """
    try:
        step.cancel()
    except Exception:
        _log.failure("Cancelling {step!r} raised", step=step)


class AttemptListener(Protocol):
    """
    Who hears how an L{_Attempt} went.
    """

    def attemptSucceeded(self, proxy: _ReconnectingProtocolProxy) -> None: ...

    def attemptFailed(self, reason: Failure) -> None: ...

    def connectionEnded(
        self, proxy: _ReconnectingProtocolProxy, reason: Failure
    ) -> None: ...


class _Progress:
    """
    What an attempt keeps only while it is under way.

    @ivar prepareConnection: the callable preparing each connection.
    @ivar proxy: the protocol proxy of the attempt's connection, once the
        transport is up.
    @ivar timer: the call that ends the attempt when its time runs out.
    @ivar step: the C{Deferred} of the step under way, which ending the
        attempt cancels: the endpoint's C{connect} until the transport is
        up, then C{prepareConnection}'s result.
    @ivar handshake: where the connection's TLS handshake stands:
        C{None} without TLS (or before the transport is up), C{False}
        while it is under way, C{True} once it has completed.
    @ivar connected: whether the endpoint's C{connect} has fired.
    @ivar connecting: the endpoint's C{connect} Deferred.
    @ivar passWaits: fired once the handshake is done, failed if the
        connection ends before: for an endpoint over several servers that
        waits for it before its pass is won (see L{_Attempt.whenHandshaken}).
    """

    __slots__ = (
        "prepareConnection",
        "proxy",
        "timer",
        "step",
        "handshake",
        "connected",
        "connecting",
        "passWaits",
    )

    def __init__(
        self, prepareConnection: Optional[Callable[[IProtocol], object]]
    ) -> None:
        self.prepareConnection = prepareConnection
        self.proxy: Optional[_ReconnectingProtocolProxy] = None
        self.timer: Optional[IDelayedCall] = None
        self.step: Optional[Deferred[Any]] = None
        self.handshake: Optional[bool] = None
        self.connected = False
        self.connecting: Optional[Deferred[Any]] = None
        self.passWaits: Optional[Deferred[None]] = None


class _Attempt(_DisconnectFactory):
    """
    A single try at a usable connection.  It is also the factory the
    endpoint is given, which the endpoint keeps as long as the connection
    lasts: so it keeps little once the attempt has ended.

    The attempt succeeds when the endpoint has connected, the TLS handshake
    (over a TLS transport) has completed and C{prepareConnection} (if any)
    has finished; it fails when either fails,
    when the connection is lost before that, when its time runs out or when
    it is cancelled.  Whatever happens, the listener hears of it once,
    through C{attemptSucceeded} or C{attemptFailed}; a connection that is not
    handed over through C{attemptSucceeded} is aborted, so no socket outlives
    a failed attempt.  The end of a connection handed over is told through
    C{connectionEnded}.

    @ivar _progress: what the attempt keeps while under way; C{None} once
        it has ended.
    """

    __slots__ = ("_listener", "_progress")

    _progress: Optional[_Progress]

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        factory: IProtocolFactory,
        clock: IReactorTime,
        prepareConnection: Optional[Callable[[IProtocol], object]],
        timeout: Optional[float],
        listener: AttemptListener,
    ) -> None:
        super().__init__(factory)
        self._listener = listener
        self._progress = progress = _Progress(prepareConnection)
        if timeout is not None:
            progress.timer = clock.callLater(timeout, self._timedOut, timeout)
        try:
            connecting = endpoint.connect(self)
            if not isinstance(connecting, Deferred):
                raise TypeError(
                    f"{endpoint!r}.connect returned {connecting!r}, not a Deferred"
                )
        except Exception:
            self._finish(Failure())
            return
        progress.step = progress.connecting = connecting
        connecting.addCallbacks(self._connected, self._stepFailed)

    def transportMade(self, proxy: _ReconnectingProtocolProxy) -> None:
        """
        A transport is up.  If the attempt ended meanwhile (an endpoint whose
        connect could not be cancelled), the connection is not wanted.
        """
        progress = self._progress
        if progress is None:
            abortTransport(proxy)
            return
        if progress.proxy is None:
            # Connected, and the endpoint's Deferred has not fired yet (it
            # fires once the protocol's connectionMade has returned).
            # Cancelling it now would only make its canceller complain (a
            # TCP connector is no longer connecting) and the endpoint fire it
            # twice: ending the attempt from here on aborts the transport.
            progress.step = None
        progress.proxy = proxy
        if tellsHandshakeTo(proxy._transport, proxy):
            progress.handshake = False

    def handshakeDone(self, proxy: _ReconnectingProtocolProxy) -> None:
        """
        The TLS handshake the attempt waits for is done: if the endpoint
        has connected, the attempt goes on to C{prepareConnection}.  (A
        handshake it did not wait for, such as one that C{prepareConnection}
        started with C{startTLS}, changes nothing.)
        """
        progress = self._progress
        if progress is None or proxy is not progress.proxy:
            return
        if progress.handshake is not False:
            return
        if getattr(proxy._transport, "disconnecting", False):
            # The TLS layer has already given up on the connection (Twisted
            # 24.7 tells of a handshake whose host name it then refused):
            # the loss that follows ends the attempt.
            return
        progress.handshake = True
        passWaits, progress.passWaits = progress.passWaits, None
        if passWaits is not None:
            # The pass is won now: its Deferred, the endpoint's, fires and
            # the attempt goes on from _connected.
            passWaits.callback(None)
        elif progress.connected:
            self._prepare(progress, proxy)

    def whenHandshaken(self, protocol: object) -> Optional[Deferred[None]]:
        """
        For an endpoint over several servers (a pass, L{reconnect._pass}),
        whose C{connect} has C{protocol} from one of them: a C{Deferred}
        that fires once its TLS handshake is done, or fails with the reason
        its connection ended before that, so that the pass goes on to the
        next server rather than end with a server whose certificate is not
        accepted.  Until it has fired, the connection's loss does not end
        the attempt; ending the attempt calls the endpoint's C{connect} off.

        @return: C{None} if there is no handshake to wait for: no TLS, done
            already, or not this attempt's connection.
        """
        progress = self._progress
        if (
            progress is None
            or protocol is not progress.proxy
            or progress.handshake is not False
            or progress.connected
        ):
            return None
        progress.step = progress.connecting
        progress.passWaits = Deferred()
        return progress.passWaits

    def _connected(self, proxy: _ReconnectingProtocolProxy) -> None:
        progress = self._progress
        if progress is None:
            # Ended meanwhile: transportMade has aborted the connection.
            return
        progress.proxy = proxy
        progress.connected = True
        if progress.handshake is False:
            # Over TLS, connected means the handshake is done: a certificate
            # that does not verify fails the attempt, not a connection.
            return
        self._prepare(progress, proxy)

    def _prepare(self, progress: _Progress, proxy: _ReconnectingProtocolProxy) -> None:
        if progress.prepareConnection is None:
            self._finish(None)
            return
        # As in Twisted, prepareConnection is given what the factory built:
        # the proxy, which passes everything on to the user's protocol.
        preparing = maybeDeferred(progress.prepareConnection, cast(IProtocol, proxy))
        progress.step = preparing
        preparing.addCallbacks(self._prepared, self._stepFailed)

    def _prepared(self, result: object) -> None:
        # An attempt that ended meanwhile (timed out, stopped, lost) has
        # cancelled this step; whatever it ends with now is no news.
        if self._progress is not None:
            self._finish(None)

    def _stepFailed(self, failure: Failure) -> None:
        if self._progress is not None:
            self._finish(failure)

    def transportLost(self, proxy: _ReconnectingProtocolProxy, reason: Failure) -> None:
        """
        A connection built by this attempt ended: before the attempt
        succeeded that fails the attempt; after, it is the service's news.
        """
        progress = self._progress
        if progress is None:
            self._listener.connectionEnded(proxy, reason)
        elif proxy is progress.proxy:
            progress.proxy = None
            passWaits, progress.passWaits = progress.passWaits, None
            if passWaits is None:
                self._finish(reason)
            else:
                # The pass tries its next server, through this attempt.
                progress.handshake = None
                passWaits.errback(reason)

    def _timedOut(self, timeout: float) -> None:
        if self._progress is not None:
            self._progress.timer = None
        self.cancel(Failure(AttemptTimedOut(timeout)))

    def cancel(self, reason: Optional[Failure] = None) -> None:
        """
        Give up on this attempt: stop whatever step is under way, abort the
        connection if there is one and report C{reason} (by default a
        C{CancelledError}) as the failure.
        """
        if self._progress is None:
            return
        self._finish(Failure(CancelledError()) if reason is None else reason)

    def _finish(self, failure: Optional[Failure]) -> None:
        progress = self._progress
        assert progress is not None
        self._progress = None
        if progress.timer is not None:
            progress.timer.cancel()
        proxy = progress.proxy
        if failure is None and proxy is not None:
            self._listener.attemptSucceeded(proxy)
            return
        if failure is None:
            failure = Failure(CancelledError("connected without a protocol"))
        step = progress.step
        if step is not None:
            # Even a step that has fired may be waiting on a Deferred it
            # chained (C{succeed(None).addCallback(lambda _: login())}):
            # cancelling it reaches that one.
            cancelQuietly(step)
        if progress.passWaits is not None:
            # The pass was called off just now: this is no news to it.
            progress.passWaits.errback(failure)
        if proxy is not None:
            abortTransport(proxy)
        self._listener.attemptFailed(failure)
