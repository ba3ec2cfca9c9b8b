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
from typing import Any, Optional

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

#: L{RequestBook.submit}'s C{timeout} when the request takes the book's.
BOOK_TIMEOUT: Any = object()


def _suspicion(request: _Request) -> tuple[bool, int]:
    """
    The order in which suspects are written: those that never died alone
    first, then the oldest first.
    """
    return (request.alone > 0, request.serial)


class _Request:
    """
    One line awaiting its reply.  It is also its C{Deferred}'s canceller.

    @ivar abandoned: the caller no longer waits (timed out or cancelled)
        but the line was written, so its reply must still be matched and
        thrown away.
    @ivar writes: how many times the line was written (each write but the
        last one's connection died before the reply came).
    @ivar lane: the lane it was last written on, if it was.
    @ivar alone: how many of those connections died while this line was
        the only one written on them and unanswered: each time, the line
        is the likely cause (a "poison" line).
    @ivar serial: the order in which requests were accepted.
    @ivar cost: the bytes it is charged while held: its line, plus the
        book's C{requestOverhead}, twice over if it has a timer.
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
        "alone",
        "serial",
        "cost",
    )

    def __init__(self, line: bytes, book: RequestBook, idempotent: bool) -> None:
        self.line = line
        self.book = book
        self.idempotent = idempotent
        self.timer: Optional[IDelayedCall] = None
        self.abandoned = False
        self.writes = 0
        self.lane: Optional[Lane] = None
        self.alone = 0
        self.serial = 0
        self.cost = 0
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
        "probed",
        "innocentsNext",
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
        # While the book probes suspects on this lane: whether one was
        # written alone on it yet, and whose turn the next write is.
        self.probed = False
        self.innocentsNext = True

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
            book.pendingBytes -= request.cost
            if book._paused:
                book._maybeResume()
            request.deferred.callback(line)
        if book._direct is None and book._current is self:
            book._pump()
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
            book._current = book._direct = None
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
        The connection is gone.  Its requests in flight become suspects,
        written again with care (see L{RequestBook}), or fail, if not
        resent; abandoned ones are dropped.  One that was the only line
        written and unanswered on it is the likely cause: it is marked so.
        """
        self._whenDrained = None
        inFlight, self.inFlight = self.inFlight, deque()
        live = [r for r in inFlight if not r.abandoned]
        self.awaited = 0
        alone = len(inFlight) == 1 and bool(live)
        if alone:
            live[0].alone += 1
        self._book.awaited -= len(live)
        self._book._lost(self, live, reason, alone)


