"""
L{SayStuffToServerService}: request/response lines over one connection that
stays up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional, Union, cast

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IDelayedCall,
    IProtocol,
    IPushProducer,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from .._backoff import RetryPolicy
from .._checks import checkCount, checkSeconds
from .._describe import clientEndpoint, describeEndpoint
from .._keepalive import TCPKeepAlive
from .._service import ClientService
from ._book import BOOK_TIMEOUT, Lane, RequestBook
from ._budget import ResendBudget
from ._endpoint import hostEndpoint
from ._errors import (
    NotConnectedError,
    RequestTimedOut,
    ServerProtocolError,
    ServiceStoppedError,
)
from ._protocol import SayStuffClientFactory, SayStuffClientProtocol, checkLine

_useDefault: Any = object()

# As ints: "in" finds a byte in a bytes object several times faster than a
# one-byte bytes object (no buffer to ask for, straight to memchr).
_CR, _LF = b"\r\n"
MiB = 1024 * 1024

#: What one request costs to hold beyond its line, in bytes: measured with
#: tracemalloc, a request relayed for a local client (its C{Deferred}, the
#: relay's slot and callbacks) takes about 950 bytes, and about 1,600 with
#: a timeout's timer, so one with a timeout is charged twice this.
REQUEST_OVERHEAD = 1024

#: How many early reconnects (see L{SayStuffToServerService}'s
#: C{_cutShort}) may follow one another with no reply between.
EARLY_RECONNECTS = 50


def _checkFlag(name: str, value: object) -> None:
    """
    @raise TypeError: if C{value} is not a C{bool} (C{"false"} is not).
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {value!r}")


def _endpointFrom(
    reactor: Any,
    host: Optional[str],
    port: Optional[int],
    endpoint: Union[IStreamClientEndpoint, str, None],
) -> IStreamClientEndpoint:
    """
    The endpoint to connect to: from C{host} and C{port}, or C{endpoint}
    (an endpoint or its description), never both.

    @raise TypeError: if both or neither are given, or one is of the
        wrong type.
    @raise ValueError: if a value is out of range or a description is bad;
        a C{tls:} description without TLS support installed says what to
        install.
    """
    if endpoint is not None:
        if host is not None or port is not None:
            raise TypeError("give host and port, or endpoint, not both")
        if not isinstance(endpoint, str):
            return endpoint
        return clientEndpoint(reactor, endpoint, "endpoint")
    if host is None or port is None:
        raise TypeError("give host and port, or endpoint")
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, not {host!r}")
    if not host:
        raise ValueError("host must not be empty")
    checkCount("port", port, least=1)
    if port > 65535:
        raise ValueError(f"port must be between 1 and 65535, not {port}")
    return hostEndpoint(reactor, host, port)


