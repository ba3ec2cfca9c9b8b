"""
L{TCPKeepAlive}: the kernel's own probes of an idle TCP connection, set on
each connection's socket when it is made.
"""

from __future__ import annotations

import socket
from typing import Optional

from ._checks import checkCount, checkSeconds


class TCPKeepAlive:
    """
    Socket options that make the kernel notice a dead peer on an idle
    connection: C{SO_KEEPALIVE} and, where the platform has them,
    C{TCP_KEEPIDLE} (seconds idle before the first probe), C{TCP_KEEPINTVL}
    (seconds between probes), C{TCP_KEEPCNT} (unanswered probes before the
    connection is dropped) and C{TCP_USER_TIMEOUT} (milliseconds written
    data may stay unacknowledged).  Options a platform lacks are skipped.

    The defaults notice a dead peer within about 60 + 10 * 6 = 120 seconds.
    """

    __slots__ = ("idle", "interval", "count", "userTimeout")

    def __init__(
        self,
        idle: float = 60.0,
        interval: float = 10.0,
        count: int = 6,
        userTimeout: Optional[float] = None,
    ) -> None:
        """
        @param idle: seconds of silence before the first probe (whole
            seconds; at least 1).
        @param interval: seconds between probes (at least 1).
        @param count: probes unanswered before the connection is dropped.
        @param userTimeout: if given, seconds written data may go
            unacknowledged before the connection is dropped.
        """
        checkSeconds("idle", idle, zeroAllowed=False)
        checkSeconds("interval", interval, zeroAllowed=False)
        checkCount("count", count, least=1)
        checkSeconds("userTimeout", userTimeout, zeroAllowed=False)
        self.idle = idle
        self.interval = interval
        self.count = count
        self.userTimeout = userTimeout

    def options(self) -> list[tuple[int, int, int]]:
        """
        The (level, option, value) triples this platform can set.
        """
        wanted = [
            (socket.SOL_SOCKET, "SO_KEEPALIVE", 1),
            (socket.IPPROTO_TCP, "TCP_KEEPIDLE", max(1, round(self.idle))),
            (socket.IPPROTO_TCP, "TCP_KEEPINTVL", max(1, round(self.interval))),
            (socket.IPPROTO_TCP, "TCP_KEEPCNT", self.count),
        ]
        if self.userTimeout is not None:
            wanted.append(
                (socket.IPPROTO_TCP, "TCP_USER_TIMEOUT", round(self.userTimeout * 1000))
            )
        return [
            (level, getattr(socket, name), value)
            for level, name, value in wanted
            if hasattr(socket, name)
        ]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TCPKeepAlive):
            return NotImplemented
        return self.options() == other.options()

    def __repr__(self) -> str:
        return (
            f"TCPKeepAlive(idle={self.idle!r}, interval={self.interval!r}, "
            f"count={self.count!r}, userTimeout={self.userTimeout!r})"
        )


def socketOf(transport: object) -> Optional[socket.socket]:
    """
    The TCP socket under C{transport} (through TLS and other wrapping
    transports), or C{None} if there is none.
    """
    for _ in range(5):
        if transport is None:
            return None
        getHandle = getattr(transport, "getHandle", None)
        handle = getHandle() if getHandle is not None else None
        if isinstance(handle, socket.socket) and handle.type == socket.SOCK_STREAM:
            if handle.family in (socket.AF_INET, socket.AF_INET6):
                return handle
            return None
        transport = getattr(transport, "transport", None)
    return None


def applyKeepAlive(settings: TCPKeepAlive, transport: object) -> bool:
    """
    Set C{settings} on C{transport}'s socket.

    @return: whether they were set: a transport with no TCP socket (UNIX,
        in-memory) is left alone.
    """
    sock = socketOf(transport)
    if sock is None:
        return False
    try:
        for level, option, value in settings.options():
            sock.setsockopt(level, option, value)
    except OSError:
        return False
    return True
