"""
The bookkeeping of SayStuff requests, free of I/O: what is queued, what is in
flight, which reply belongs to which request, what timed out or was
cancelled.

A connection lends the book a function that writes lines and gets a
L{Lane}: its own FIFO of requests in flight, through which its replies and
its end come back.  The book never sees a transport, so it can be tested
with a list standing in for the wire.  Usually one lane is open; after a
make-before-break move there are more: new requests go to the newest, and
the older ones drain.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Optional

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from .._errors import GaveUpConnecting
from ._budget import ResendBudget
from ._errors import (
    MaybeDelivered,
    NotConnectedError,
    NotConnectedGaveUp,
    QueueFullError,
    RequestTimedOut,
    ResendBudgetExhausted,
    ServerProtocolError,
    ServiceStoppedError,
)

WriteLines = Callable[[Sequence[bytes]], None]


class _Request:
    """
    One line awaiting its reply.  It is also its C{Deferred}'s canceller.

    @ivar abandoned: the caller no longer waits (timed out or cancelled)
        but the line was written, so its reply must still be matched and
        thrown away.
    @ivar writes: how many times the line was written (each write but the
        last one's connection died before the reply came).
    @ivar lane: the lane it was last written on, if it was.
    """

    __slots__ = (
        "line",
        "deferred",
        "timer",
        "abandoned",
        "book",
        "idempotent",
        "writes",
        "lane",
    )

    def __init__(self, line: bytes, book: RequestBook, idempotent: bool) -> None:
        self.line = line
        self.book = book
        self.idempotent = idempotent
        self.timer: Optional[IDelayedCall] = None
        self.abandoned = False
        self.writes = 0
        self.lane: Optional[Lane] = None
        self.deferred: Deferred[bytes] = Deferred(self)

    heartbeat = False

    def __call__(self, deferred: Deferred[bytes]) -> None:
        self.book._withdraw(self)


class _Heartbeat(_Request):
    """
    A request the service sends itself to see that an idle connection is
    alive: never queued, never resent.
    """

    __slots__ = ()
    heartbeat = True


class Lane:
    """
    One connection's side of the book: the requests written on it, oldest
    first, awaiting their replies in that order.

    @ivar draining: the lane takes no new requests; once every request on
        it is answered (or abandoned), C{whenDrained} is called.
    @ivar awaited: how many requests on this lane still await their reply
        (abandoned ones are not counted).
    @ivar progressAt: while requests are awaited, when the lane last made
        progress: its last reply came, or the first of them was written;
        while none is, since when (its last reply, the moment the last
        awaited one was abandoned, or its attach).  A connection's idle
        check and its heartbeats count from it.
    """

    __slots__ = (
        "_book",
        "_writeLines",
        "_writeLine",
        "_writers",
        "inFlight",
        "draining",
        "_whenDrained",
        "awaited",
        "progressAt",
    )

    def __init__(
        self,
        book: RequestBook,
        writeLines: WriteLines,
        writeLine: Optional[Callable[[bytes], None]] = None,
    ) -> None:
        self._book = book
        self._writeLines = writeLines
        self._writeLine = writeLine or (lambda line: writeLines((line,)))
        self._writers = (self._writeLines, self._writeLine)
        self.inFlight: deque[_Request] = deque()
        self.draining = False
        self._whenDrained: Optional[Callable[[], object]] = None
        self.awaited = 0
        self.progressAt = book._clock.seconds()

    def holdWrites(self, held: list[bytes]) -> None:
        """
        Until L{releaseWrites}, put the lines written on this lane into
        C{held} instead of writing them, for the caller to write together.
        """
        self._writeLines, self._writeLine = held.extend, held.append

    def releaseWrites(self) -> None:
        """
        Write lines again as they come.
        """
        self._writeLines, self._writeLine = self._writers

    def write(self, requests: list[_Request]) -> None:
        """
        Write C{requests} (none of them abandoned) on this lane, in order.
        """
        book = self._book
        if not self.awaited and requests:
            self.progressAt = book._clock.seconds()
        self.awaited += len(requests)
        book.awaited += len(requests)
        self.inFlight.extend(requests)
        book.written += len(requests)
        for request in requests:
            request.writes += 1
            request.lane = self
        self._writeLines([request.line for request in requests])

    def replyReceived(self, line: bytes) -> None:
        """
        A reply: it answers the oldest request in flight on this lane.

        @raise ServerProtocolError: if no request is in flight.
        """
        self.repliesReceived((line,))

    def repliesReceived(self, lines: Sequence[bytes]) -> None:
        """
        Replies, in order, each answering the oldest request in flight on
        this lane (one call for all the lines of one read).

        @raise ServerProtocolError: if a reply finds no request in flight
            (the replies before it are delivered).
        """
        book = self._book
        popleft = self.inFlight.popleft
        overhead = book._overhead
        if lines:
            self.progressAt = book._clock.seconds()
        for line in lines:
            try:
                request = popleft()
            except IndexError:
                raise ServerProtocolError(
                    "a reply came with no request to answer", line
                ) from None
            book.replies += 1
            if request.abandoned:
                continue
            if request.timer is not None:
                request.timer.cancel()
            self.awaited -= 1
            book.awaited -= 1
            book.answered += 1
            book.pendingBytes -= len(request.line) + overhead
            if book._paused:
                book._maybeResume()
            request.deferred.callback(line)
        if self.draining:
            self._checkDrained()
        if book._idleWaiters:
            book._checkIdle()

    def retire(self, whenDrained: Callable[[], object]) -> None:
        """
        Take no new requests; call C{whenDrained} once every request on this
        lane is answered or abandoned (at once if none is left).
        """
        book = self._book
        if book._current is self:
            book._current = None
        self.draining = True
        self._whenDrained = whenDrained
        self._checkDrained()

    def _checkDrained(self) -> None:
        whenDrained = self._whenDrained
        if whenDrained is not None and self.idle():
            self._whenDrained = None
            whenDrained()

    def idle(self) -> bool:
        """
        Whether no request on this lane still awaits its reply.
        """
        return all(request.abandoned for request in self.inFlight)

    def detach(self, reason: Failure) -> None:
        """
        The connection is gone.  Its requests in flight are written again
        on the current lane, or go back to the front of the queue (or fail,
        if not resending); abandoned ones are dropped.
        """
        self._whenDrained = None
        inFlight, self.inFlight = self.inFlight, deque()
        live = [r for r in inFlight if not r.abandoned]
        self.awaited = 0
        self._book.awaited -= len(live)
        self._book._lost(self, live, reason)


class RequestBook:
    """
    Requests from their acceptance to their reply (or their failure).

    While a connection is attached, a new request is written at once and
    joins its lane's in-flight FIFO; otherwise it waits in the queue, which
    is written in order as soon as a connection is attached.  Replies answer
    their lane's requests in order.

    @ivar pendingBytes: what the requests accepted and not yet settled
        (queued or in flight) cost: their lines' bytes plus
        C{requestOverhead} each; what back-pressure watches.
    @ivar awaited: requests written and still awaited (in flight, not
        abandoned), on every lane.
    @ivar written: lines written, resends included.
    @ivar answered: requests that got their reply.
    @ivar failed: requests that failed, timed out or were cancelled.
    @ivar resent: requests written again after a connection was lost.
    @ivar maybeDelivered: requests failed with L{MaybeDelivered} (or
        L{ResendBudgetExhausted}) instead of being written again.
    @ivar replies: reply lines received (also for abandoned requests); a
        connection that makes no progress leaves it unchanged.
    """

    def __init__(
        self,
        clock: IReactorTime,
        queueSize: int = 1000,
        queueWhileDisconnected: bool = True,
        resendOnReconnect: bool = True,
        timeout: Optional[float] = None,
        idempotent: bool = True,
        resendBudget: Optional[ResendBudget] = None,
        queueBytes: Optional[int] = None,
        highWater: Optional[int] = None,
        lowWater: int = 0,
        pressure: Callable[[bool], object] = lambda paused: None,
        requestOverhead: int = 0,
        resendLimit: Optional[int] = None,
    ) -> None:
        """
        @param idempotent: the default of L{submit}'s C{idempotent}.
        @param resendBudget: limits resends; C{None}: no limit.
        @param queueBytes: the most bytes the queue may hold (each request
            counted as its line plus C{requestOverhead}); C{None}: no limit
            but C{queueSize}.
        @param highWater: at this many C{pendingBytes} or more, C{pressure}
            is called with C{True} (pause); C{None}: never.
        @param lowWater: back at or under this, C{pressure} is called with
            C{False} (resume).
        @param requestOverhead: the bytes each request is charged on top of
            its line, in C{queueBytes} and C{pendingBytes}: what holding it
            costs, so that empty lines are not free.
        @param resendLimit: how many times a request may be written again
            after its connection died; one whose connection dies after
            that many resends fails with L{MaybeDelivered}.  C{None}: no
            limit.
        """
        self._clock = clock
        self._overhead = requestOverhead
        self._resendLimit = resendLimit
        self.awaited = 0
        self._queueSize = queueSize
        self._queueWhileDisconnected = queueWhileDisconnected
        self._resend = resendOnReconnect
        self._timeout = timeout
        self._idempotent = idempotent
        self._budget = resendBudget
        self._answeredAtGrant = 0
        self._queueBytes = queueBytes
        self._queuedBytes = 0
        # No high watermark is one that is never reached.
        self._highWater = sys.maxsize if highWater is None else highWater
        # Without a high watermark, only a full queue pauses: bytes do not
        # hold up resuming.
        self._lowWater = sys.maxsize if highWater is None else lowWater
        self._pressure = pressure
        self._paused = False
        self.pendingBytes = 0
        self._queued: deque[_Request] = deque()
        self._current: Optional[Lane] = None
        self._lanes: list[Lane] = []
        self._idleWaiters: list[Deferred[None]] = []
        self.accepting = True
        self._gaveUp: Optional[GaveUpConnecting] = None
        self.written = 0
        self.answered = 0
        self.failed = 0
        self.resent = 0
        self.maybeDelivered = 0
        self.replies = 0

    @property
    def queued(self) -> int:
        """
        Requests waiting for a connection.
        """
        return len(self._queued)

    @property
    def inFlight(self) -> int:
        """
        Lines written and not yet answered (abandoned ones included), on
        every lane.
        """
        return sum(len(lane.inFlight) for lane in self._lanes)

    @property
    def connected(self) -> bool:
        """
        Whether a lane takes new requests.
        """
        return self._current is not None

    @property
    def lanes(self) -> int:
        """
        How many connections are attached (more than one while older ones
        drain after a move).
        """
        return len(self._lanes)

    def submit(
        self,
        line: bytes,
        timeout: Optional[float] = None,
        idempotent: Optional[bool] = None,
    ) -> Deferred[bytes]:
        """
        Accept a request for C{line} (already validated).

        @param timeout: seconds to wait for the reply; C{None} for the
            book's default.
        @param idempotent: whether the request may run twice: if so, one
            written and unanswered when its connection drops is written
            again; if not, it fails with L{MaybeDelivered}.  C{None} for
            the book's default.
        @raise ServiceStoppedError: if the book accepts no more requests.
        @raise NotConnectedGaveUp: if the service gave up connecting.
        @raise NotConnectedError: if disconnected and not queueing.
        @raise QueueFullError: if disconnected and the queue is full.
        """
        if not self.accepting:
            raise ServiceStoppedError("the service is stopped")
        if self._gaveUp is not None:
            raise NotConnectedGaveUp(self._gaveUp.failure, self._gaveUp.attempts)
        request = _Request(
            line, self, self._idempotent if idempotent is None else idempotent
        )
        lane = self._current
        size = len(line) + self._overhead
        if lane is None:
            if not self._queueWhileDisconnected:
                raise NotConnectedError("not connected to the server")
            if len(self._queued) >= self._queueSize:
                raise QueueFullError(
                    f"{len(self._queued)} requests already wait for a connection "
                    f"(queueSize={self._queueSize})"
                )
            if (
                self._queueBytes is not None
                and self._queuedBytes + size > self._queueBytes
            ):
                raise QueueFullError(
                    "the requests waiting for a connection already take "
                    f"{self._queuedBytes} of queueBytes={self._queueBytes} "
                    f"bytes (each counted as its line + {self._overhead})"
                )
            self._queued.append(request)
            self._queuedBytes += size
            if len(self._queued) >= self._queueSize and not self._paused:
                self._setPaused(True)
        else:
            if not lane.awaited:
                lane.progressAt = self._clock.seconds()
            lane.awaited += 1
            self.awaited += 1
            lane.inFlight.append(request)
            request.writes = 1
            request.lane = lane
            self.written += 1
            lane._writeLine(line)
        self.pendingBytes += size
        if self.pendingBytes >= self._highWater and not self._paused:
            self._setPaused(True)
        if timeout is None:
            timeout = self._timeout
        if timeout is not None:
            request.timer = self._clock.callLater(timeout, self._timedOut, request)
        return request.deferred

    def heartbeat(self, line: bytes, timeout: float) -> Deferred[bytes]:
        """
        Write C{line} on the current connection as a heartbeat: its reply is
        awaited for C{timeout} seconds (then it fails with
        L{RequestTimedOut}); if the connection drops first, it fails with
        C{ConnectionLost} and is not written again.  Counted as written
        and answered like any request.

        @raise NotConnectedError: if no connection takes requests.
        """
        lane = self._current
        if lane is None:
            raise NotConnectedError("no connection to send a heartbeat on")
        request = _Heartbeat(line, self, False)
        self.pendingBytes += len(line) + self._overhead
        lane.write([request])
        request.timer = self._clock.callLater(timeout, self._timedOut, request)
        return request.deferred

    @property
    def paused(self) -> bool:
        """
        Whether producers are asked to pause: over the high watermark (or
        with the queue full) and not yet back at the low one.
        """
        return self._paused

    def _setPaused(self, paused: bool) -> None:
        self._paused = paused
        self._pressure(paused)

    def _maybeResume(self) -> None:
        if self.pendingBytes <= self._lowWater and len(self._queued) < self._queueSize:
            self._setPaused(False)

    def attach(
        self,
        writeLines: WriteLines,
        writeLine: Optional[Callable[[bytes], None]] = None,
    ) -> Lane:
        """
        A connection is ready: it takes new requests from now on, and
        everything queued is written on it, in order.

        @param writeLine: writes one line (by default, through
            C{writeLines}).
        @return: the connection's lane.
        """
        lane = Lane(self, writeLines, writeLine)
        self._lanes.append(lane)
        self._current = lane
        if self._queued:
            queued, self._queued = self._queued, deque()
            self._queuedBytes = 0
            lane.write(list(queued))
            if self._paused:
                self._maybeResume()
        return lane

    def closing(self) -> None:
        """
        The current connection is being closed: new requests wait for the
        next one rather than being written on it.
        """
        self._current = None

    def _lost(self, lane: Lane, live: list[_Request], reason: Failure) -> None:
        self._lanes.remove(lane)
        if self._current is lane:
            self._current = None
        why = reason.getErrorMessage().rstrip(".")
        if any(request.heartbeat for request in live):
            beats = [request for request in live if request.heartbeat]
            live = [request for request in live if not request.heartbeat]
            self._failEach(beats, ConnectionLost(why))
        if not (self._resend and self.accepting):
            self._failMaybeDelivered(live, MaybeDelivered(why))
            return
        again = [request for request in live if request.idempotent]
        if len(again) < len(live):
            unsafe = [request for request in live if not request.idempotent]
            self._failMaybeDelivered(unsafe, MaybeDelivered(why))
        limit = self._resendLimit
        if limit is not None and any(r.writes > limit for r in again):
            worn = [request for request in again if request.writes > limit]
            again = [request for request in again if request.writes <= limit]
            self._failMaybeDelivered(
                worn,
                MaybeDelivered(
                    f"{why}; its connection was lost each of the {limit + 1} "
                    "times it was written: not written again"
                ),
            )
        if again and self._budget is not None:
            allowed = self._budget.grant(
                len(again),
                self.answered - self._answeredAtGrant,
                self._clock.seconds(),
            )
            self._answeredAtGrant = self.answered
            if allowed < len(again):
                overBudget, again = again[allowed:], again[:allowed]
                self._failMaybeDelivered(
                    overBudget,
                    ResendBudgetExhausted(f"{why}; not resent: over the resend budget"),
                )
        self.resent += len(again)
        if self._current is not None:
            if again:
                self._current.write(again)
        else:
            self._queued.extendleft(reversed(again))
            self._queuedBytes += sum(
                len(request.line) + self._overhead for request in again
            )
        self._checkIdle()

    def _failMaybeDelivered(
        self, requests: list[_Request], error: MaybeDelivered
    ) -> None:
        self.maybeDelivered += len(requests)
        self._failEach(requests, error)

    def gaveUp(self, error: GaveUpConnecting) -> None:
        """
        No connection is coming: fail every request held with C{error}, and
        refuse new ones with it until L{resume}.
        """
        self._gaveUp = error
        self.failAll(error)

    def resume(self) -> None:
        """
        Accept requests again (the service was started).
        """
        self.accepting = True
        self._gaveUp = None

    def failAll(self, error: Exception) -> None:
        """
        Fail every request, queued or in flight, with C{error}.
        """
        queued, self._queued = self._queued, deque()
        self._queuedBytes = 0
        inFlight: list[_Request] = []
        for lane in self._lanes:
            inFlight.extend(r for r in lane.inFlight if not r.abandoned)
            lane.inFlight = deque()
            lane.awaited = 0
        self.awaited -= len(inFlight)
        self._failEach(inFlight + list(queued), error)

    def whenIdle(self) -> Deferred[None]:
        """
        A C{Deferred} that fires once no request is queued or in flight.
        """
        waiter: Deferred[None] = Deferred()
        self._idleWaiters.append(waiter)
        self._checkIdle()
        return waiter

    def _checkIdle(self) -> None:
        for lane in [lane for lane in self._lanes if lane.draining]:
            lane._checkDrained()
        if self._idleWaiters and not self._queued:
            if all(lane.idle() for lane in self._lanes):
                self._fireIdleWaiters()

    def _fireIdleWaiters(self) -> None:
        waiters, self._idleWaiters = self._idleWaiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _failEach(self, requests: Iterable[_Request], error: Exception) -> None:
        for request in requests:
            if request.timer is not None:
                request.timer.cancel()
                request.timer = None
            request.abandoned = True
            self.failed += 1
            self._settled(request)
            request.deferred.errback(Failure(error))
        self._checkIdle()

    def _settled(self, request: _Request) -> None:
        """
        C{request} failed or was withdrawn: its bytes are pending no more.
        """
        self.pendingBytes -= len(request.line) + self._overhead
        if self._paused:
            self._maybeResume()

    def _withdraw(self, request: _Request) -> None:
        """
        The caller gave up on C{request} (cancelled, or out of time): a
        queued one is removed and never sent; one in flight keeps its place,
        so that later replies still meet their own requests.
        """
        if request.abandoned:
            return
        request.abandoned = True
        if request.timer is not None:
            if request.timer.active():
                request.timer.cancel()
            request.timer = None
        self.failed += 1
        self._settled(request)
        if request in self._queued:
            self._queued.remove(request)
            self._queuedBytes -= len(request.line) + self._overhead
        else:
            self.awaited -= 1
            lane = request.lane
            if lane is not None:
                lane.awaited -= 1
                if not lane.awaited:
                    lane.progressAt = self._clock.seconds()
        self._checkIdle()

    def _timedOut(self, request: _Request) -> None:
        request.timer = None
        self._withdraw(request)
        request.deferred.errback(
            Failure(
                RequestTimedOut(f"no reply to {request.line[:40]!r} within its timeout")
            )
        )
