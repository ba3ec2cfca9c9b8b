"""
The SayStuff wire protocol, client side: CRLF-delimited lines, each reply
answering the oldest unanswered request.  The protocol only moves bytes;
L{RequestBook <reconnect.saystuff._book.RequestBook>} does the matching.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Optional

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from ._book import Lane, RequestBook
from ._errors import ServerProtocolError

DELIMITER = b"\r\n"
_LF = 10


def checkLine(line: object, maxLength: int) -> None:
    """
    Refuse what cannot be sent as one line, before anything is sent.

    @raise TypeError: if C{line} is not C{bytes}.
    @raise ValueError: if it holds CR or LF, or is longer than C{maxLength}.
    """
    if not isinstance(line, bytes):
        raise TypeError(f"a line must be bytes, not {type(line).__name__}")
    if b"\n" in line or b"\r" in line:
        raise ValueError(f"a line must not contain CR or LF: {line[:40]!r}")
    if len(line) > maxLength:
        raise ValueError(f"line of {len(line)} bytes is over the limit of {maxLength}")


class SayStuffClientProtocol(Protocol):
    """
    Splits what the server sends into lines and hands each to its lane of
    the book; writes the book's lines with their delimiter.  The service
    attaches it to the book (L{attach}) once the connection is ready.

    What would hand one request's reply to another is a protocol error: a
    reply over the length limit, one that answers no request (a line before
    any request was written, or an extra one), and a bare LF inside a
    reply.  C{onProtocolError} is told (the service logs it), and the
    connection is aborted: what was in flight is handled as for any lost
    connection (written again on the next one, or failed with
    L{MaybeDelivered <reconnect.saystuff.MaybeDelivered>}, whose message
    names the protocol error).  A server that greets each connection with
    a line of its own is read first, with L{readLine} from
    C{prepareConnection}.
    """

    def __init__(
        self,
        book: RequestBook,
        maxLineLength: int,
        onProtocolError: Optional[Callable[[ServerProtocolError], object]] = None,
    ) -> None:
        self._book = book
        self._maxLineLength = maxLineLength
        self._onProtocolError = onProtocolError
        self._buffer = b""
        self._lineReaders: list[Deferred[bytes]] = []
        self.lane: Optional[Lane] = None
        self.overdue: Optional[IDelayedCall] = None
        self._strayLine = False

    def attach(self) -> Lane:
        """
        Take requests from the book: from now on, replies answer them.  A
        line the server had begun before (part of it is buffered) is not
        one.
        """
        self._strayLine = bool(self._buffer)
        self.lane = self._book.attach(self.writeLines, self.writeLine)
        return self.lane

    def readLine(self) -> Deferred[bytes]:
        """
        Read one line the server sends before any request: a greeting, for
        C{prepareConnection} to check.  Lines nobody reads before the
        connection is attached are protocol errors.

        @return: a C{Deferred} that fires with the line, or fails with the
            reason the connection was lost first (or with
            L{ServerProtocolError} if the line is over the length limit).
        @raise RuntimeError: once the connection is attached: every line
            from then on is a reply.
        """
        if self.lane is not None:
            raise RuntimeError("the connection carries requests: lines are replies")
        reader: Deferred[bytes] = Deferred()
        self._lineReaders.append(reader)
        return reader

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        lane, self.lane = self.lane, None
        if self.overdue is not None and self.overdue.active():
            self.overdue.cancel()
        readers, self._lineReaders = self._lineReaders, []
        for reader in readers:
            reader.errback(reason)
        if lane is not None:
            lane.detach(reason)

    def writeLine(self, line: bytes) -> None:
        """
        Write one line and its delimiter.
        """
        self.transport.write(line + DELIMITER)  # type: ignore[union-attr]

    def writeLines(self, lines: Sequence[bytes]) -> None:
        """
        Write C{lines}, each followed by the delimiter, in one write.
        """
        if lines:
            payload = DELIMITER.join(lines) + DELIMITER
            self.transport.write(payload)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if self._buffer:
            data = self._buffer + data
        lines = data.split(DELIMITER)
        rest = lines.pop()
        self._buffer = rest
        try:
            # The unfinished line may end with the CR of a delimiter whose
            # LF has not come yet: that CR is not part of the line.
            unfinished = len(rest) - rest.endswith(b"\r")
            limit = self._maxLineLength
            if unfinished > limit:
                raise ServerProtocolError(
                    f"a reply line is over the limit of {limit} bytes", rest
                )
            if _LF in rest:
                raise ServerProtocolError("a bare LF inside a reply line", rest)
            # Every LF but those of the delimiters is a bare one: one count
            # over the read spares a search of each line.
            if data.count(_LF) != len(lines):
                bare = next(line for line in lines if _LF in line)
                self._deliverBefore(lines, bare)
                raise ServerProtocolError("a bare LF inside a reply line", bare)
            if max(map(len, lines), default=0) > limit:
                long = next(line for line in lines if len(line) > limit)
                self._deliverBefore(lines, long)
                raise ServerProtocolError(
                    f"a reply line is over the limit of {limit} bytes", long
                )
            lines = self._greetings(lines)
            lane = self.lane
            if lane is None:
                return
            # Requests that the replies' callbacks send go out together,
            # in one write, once every reply of this read is handed out.
            held: list[bytes] = []
            lane.holdWrites(held)
            try:
                lane.repliesReceived(lines)
            finally:
                lane.releaseWrites()
                if held:
                    self.writeLines(held)
        except ServerProtocolError as error:
            self._protocolError(error)

    def _deliverBefore(self, lines: list[bytes], bad: bytes) -> None:
        """
        Hand out the good lines of a read that come before the C{bad} one
        (each is C{bytes}, so identity finds the first bad line).
        """
        good = []
        for line in lines:
            if line is bad:
                break
            good.append(line)
        good = self._greetings(good)
        if self.lane is not None:
            self.lane.repliesReceived(good)

    def _greetings(self, lines: list[bytes]) -> list[bytes]:
        """
        Before the connection is attached, hand C{lines} to those waiting
        in L{readLine}.  Every line of a read that came before the
        connection was attached came before any request was written, even
        if a reader attached it (the connection is attached as soon as
        C{prepareConnection} is done): none is a reply.

        @return: the lines left for the lane (none if it was not attached
            when they came).
        @raise ServerProtocolError: if a line comes before the connection is
            attached and nobody reads it.
        """
        if self.lane is not None and not self._strayLine:
            return lines
        if self.lane is not None and lines:
            raise ServerProtocolError(
                "the server sent a line before any request was written", lines[0]
            )
        while lines:
            if not self._lineReaders:
                raise ServerProtocolError(
                    "the server sent a line before any request was written",
                    lines[0],
                )
            self._lineReaders.pop(0).callback(lines.pop(0))
        return lines

    def _protocolError(self, error: ServerProtocolError) -> None:
        """
        Say why, let go of the lane as lost with C{error}, and abort.
        """
        self._buffer = b""
        if self._onProtocolError is not None:
            self._onProtocolError(error)
        readers, self._lineReaders = self._lineReaders, []
        for reader in readers:
            reader.errback(Failure(error))
        lane, self.lane = self.lane, None
        if lane is not None:
            lane.detach(Failure(error))
        self.transport.abortConnection()  # type: ignore[union-attr]


class SayStuffClientFactory(Factory):
    """
    Builds a L{SayStuffClientProtocol} for each connection to the server.
    """

    noisy = False

    def __init__(
        self,
        book: RequestBook,
        maxLineLength: int,
        onProtocolError: Optional[Callable[[ServerProtocolError], object]] = None,
    ) -> None:
        self._book = book
        self._maxLineLength = maxLineLength
        self._onProtocolError = onProtocolError

    def buildProtocol(self, addr: object) -> Optional[SayStuffClientProtocol]:
        protocol = SayStuffClientProtocol(
            self._book, self._maxLineLength, self._onProtocolError
        )
        protocol.factory = self
        return protocol
