"""
Why a SayStuff request did not get its reply.
"""

from __future__ import annotations

from twisted.internet.error import ConnectionLost


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


class RequestTimedOut(Exception):
    """
    No reply came within the request's timeout.
    """


class ServerProtocolError(Exception):
    """
    The server broke the line protocol (a reply line over the limit, or a
    reply with no request to answer); the connection was dropped.
    """


class ServiceStoppedError(Exception):
    """
    The service was stopped before the request was answered, or a request
    was made while it was stopped.
    """


class MaybeDelivered(ConnectionLost):
    """
    The connection dropped after the request was written and before its
    reply came: the server may or may not have run it.  It is not written
    again (the request was not idempotent, or resending was off or over
    budget).  A C{ConnectionLost}, as such failures were before.
    """


class ResendBudgetExhausted(MaybeDelivered):
    """
    The request would have been written again after a cut, but the resend
    budget was spent: a server that keeps failing does not get the whole
    backlog again at every cut.
    """
