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


class _Attempt(_DisconnectFactory):
    """
    A single try at a usable connection.  It is also the factory the
    endpoint is given (a connected service keeps one object, not two).

    The attempt succeeds when the endpoint has connected and
    C{prepareConnection} (if any) has finished; it fails when either fails,
    when the connection is lost before that, when its time runs out or when
    it is cancelled.  Whatever happens, the listener hears of it once,
    through C{attemptSucceeded} or C{attemptFailed}; a connection that is not
    handed over through C{attemptSucceeded} is aborted, so no socket outlives
    a failed attempt.  The end of a connection handed over is told through
    C{connectionEnded}.

    @ivar proxy: the protocol proxy of this attempt's connection, once the
        transport is up.
    """

    __slots__ = (
        "_listener",
        "_prepareConnection",
        "proxy",
        "_finished",
        "_timer",
        "_step",
    )

    proxy: Optional[_ReconnectingProtocolProxy]
    _finished: bool
    _timer: Optional[IDelayedCall]
    _step: Optional[Deferred[Any]]

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
        self._prepareConnection = prepareConnection
        self._listener = listener
        self.proxy = None
        self._finished = False
        self._timer = None
        self._step = None
        if timeout is not None:
            self._timer = clock.callLater(timeout, self._timedOut, timeout)
        try:
            connecting = endpoint.connect(self)
            if not isinstance(connecting, Deferred):
                raise TypeError(
                    f"{endpoint!r}.connect returned {connecting!r}, not a Deferred"
                )
        except Exception:
            self._finish(Failure())
            return
        self._step = connecting
        connecting.addCallbacks(self._connected, self._stepFailed)

    def transportMade(self, proxy: _ReconnectingProtocolProxy) -> None:
        """
        A transport is up.  If the attempt ended meanwhile (an endpoint whose
        connect could not be cancelled), the connection is not wanted.
        """
        if self._finished:
            abortTransport(proxy)
        else:
            self.proxy = proxy

    def _connected(self, proxy: _ReconnectingProtocolProxy) -> None:
        self.proxy = proxy
        if self._finished:
            return
        if self._prepareConnection is None:
            self._finish(None)
            return
        # As in Twisted, prepareConnection is given what the factory built:
        # the proxy, which passes everything on to the user's protocol.
        preparing = maybeDeferred(self._prepareConnection, cast(IProtocol, proxy))
        self._step = preparing
        preparing.addCallbacks(lambda _: self._finish(None), self._stepFailed)

    def _stepFailed(self, failure: Failure) -> None:
        if not self._finished:
            self._finish(failure)

    def transportLost(self, proxy: _ReconnectingProtocolProxy, reason: Failure) -> None:
        """
        A connection built by this attempt ended: before the attempt
        succeeded that fails the attempt; after, it is the service's news.
        """
        if self._finished:
            self._listener.connectionEnded(proxy, reason)
        elif proxy is self.proxy:
            self.proxy = None
            self._finish(reason)

    def _timedOut(self, timeout: float) -> None:
        self._timer = None
        self.cancel(Failure(AttemptTimedOut(timeout)))

    def cancel(self, reason: Optional[Failure] = None) -> None:
        """
        Give up on this attempt: stop whatever step is under way, abort the
        connection if there is one and report C{reason} (by default a
        C{CancelledError}) as the failure.
        """
        if self._finished:
            return
        self._finish(Failure(CancelledError()) if reason is None else reason)

    def _finish(self, failure: Optional[Failure]) -> None:
        self._finished = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        step, self._step = self._step, None
        if failure is None and self.proxy is not None:
            self._listener.attemptSucceeded(self.proxy)
            return
        if failure is None:
            failure = Failure(CancelledError("connected without a protocol"))
        if step is not None and not step.called:
            cancelQuietly(step)
        if self.proxy is not None:
            abortTransport(self.proxy)
        self._listener.attemptFailed(failure)
