"""
Why a SayStuff request did not get its reply.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure

from .._errors import GaveUpConnecting

#: How many bytes of an offending line an error (and its log event) shows.
PREVIEW_BYTES = 40


class NotConnectedError(Exception):
    """
    There is no connection, and the service was told not to queue requests
    while disconnected.
    """


class QueueFullError(NotConnectedError):
    """
    The queue of requests waiting for a connection is full; the request was
    not accepted.  It only happens while disconnected, so it is a
    L{NotConnectedError}: code that catches that one catches this too.
    """


class NotConnectedGaveUp(NotConnectedError, GaveUpConnecting):
    """
    The service gave up connecting, so the request was refused at once; it
    refuses requests until it is stopped and started again.  Both a
    L{NotConnectedError} (the request could not be sent, as the seed's
    contract has it) and a L{GaveUpConnecting <reconnect.GaveUpConnecting>}
    carrying the give-up's cause (C{failure}) and C{attempts}.
    """

    def __init__(self, failure: Failure, attempts: int) -> None:
        GaveUpConnecting.__init__(self, failure, attempts)


class RequestTimedOut(Exception):
    """
    No reply came within the request's timeout.
    """


class ServerProtocolError(Exception):
    """
    The server broke the line protocol (a reply line over the limit, a
    reply with no request to answer, a bare LF inside a reply); the
    connection was dropped, and what was in flight handled as for any lost
    connection (a L{MaybeDelivered} names this error).  L{readLine
    <reconnect.saystuff._protocol.SayStuffClientProtocol.readLine>} fails
    with it.

    @ivar length: the offending line's length in bytes, if there is one.
    @ivar preview: its first L{PREVIEW_BYTES} bytes.
    """

    def __init__(self, message: str, line: Optional[bytes] = None) -> None:
        self.length: Optional[int] = None
        self.preview: Optional[bytes] = None
        if line is not None:
            self.length = len(line)
            self.preview = line[:PREVIEW_BYTES]
            message = (
                f"{message} (a line of {self.length} bytes beginning {self.preview!r})"
            )
        super().__init__(message)


class ServiceStoppedError(Exception):
    """
    The service was stopped before the request was answered, or a request
    was made while it was stopped.
    """


class MaybeDelivered(ConnectionLost):
    """
    The connection dropped after the request was written and before its
    reply came: the server may or may not have run it.  It is not written
    again (the request was not idempotent, resending was off or over
    budget, or it was written C{resendLimit} times already).  A
    C{ConnectionLost}, as such failures were before.
    """

    def __str__(self) -> str:
        why = " ".join(str(arg) for arg in self.args).rstrip(".")
        return (
            "the connection was lost after the request was written and "
            f"before its reply came, so it may or may not have run: {why}"
        )


class ResendBudgetExhausted(MaybeDelivered):
    """
    The request would have been written again after a cut, but the resend
    budget was spent: a server that keeps failing does not get the whole
    backlog again at every cut.
    """
