"""
Why a SayStuff request did not get its reply.
"""

from __future__ import annotations


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