class SayStuffToServerService(Service):
    """
    Keeps one connection to a line server and sends it requests, one line
    each; L{sendToServer} returns a C{Deferred} that fires with the reply.

    Requests are pipelined: many may be in flight on one connection, and
    replies answer them in order.  While there is no connection, requests
    wait in a bounded queue (or, with C{queueWhileDisconnected=False}, are
    refused with L{NotConnectedError}).  Requests in flight when a
    connection drops are written again on the next one (or, with
    C{resendOnReconnect=False}, fail).  Every C{Deferred} handed out fires.

    Usable wherever an C{IService} is, a C{.tac} file included::

        service = SayStuffToServerService("localhost", 65432)
        service.setServiceParent(application)
    """

    _log = Logger()

    def __init__(
        self,
        host: Optional[str] = None,
        port: Optional[int] = None,
        *,
        endpoint: Union[IStreamClientEndpoint, str, None] = None,
        reactor: Any = None,
        retryPolicy: Optional[RetryPolicy] = None,
        attemptTimeout: Optional[float] = None,
        isFatal: Optional[Callable[[Failure], bool]] = None,
        resetAfter: Optional[float] = None,
        prepareConnection: Optional[Callable[[IProtocol], object]] = None,
        onConnected: Optional[Callable[[IProtocol], object]] = None,
        onDisconnected: Optional[Callable[[IProtocol, Failure], object]] = None,
        queueWhileDisconnected: bool = True,
        queueSize: int = 1000,
        resendOnReconnect: bool = True,
        timeout: Optional[float] = None,
        idleTimeout: Optional[float] = 30.0,
        stopTimeout: float = 5.0,
        maxLineLength: int = 16384,
        idempotent: bool = True,
        resendBudget: Optional[ResendBudget] = _useDefault,
        queueBytes: Optional[int] = 8 * MiB,
        highWater: Optional[int] = 4 * MiB,
        lowWater: Optional[int] = None,
        heartbeat: Optional[float] = None,
        heartbeatLine: bytes = b"PING",
        heartbeatTimeout: Optional[float] = None,
        tcpKeepAlive: Union[TCPKeepAlive, bool, None] = None,
        requestOverhead: int = REQUEST_OVERHEAD,
        resendLimit: Optional[int] = 3,
    ) -> None:
        """
        @param host: the server's host name or address.
        @param port: the server's port.
        @param endpoint: instead of C{host} and C{port}: any client endpoint,
            or a string description of one (C{"tcp:host=...:port=..."},
            C{"unix:path=..."}, C{"tls:..."}).
        @param reactor: the reactor; the global one by default.
        @param retryPolicy: passed to L{ClientService}, as are
            C{attemptTimeout}, C{isFatal}, C{resetAfter},
            C{prepareConnection}, C{onConnected} and C{onDisconnected}.
        @param queueWhileDisconnected: hold requests while there is no
            connection (the default), or refuse them at once.
        @param queueSize: how many requests may wait for a connection (at
            least 1: to hold none, pass C{queueWhileDisconnected=False}).
        @param resendOnReconnect: write requests that were in flight when a
            connection dropped again on the next one (the default), or fail
            them with L{MaybeDelivered} (a C{ConnectionLost}).
        @param timeout: default seconds to wait for each reply (C{None}: no
            limit).
        @param idleTimeout: a connection on which requests await their
            replies and that brings no reply for this many seconds (counted
            from its last reply, or from the write that ended a spell with
            nothing awaited) is deemed dead, aborted and replaced, on time
            to the clock's resolution.  Requests that timed out or were
            cancelled are awaited no more.  C{None} turns the check off.
        @param stopTimeout: how long L{stopService} waits for outstanding
            replies.
        @param maxLineLength: the longest line, in bytes, either way.
        @param idempotent: the default of L{sendToServer}'s C{idempotent}:
            whether a request written and unanswered when its connection
            drops may be written again (at-least-once), or fails with
            L{MaybeDelivered} (at-most-once).
        @param resendBudget: limits how many requests are written again
            after cuts (see L{ResendBudget}; by default 20% of the requests
            answered lately plus 10 a second); those over it fail with
            L{ResendBudgetExhausted}.  C{None}: no limit.
        @param queueBytes: the most bytes of requests that may wait for a
            connection (as well as C{queueSize} requests), each counted as
            its line plus C{requestOverhead}; C{None}: no byte limit.
        @param highWater: once the bytes of requests queued or in flight
            (each counted as its line plus C{requestOverhead}) reach this,
            registered producers are paused (see L{registerProducer});
            C{None}: never.
        @param lowWater: they are resumed once back at or under this; half
            of C{highWater} by default.
        @param heartbeat: after this many seconds with nothing written,
            nothing answered and no request awaited on a connection
            (counted from its connect, its last reply, or the moment its
            last awaited request timed out or was cancelled), send
            C{heartbeatLine} as a request; a heartbeat unanswered within
            C{heartbeatTimeout} seconds (by default, C{heartbeat}) means
            the connection is dead: it is aborted and a new one made at
            once.  So a connection that goes quiet and dead is replaced
            within C{heartbeat + heartbeatTimeout} seconds of its last
            sign of life, on time to the clock's resolution.  Should the
            new one die of a heartbeat too, with no reply between, the
            retry policy paces the next attempts as failed ones (its delay
            for 1, 2, ... such deaths in a row), after that bound.
            C{None} (the default): no heartbeats.
        @param heartbeatLine: the line to send; the server must answer it
            with one line, which is thrown away.
        @param tcpKeepAlive: passed to L{ClientService}.
        @param requestOverhead: the bytes each request is charged on top of
            its line in C{queueBytes}, C{highWater} and C{pendingBytes}:
            what holding a request costs (about 950 bytes measured through
            the relay), so that a flood of empty lines meets back-pressure
            too.  1024 by default.  A request with a timeout (the
            service's or its own) is charged twice this: its timer brings
            it to about 1,600 bytes.
        @param resendLimit: how many times one request may be written
            again after its connection died: one whose connection dies
            every time (a line that makes the server drop the connection)
            fails with L{MaybeDelivered} once written C{1 + resendLimit}
            times, instead of killing every connection.  3 by default;
            C{None}: no limit.
        """
        if reactor is None:
            from twisted.internet import reactor
        for flag, value in [
            ("queueWhileDisconnected", queueWhileDisconnected),
            ("resendOnReconnect", resendOnReconnect),
            ("idempotent", idempotent),
        ]:
            _checkFlag(flag, value)
        try:
            checkCount("queueSize", queueSize, least=1)
        except ValueError as error:
            raise ValueError(
                f"{error} (to hold no request while disconnected, pass "
                "queueWhileDisconnected=False)"
            ) from None
        checkCount("requestOverhead", requestOverhead, least=0)
        if resendLimit is not None:
            checkCount("resendLimit", resendLimit, least=0)
        checkCount("maxLineLength", maxLineLength, least=1)
        checkSeconds("timeout", timeout, zeroAllowed=False)
        checkSeconds("idleTimeout", idleTimeout, zeroAllowed=False)
        if stopTimeout is None:
            raise TypeError("stopTimeout must be a number of seconds, not None")
        checkSeconds("stopTimeout", stopTimeout, zeroAllowed=True)
        checkSeconds("heartbeat", heartbeat, zeroAllowed=False)
        checkSeconds("heartbeatTimeout", heartbeatTimeout, zeroAllowed=False)
        checkLine(heartbeatLine, maxLineLength)
        if queueBytes is not None:
            checkCount("queueBytes", queueBytes, least=0)
        if highWater is not None:
            checkCount("highWater", highWater, least=1)
            if lowWater is None:
                lowWater = highWater // 2
            checkCount("lowWater", lowWater, least=0)
            if lowWater >= highWater:
                raise ValueError(
                    f"lowWater ({lowWater}) must be under highWater ({highWater})"
                )
        if resendBudget is _useDefault:
            resendBudget = ResendBudget()
        elif resendBudget is not None and not isinstance(resendBudget, ResendBudget):
            raise TypeError(
                f"resendBudget must be a ResendBudget or None, not {resendBudget!r}"
            )
        target = _endpointFrom(reactor, host, port, endpoint)
        self.endpoint = target
        self._clock = cast(IReactorTime, reactor)
        self._maxLineLength = maxLineLength
        self._idleTimeout = idleTimeout
        self._stopTimeout = stopTimeout
        self._userConnected = onConnected
        self._userDisconnected = onDisconnected
        self._idleCheck: Optional[IDelayedCall] = None
        self._heartbeat = heartbeat
        self._heartbeatLine = heartbeatLine
        self._heartbeatTimeout = (
            heartbeat if heartbeatTimeout is None else heartbeatTimeout
        )
        self._heartbeatCall: Optional[IDelayedCall] = None
        # Connections lost to dead heartbeats in a row, with no reply
        # between them, and the count of replies at the last such loss.
        self._deadBeats = 0
        self._repliesAtDeadBeat = -1
        # Connections lost while requests awaited their replies: the count
        # of replies at the last such loss, such losses in a row with no
        # reply between, whether the retry policy is pacing the last one,
        # and the early reconnects since the last reply (see _cutShort).
        self._repliesAtLoss = 0
        self._fruitless = 0
        self._paced = False
        self._earlyInARow = 0
        self._repliesAtEarly = 0
        self.heartbeats = 0
        self._producers: list[IPushProducer] = []
        self._protocol: Optional[SayStuffClientProtocol] = None
        # The current connection's lane: its idle check and its heartbeats
        # look at it alone, not at a connection left behind by a move.
        self._lane: Optional[Lane] = None
        self.connections = 0
        self.book = RequestBook(
            self._clock,
            queueSize=queueSize,
            queueWhileDisconnected=queueWhileDisconnected,
            resendOnReconnect=resendOnReconnect,
            timeout=timeout,
            idempotent=idempotent,
            resendBudget=resendBudget,
            queueBytes=queueBytes,
            highWater=highWater,
            lowWater=lowWater or 0,
            pressure=self._pressureChanged,
            requestOverhead=requestOverhead,
            resendLimit=resendLimit,
            lost=self._lostWithRequests,
            queuedWhileDisconnected=self._cutShort,
        )
        self.book.accepting = False
        self._submit = self.book.submit
        self.clientService = ClientService(
            target,
            SayStuffClientFactory(self.book, maxLineLength, self._protocolError),
            retryPolicy=retryPolicy,
            clock=self._clock,
            prepareConnection=prepareConnection,
            attemptTimeout=attemptTimeout,
            isFatal=isFatal,
            resetAfter=resetAfter,
            onConnected=self._connected,
            onDisconnected=self._disconnected,
            onGaveUp=self.book.gaveUp,
            retireConnection=self._retire,
            tcpKeepAlive=tcpKeepAlive,
        )

    def sendToServer(
        self,
        line: bytes,
        timeout: Optional[float] = _useDefault,
        idempotent: Optional[bool] = None,
    ) -> Deferred[bytes]:
        """
        Send C{line} and get the server's reply to it.

        @param line: one line, without its delimiter.
        @param timeout: seconds to wait for the reply, overriding the
            service's default; C{None} for no limit.
        @param idempotent: whether the request is safe to run twice,
            overriding the service's default.  If not, and its connection
            drops after it was written and before its reply came, it fails
            with L{MaybeDelivered} and is never written again; a request
            not yet written is always sent on the next connection.
        @return: a C{Deferred} that fires with the reply line, or fails with
            L{RequestTimedOut}, L{ServiceStoppedError}, L{MaybeDelivered}
            (a C{ConnectionLost}: the connection dropped, or the server
            broke the protocol, after the request was written and it was
            not to be written again: not idempotent, not resending, over
            the L{ResendBudget} (L{ResendBudgetExhausted}) or written
            C{1 + resendLimit} times) or, when the service gives up
            connecting, L{GaveUpConnecting <reconnect.GaveUpConnecting>}.
            Cancelling it withdraws a queued request before it is sent.
        @raise TypeError: if C{line} is not bytes.
        @raise ValueError: if C{line} contains CR or LF or is too long.
        @raise NotConnectedError: if disconnected and not queueing.
        @raise QueueFullError: if the queue is full (a L{NotConnectedError}).
        @raise ServiceStoppedError: if the service is not running.
        @raise NotConnectedGaveUp: if the service gave up connecting (a
            L{NotConnectedError} and a L{GaveUpConnecting
            <reconnect.GaveUpConnecting>} carrying the cause); it refuses
            requests until it is stopped and started again.
        """
        if (
            type(line) is not bytes
            or len(line) > self._maxLineLength
            or _LF in line
            or _CR in line
        ):
            checkLine(line, self._maxLineLength)
        if idempotent is not None and not isinstance(idempotent, bool):
            raise TypeError(f"idempotent must be a bool, not {idempotent!r}")
        if timeout is _useDefault:
            return self._submit(line, BOOK_TIMEOUT, idempotent)
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0, not {timeout!r}")
        return self._submit(line, timeout, idempotent)

    def registerProducer(self, producer: IPushProducer, streaming: bool = True) -> None:
        """
        Back-pressure: C{producer}'s C{pauseProducing} is called whenever the
        bytes of requests queued or in flight reach C{highWater}, and its
        C{resumeProducing} once they are back at C{lowWater}.  Any number of
        producers may register (a relay registers each local client's
        transport, so a fast sender is slowed, not refused).  A producer
        registered while the service is over its high watermark is paused
        at once.

        @param streaming: must be true: only push producers are paced.
        """
        if not streaming:
            raise TypeError("only push producers (streaming=True) are supported")
        self._producers.append(producer)
        if self.book.paused:
            self._callProducer(producer, "pauseProducing")

    def unregisterProducer(self, producer: Optional[IPushProducer] = None) -> None:
        """
        Stop pacing C{producer} (it is not resumed).
        """
        if producer in self._producers:
            self._producers.remove(producer)

    def _pressureChanged(self, paused: bool) -> None:
        method = "pauseProducing" if paused else "resumeProducing"
        for producer in list(self._producers):
            self._callProducer(producer, method)

    def _callProducer(self, producer: IPushProducer, method: str) -> None:
        try:
            getattr(producer, method)()
        except Exception:
            self._log.failure(
                "Producer {producer!r} raised in {method}",
                producer=producer,
                method=method,
            )

    @property
    def maxLineLength(self) -> int:
        """
        The longest line, in bytes, that L{sendToServer} takes.
        """
        return self._maxLineLength

    @property
    def state(self) -> str:
        """
        The connection's state, as L{ClientService.state} gives it.
        """
        return self.clientService.state

    def status(self) -> dict[str, object]:
        """
        Counters for a status line or a metrics page.
        """
        book = self.book
        stats = self.clientService.stats()
        return {
            "state": self.state,
            "attempts": stats.attempts,
            "failures": stats.failures,
            "connects": stats.connects,
            "disconnects": stats.disconnects,
            "secondsConnected": stats.secondsConnected,
            "written": book.written,
            "answered": book.answered,
            "failed": book.failed,
            "resent": book.resent,
            "maybeDelivered": book.maybeDelivered,
            "heartbeats": self.heartbeats,
            "pendingBytes": book.pendingBytes,
            "queued": book.queued,
            "inFlight": book.inFlight,
            "connections": self.connections,
        }

    def reconnect(self) -> None:
        """
        Move to a new connection now, make-before-break: the current
        connection stays until the new one is ready; then new requests go
        to the new one, while the old one delivers the replies it owes and
        closes.  No request fails and none is written twice.  (If the new
        connection cannot be made, the current one stays.)  Used by
        C{failback} to move back to a preferred server.
        """
        self.clientService.reconnect()

    def startService(self) -> None:
        """
        Accept requests and connect.  Started again while an earlier stop
        still waits for replies, it keeps the connection it has.
        """
        if self.running:
            self._log.warn("Duplicate startService {log_source}")
            return
        Service.startService(self)
        self.book.resume()
        if not self.clientService.running:
            self.clientService.startService()

    def stopService(self) -> Deferred[None]:
        """
        Accept no more requests, wait (up to C{stopTimeout}) for the replies
        still outstanding, then close the connection; whatever is left fails
        with L{ServiceStoppedError}.
        """
        Service.stopService(self)
        book = self.book
        book.accepting = False
        if not book.connected:
            book.failAll(ServiceStoppedError("the service was stopped"))
        idle = book.whenIdle()
        if not idle.called:
            timer = self._clock.callLater(self._stopTimeout, idle.cancel)
            idle.addBoth(lambda _: timer.cancel() if timer.active() else None)
        idle.addErrback(lambda _: None)

        def closeAndFailTheRest(_: object) -> Optional[Deferred[None]]:
            if self.running:
                # Started again while this stop drained: nothing to close.
                return None
            book.failAll(ServiceStoppedError("the service was stopped"))
            book.closing()
            return self.clientService.stopService()

        return idle.addCallback(closeAndFailTheRest).addCallback(lambda _: None)

    def _connected(self, protocol: IProtocol) -> None:
        proxy = cast(SayStuffClientProtocol, protocol)
        self.connections += 1
        self._protocol = proxy
        self._cancelChecks()
        self._paced = False
        self._lane = proxy.attach()
        if self._idleTimeout is not None:
            self._scheduleIdleCheck(self._idleTimeout)
        if self._heartbeat is not None:
            self._scheduleHeartbeat(self._heartbeat)
        if self._userConnected is not None:
            self._userConnected(protocol)

    def _disconnected(self, protocol: IProtocol, reason: Failure) -> None:
        self._protocol = None
        self._lane = None
        self._cancelChecks()
        if self._userDisconnected is not None:
            self._userDisconnected(protocol, reason)
        # The state is already the one the loss leads to; a reconnect asked
        # now runs once the service has scheduled its next attempt.
        self._cutShort()

    def _lostWithRequests(self, lane: Lane, inFlight: int) -> None:
        """
        The connection C{lane} belongs to died while C{inFlight} requests
        awaited their replies (the book has made them suspects; the
        machine has not heard of the loss yet).

        If a reply came since the last such loss, the server answers: the
        loss is likely one line's doing (a line that makes the server drop
        the connection), and every wait it causes would hold up every
        other request.  So the service connects again at once, with no
        failure counted (its suspects are then written with care).
        Otherwise the connection is a failed attempt for pacing purposes:
        the retry policy paces the next attempt as the failure after those
        before it (1, 2, ... such losses in a row), so that a server that
        accepts and resets every connection is not hammered; but see
        L{_cutShort}.
        """
        if lane is not self._lane or not inFlight or not self.running:
            return
        book = self.book
        if self.clientService.state != "connected":
            return
        if book.replies != self._repliesAtLoss:
            self._repliesAtLoss = book.replies
            self._fruitless = 0
            self._event(
                LogLevel.info,
                "The connection to {target} was lost while {requests} "
                "awaited replies: {then}",
                "lostInFlight",
                "connected",
                "connected",
                outstanding=inFlight,
                requests=_requests(inFlight),
                then="it had answered since the last such loss, so connecting "
                "again at once",
            )
            self.clientService.dropConnection()
            return
        self._fruitless += 1
        self.clientService.dropConnection(self._fruitless)
        self._paced = True

    def _cutShort(self) -> None:
        """
        Connect at once instead of waiting out the retry policy's delay
        after a connection that answered nothing, when a request waits
        that could be answered: one never written, or a suspect that never
        died alone.  (A line that makes the server drop the connection as
        soon as it reads it kills each connection it is written on, with
        nothing answered: without this, another client's request would
        wait out the policy's delays after each of its deaths.)

        At most one early reconnect follows a paced loss, at most
        L{EARLY_RECONNECTS} follow one another with no reply between, and
        none is made before the server's first reply: a server that
        accepts and resets every connection, answering nothing, gets the
        retry policy.
        """
        if not self._paced or not self.running:
            return
        book = self.book
        if not book.replies or not book.hasInnocentWaiting():
            return
        if book.replies != self._repliesAtEarly:
            self._repliesAtEarly = book.replies
            self._earlyInARow = 0
        if self._earlyInARow >= EARLY_RECONNECTS:
            return
        if self.clientService.state != "waiting":
            return
        self._earlyInARow += 1
        self._paced = False
        self._event(
            LogLevel.info,
            "The connection to {target} was lost while {requests} "
            "awaited replies: {then}",
            "lostInFlight",
            "waiting",
            "connecting",
            outstanding=book.queued,
            requests=_requests(book.queued),
            then="requests wait that may be answered, so connecting now",
        )
        self.clientService.reconnect()

    def _cancelChecks(self) -> None:
        "Call off the idle check and the next heartbeat of the connection."
        if self._idleCheck is not None and self._idleCheck.active():
            self._idleCheck.cancel()
        self._idleCheck = None
        if self._heartbeatCall is not None and self._heartbeatCall.active():
            self._heartbeatCall.cancel()
        self._heartbeatCall = None

    def _scheduleHeartbeat(self, delay: float) -> None:
        self._heartbeatCall = self._clock.callLater(delay, self._beat)

    def _beat(self) -> None:
        """
        If the connection has been idle for C{heartbeat} seconds (nothing
        written, nothing answered and no request awaited on it: one that
        timed out or was cancelled is not), send a heartbeat; the next
        beat is looked at once it is answered.  Otherwise look again when
        it could next be so: C{heartbeat} seconds after the idle spell
        began, so that a dead connection is found within C{heartbeat +
        heartbeatTimeout} of its last sign of life.
        """
        self._heartbeatCall = None
        heartbeat = self._heartbeat
        assert heartbeat is not None
        book = self.book
        protocol, lane = self._protocol, self._lane
        if protocol is None or lane is None:
            return
        if lane.awaited:
            self._scheduleHeartbeat(heartbeat)
            return
        idleFor = self._clock.seconds() - lane.progressAt
        if idleFor < heartbeat:
            self._scheduleHeartbeat(heartbeat - idleFor)
            return
        self.heartbeats += 1
        assert self._heartbeatTimeout is not None
        try:
            beat = book.heartbeat(self._heartbeatLine, self._heartbeatTimeout)
        except NotConnectedError:
            return
        beat.addCallbacks(
            self._heartbeatAnswered,
            self._heartbeatFailed,
            callbackArgs=(protocol,),
            errbackArgs=(protocol,),
        )

    def _event(
        self,
        level: LogLevel,
        format: str,
        event: str,
        fromState: str,
        toState: str,
        **fields: object,
    ) -> None:
        """
        Emit one of SayStuff's events, with the fields every reconnect event
        carries (see docs/events.md).
        """
        self._log.emit(
            level,
            format,
            endpoint=self.endpoint,
            target=describeEndpoint(self.endpoint),
            reconnectEvent=event,
            fromState=fromState,
            toState=toState,
            **fields,
        )

    def _heartbeatAnswered(
        self, reply: bytes, protocol: SayStuffClientProtocol
    ) -> None:
        heartbeat = self._heartbeat
        assert heartbeat is not None
        if protocol is self._protocol and self._heartbeatCall is None:
            self._scheduleHeartbeat(heartbeat)

    def _heartbeatFailed(
        self, reason: Failure, protocol: SayStuffClientProtocol
    ) -> None:
        """
        A heartbeat went unanswered: the connection is dead.  The first
        such loss is followed by a new connection at once; one after
        another with no reply between them count as failed attempts, which
        the retry policy paces (and may give up on).
        """
        if not reason.check(RequestTimedOut) or protocol is not self._protocol:
            return
        book = self.book
        if book.replies != self._repliesAtDeadBeat:
            self._deadBeats = 0
        self._deadBeats += 1
        self._repliesAtDeadBeat = book.replies
        if self._deadBeats == 1:
            then = "connecting again at once"
        else:
            then = (
                f"{self._deadBeats} connections in a row died so: the retry "
                "policy paces the next attempt"
            )
        self._event(
            LogLevel.warn,
            "No reply from {target} to a heartbeat in {seconds} seconds: "
            "dropping the connection, {then}",
            "heartbeatTimeout",
            "connected",
            "connected",
            seconds=self._heartbeatTimeout,
            then=then,
            deadInARow=self._deadBeats,
        )
        # The first death is free: connect again at once; each after it is
        # the failure after the deaths before it, which the policy paces.
        self.clientService.dropConnection(self._deadBeats - 1)

    def _protocolError(self, error: ServerProtocolError) -> None:
        """
        The server broke the protocol: say so, once, before the connection
        is aborted (what was in flight fails with C{error}).
        """
        self._event(
            LogLevel.warn,
            "The server at {target} broke the protocol, dropping the "
            "connection: {reason}",
            "protocolError",
            "connected",
            "connected",
            reason=str(error),
            length=error.length,
            preview=error.preview,
        )

    def _retire(self, protocol: IProtocol) -> None:
        """
        A move left C{protocol}'s connection behind: it takes no new
        requests, and closes once it has delivered every reply it owes.
        One that owes replies for longer than C{idleTimeout} is aborted,
        and what it held is written again on the new connection.
        """
        proxy = cast(SayStuffClientProtocol, protocol)
        transport = proxy.transport
        assert transport is not None
        lane = proxy.lane
        if lane is None:
            transport.loseConnection()
            return
        outstanding = lane.awaited
        if not outstanding:
            lane.retire(transport.loseConnection)
            return
        self._event(
            LogLevel.info,
            "Moved to a new connection to {target}; the old one closes once "
            "{replies} in",
            "draining",
            "handingOver",
            "connected",
            outstanding=outstanding,
            replies="its last reply is"
            if outstanding == 1
            else f"its {outstanding} replies are",
        )
        if self._idleTimeout is not None:
            abort = transport.abortConnection  # type: ignore[attr-defined]
            proxy.overdue = self._clock.callLater(self._idleTimeout, abort)
        lane.retire(transport.loseConnection)

    def _scheduleIdleCheck(self, delay: float) -> None:
        self._idleCheck = self._clock.callLater(delay, self._checkIdle)

    def _checkIdle(self) -> None:
        """
        Abort the connection if requests await their replies on it and not
        one reply came for C{idleTimeout} seconds (counted from its last
        reply, or from the write that ended a spell with nothing awaited on
        it); else look again when that could next be so.  Only the current
        connection's requests count: one left behind by a move has its own
        limit (see L{_retire}).
        """
        self._idleCheck = None
        idleTimeout = self._idleTimeout
        assert idleTimeout is not None
        lane = self._lane
        if lane is None or not lane.awaited:
            self._scheduleIdleCheck(idleTimeout)
            return
        quiet = self._clock.seconds() - lane.progressAt
        if quiet < idleTimeout:
            self._scheduleIdleCheck(idleTimeout - quiet)
            return
        self._event(
            LogLevel.warn,
            "No reply from {target} in {seconds} seconds while {requests} "
            "awaited: dropping the connection",
            "idleTimeout",
            "connected",
            "connected",
            seconds=idleTimeout,
            outstanding=lane.awaited,
            requests=_requests(lane.awaited),
        )
        assert self._protocol is not None
        transport = self._protocol.transport
        assert transport is not None
        transport.abortConnection()  # type: ignore[attr-defined]


def _requests(count: int) -> str:
    "C{count} requests, in words."
    return "1 request" if count == 1 else f"{count} requests"