class RequestBook:
    """
    Requests from their acceptance to their reply (or their failure).

    While a connection is attached, a new request is written at once and
    joins its lane's in-flight FIFO; otherwise it waits in the queue, which
    is written in order as soon as a connection is attached.  Replies answer
    their lane's requests in order.

    Requests that were written on a connection that died unanswered are
    I{suspects}: one of them may be a line that makes the server drop the
    connection.  After a loss with no reply since the loss before it (or
    since the start), the next connection writes one request at a time
    (the oldest that never died alone first) until a reply comes.  While
    there are suspects, the current connection I{probes}
    instead of pipelining: it writes a batch only once every request it
    carries is answered (or abandoned), and never puts a suspect beside a
    request that has not died.  On each connection the oldest suspect goes
    first, alone, then the other suspects that never died alone, together;
    then the queue (requests never written) and the suspects that died
    alone take turns, the queue first, each of those suspects alone.  A
    request that dies alone is charged its write, as every request written
    on a connection that died is; one that was held back is not.  Once no
    suspect is left, pipelining resumes.

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
        lost: Callable[[Lane, int], object] = lambda lane, inFlight: None,
        queuedWhileDisconnected: Callable[[], object] = lambda: None,
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
            costs, so that empty lines are not free.  One with a timeout is
            charged twice as much: its timer about doubles what it holds.
        @param resendLimit: how many times a request may be written again
            after its connection died; one whose connection dies after
            that many resends fails with L{MaybeDelivered}.  C{None}: no
            limit.
        @param lost: called with a lane whose connection died and the number
            of requests that awaited their replies on it, once the book has
            dealt with them.
        @param queuedWhileDisconnected: called when a request is queued
            while no connection is attached.
        """
        self._clock = clock
        self._overhead = requestOverhead
        self._timerOverhead = 2 * requestOverhead
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
        self._suspects: deque[_Request] = deque()
        self._serial = 0
        self._careful = False
        self._repliesAtLoss = 0
        self._lostHook = lost
        self._queuedHook = queuedWhileDisconnected
        # The attached lane, and the lane new requests are written on at
        # once: the same, but None while probing.
        self._current: Optional[Lane] = None
        self._direct: Optional[Lane] = None
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
        Requests waiting to be written (suspects included).
        """
        return len(self._queued) + len(self._suspects)

    def hasInnocentWaiting(self) -> bool:
        """
        Whether a request waits to be written that never died alone on a
        connection: one never written, or a suspect not yet caught alone.
        """
        if self._queued:
            return True
        return any(not request.alone for request in self._suspects)

    @property
    def probing(self) -> bool:
        """
        Whether a connection is attached that does not pipeline: suspects
        wait to be written with care (see the class's docstring).
        """
        return self._current is not None and self._direct is None

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
        timeout: Optional[float] = BOOK_TIMEOUT,
        idempotent: Optional[bool] = None,
    ) -> Deferred[bytes]:
        """
        Accept a request for C{line} (already validated).

        @param timeout: seconds to wait for the reply; C{None} for no
            limit; by default, the book's.
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
        self._serial += 1
        request.serial = self._serial
        if timeout is BOOK_TIMEOUT:
            timeout = self._timeout
        lane = self._direct
        size = len(line) + (self._overhead if timeout is None else self._timerOverhead)
        request.cost = size
        if lane is None:
            disconnected = self._current is None
            if disconnected and not self._queueWhileDisconnected:
                raise NotConnectedError("not connected to the server")
            queued = len(self._queued) + len(self._suspects)
            if queued >= self._queueSize:
                raise QueueFullError(
                    f"{queued} requests already wait for a connection "
                    f"(queueSize={self._queueSize})"
                )
            if (
                self._queueBytes is not None
                and self._queuedBytes + size > self._queueBytes
            ):
                raise QueueFullError(
                    "the requests waiting for a connection already take "
                    f"{self._queuedBytes} of queueBytes={self._queueBytes} "
                    f"bytes (each counted as its line + {self._overhead}, twice "
                    "that with a timeout)"
                )
            self._queued.append(request)
            self._queuedBytes += size
            if queued + 1 >= self._queueSize and not self._paused:
                self._setPaused(True)
            if disconnected:
                self._queuedHook()
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
        lane = self._direct
        if lane is None:
            raise NotConnectedError("no connection to send a heartbeat on")
        request = _Heartbeat(line, self, False)
        request.cost = len(line) + self._timerOverhead
        self.pendingBytes += request.cost
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
        if (
            self.pendingBytes <= self._lowWater
            and len(self._queued) + len(self._suspects) < self._queueSize
        ):
            self._setPaused(False)

    def attach(
        self,
        writeLines: WriteLines,
        writeLine: Optional[Callable[[bytes], None]] = None,
    ) -> Lane:
        """
        A connection is ready: it takes new requests from now on, and
        everything queued is written on it, in order (with suspects, it
        probes first).

        @param writeLine: writes one line (by default, through
            C{writeLines}).
        @return: the connection's lane.
        """
        lane = Lane(self, writeLines, writeLine)
        self._lanes.append(lane)
        self._current = lane
        self._direct = None
        self._pump()
        return lane

    def _pump(self) -> None:
        """
        While probing, write the next batch on the current lane once every
        request it carries is answered or abandoned; with no suspect left,
        write the queue and pipeline again.
        """
        lane = self._current
        if lane is None or self._direct is not None:
            return
        for request in lane.inFlight:
            if not request.abandoned:
                return
        suspects, queued = self._suspects, self._queued
        if self._careful and self.replies == self._repliesAtLoss:
            self._writeOne(lane)
            return
        self._careful = False
        convicted = bool(suspects) and suspects[0].alone > 0
        if not suspects or (convicted and queued and lane.innocentsNext):
            if suspects:
                lane.innocentsNext = False
                self._queuedBytes -= sum(r.cost for r in queued)
            else:
                self._direct = lane
                self._queuedBytes = 0
            if queued:
                self._queued = deque()
                lane.write(list(queued))
            if self._paused:
                self._maybeResume()
            return
        lane.innocentsNext = True
        if convicted or not lane.probed:
            lane.probed = True
            batch = [suspects.popleft()]
        else:
            batch = []
            while suspects and not suspects[0].alone:
                batch.append(suspects.popleft())
        self._queuedBytes -= sum(r.cost for r in batch)
        lane.write(batch)
        if self._paused:
            self._maybeResume()

    def closing(self) -> None:
        """
        The current connection is being closed: new requests wait for the
        next one rather than being written on it.
        """
        self._current = self._direct = None

    def _writeOne(self, lane: Lane) -> None:
        """
        Write one request alone on C{lane}: the oldest of those that never
        died alone, else the oldest suspect; with nothing waiting, pipeline
        again.
        """
        suspects, queued = self._suspects, self._queued
        source: Optional[deque[_Request]] = None
        if suspects and not suspects[0].alone:
            source = suspects
        if queued and (source is None or queued[0].serial < suspects[0].serial):
            source = queued
        if source is None:
            source = suspects
        if not source:
            self._direct = lane
            return
        request = source.popleft()
        self._queuedBytes -= request.cost
        lane.write([request])
        if self._paused:
            self._maybeResume()

    def _lost(
        self, lane: Lane, live: list[_Request], reason: Failure, alone: bool = False
    ) -> None:
        """
        C{lane}'s connection died with C{live} written and awaited (C{alone}:
        only one request was written and unanswered on it).  A request
        that died alone is the likely cause: it is written again alone, and
        so does not draw on the resend budget (the resend limit bounds it).
        """
        self._lanes.remove(lane)
        if self._current is lane:
            self._current = self._direct = None
        if live:
            # No reply since the last such loss: the next connection writes
            # one request at a time until one is answered.
            self._careful = self.replies == self._repliesAtLoss
            self._repliesAtLoss = self.replies
        why = reason.getErrorMessage().rstrip(".")
        if any(request.heartbeat for request in live):
            beats = [request for request in live if request.heartbeat]
            live = [request for request in live if not request.heartbeat]
            self._failEach(beats, ConnectionLost(why))
        inFlight = len(live)
        if not (self._resend and self.accepting):
            self._failMaybeDelivered(live, MaybeDelivered(why))
            self._lostHook(lane, inFlight)
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
        if again and self._budget is not None and not alone:
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
        if again:
            self._suspects = deque(sorted([*self._suspects, *again], key=_suspicion))
            self._queuedBytes += sum(request.cost for request in again)
            if self._current is not None:
                self._direct = None
                self._current.probed = False
                self._pump()
        self._checkIdle()
        self._lostHook(lane, inFlight)

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
        queued.extendleft(reversed(self._suspects))
        self._suspects = deque()
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
        if self._idleWaiters and not self._queued and not self._suspects:
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
        self.pendingBytes -= request.cost
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
            self._queuedBytes -= request.cost
        elif request in self._suspects:
            self._suspects.remove(request)
            self._queuedBytes -= request.cost
        else:
            self.awaited -= 1
            lane = request.lane
            if lane is not None:
                lane.awaited -= 1
                if not lane.awaited:
                    lane.progressAt = self._clock.seconds()
            if self._direct is None:
                self._pump()
        self._checkIdle()

    def _timedOut(self, request: _Request) -> None:
        request.timer = None
        self._withdraw(request)
        request.deferred.errback(
            Failure(
                RequestTimedOut(f"no reply to {request.line[:40]!r} within its timeout")
            )
        )
