"""
The SayStuff wire protocol, client side: CRLF-delimited lines, each reply
answering the oldest unanswered request.  The protocol only moves bytes;
L{RequestBook <reconnect.saystuff._book.RequestBook>} does the matching.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from ._book import Lane, RequestBook
from ._errors import ServerProtocolError

DELIMITER = b"\r\n"


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

    A reply over the length limit, or one that answers no request, is a
    protocol error: everything in flight fails with it and the connection
    is aborted, so the service starts afresh on a new one.
    """

    def __init__(self, book: RequestBook, maxLineLength: int) -> None:
        self._book = book
        self._maxLineLength = maxLineLength
        self._buffer = b""
        self.lane: Optional[Lane] = None
        self.overdue: Optional[IDelayedCall] = None

    def attach(self) -> Lane:
        """
        Take requests from the book: from now on, replies answer them.
        """
        self.lane = self._book.attach(self.writeLines, self.writeLine)
        return self.lane

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        lane, self.lane = self.lane, None
        if self.overdue is not None and self.overdue.active():
            self.overdue.cancel()
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
            if unfinished > self._maxLineLength:
                raise ServerProtocolError(
                    f"a reply line is over the limit of {self._maxLineLength} bytes"
                )
            lane = self.lane
            if lane is None:
                if lines:
                    raise ServerProtocolError("the server spoke before being asked")
                return
            limit = self._maxLineLength
            longest = max(map(len, lines), default=0)
            if longest > limit:
                # The lines before the long one are still good replies.
                good = []
                for line in lines:
                    if len(line) > limit:
                        break
                    good.append(line)
                lane.repliesReceived(good)
                raise ServerProtocolError(
                    f"a reply line of {longest} bytes is over the limit of {limit}"
                )
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
            self._buffer = b""
            if self.lane is not None:
                self.lane.protocolError(error)
            self.transport.abortConnection()  # type: ignore[union-attr]


class SayStuffClientFactory(Factory):
    """
    Builds a L{SayStuffClientProtocol} for each connection to the server.
    """

    noisy = False

    def __init__(self, book: RequestBook, maxLineLength: int) -> None:
        self._book = book
        self._maxLineLength = maxLineLength

    def buildProtocol(self, addr: object) -> Optional[SayStuffClientProtocol]:
        protocol = SayStuffClientProtocol(self._book, self._maxLineLength)
        protocol.factory = self
        return protocol
