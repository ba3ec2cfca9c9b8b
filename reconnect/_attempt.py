"""
One connection attempt: connect to an endpoint, prepare the connection,
optionally within a time limit, and report the outcome exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.interfaces import (
    IDelayedCall,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.python.failure import Failure

from ._errors import AttemptTimedOut
from ._proxy import _DisconnectFactory, _ReconnectingProtocolProxy


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


class _Attempt:
    """
    A single try at a usable connection.

    The attempt succeeds when the endpoint has connected and
    C{prepareConnection} (if any) has finished; it fails when either fails,
    when the connection is lost before that, when its time runs out or when
    it is cancelled.  Whatever happens, exactly one of C{succeeded} and
    C{failed} is called, once; a connection that is not handed over through
    C{succeeded} is aborted, so no socket outlives a failed attempt.

    @ivar proxy: the protocol proxy of this attempt's connection, once the
        transport is up.
    """

    proxy: Optional[_ReconnectingProtocolProxy] = None
    _finished = False
    _timer: Optional[IDelayedCall] = None
    _step: Optional[Deferred[Any]] = None

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        factory: IProtocolFactory,
        clock: IReactorTime,
        prepareConnection: Optional[Callable[[IProtocol], object]],
        timeout: Optional[float],
        succeeded: Callable[[_ReconnectingProtocolProxy], None],
        failed: Callable[[Failure], None],
        lost: Callable[[_ReconnectingProtocolProxy, Failure], None],
    ) -> None:
        self._prepareConnection = prepareConnection
        self._succeeded = succeeded
        self._failed = failed
        self._lost = lost
        if timeout is not None:
            self._timer = clock.callLater(timeout, self._timedOut, timeout)
        wrapped = _DisconnectFactory(factory, self._transportMade, self._connectionLost)
        connecting: Deferred[Any]
        try:
            connecting = endpoint.connect(wrapped)
        except BaseException:
            self._finish(Failure())
            return
        self._step = connecting
        connecting.addCallbacks(self._connected, self._stepFailed)

    def _transportMade(self, proxy: _ReconnectingProtocolProxy) -> None:
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
        preparing = maybeDeferred(self._prepareConnection, proxy._protocol)
        self._step = preparing
        preparing.addCallbacks(lambda _: self._finish(None), self._stepFailed)

    def _stepFailed(self, failure: Failure) -> None:
        if not self._finished:
            self._finish(failure)

    def _connectionLost(
        self, proxy: _ReconnectingProtocolProxy, reason: Failure
    ) -> None:
        """
        A connection built by this attempt ended: before the attempt
        succeeded that fails the attempt; after, it is the service's news.
        """
        if self._finished:
            self._lost(proxy, reason)
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
        L{CancelledError}) as the failure.
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
            self._succeeded(self.proxy)
            return
        if failure is None:
            failure = Failure(CancelledError("connected without a protocol"))
        if step is not None and not step.called:
            step.cancel()
        if self.proxy is not None:
            abortTransport(self.proxy)
        self._failed(failure)
