"""
What a service was configured with beyond its endpoint, its factory and its
retry policy: one object for every set of services configured alike.

A process may run thousands of services made by the same line of code, with
the same clock, callbacks and limits.  Each keeping its own copy of a dozen
settings would cost more than the rest of its machine; so services given the
very same objects share one L{Settings}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional
from weakref import WeakValueDictionary

from twisted.internet.interfaces import IProtocol, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ._errors import GaveUpConnecting
from ._keepalive import TCPKeepAlive


class Settings:
    """
    One service's settings, never changed once made (they may be shared).

    @ivar log: the logger of the service's class.
    @ivar immediateFailover: a C{bool}, or an endpoint's C{failsOver} whose
        truth is asked at each lost connection.
    """

    __slots__ = (
        "clock",
        "log",
        "prepareConnection",
        "attemptTimeout",
        "isFatal",
        "resetAfter",
        "immediateFailover",
        "onConnected",
        "onDisconnected",
        "onGaveUp",
        "retireConnection",
        "tcpKeepAlive",
        "__weakref__",
    )

    def __init__(
        self,
        clock: IReactorTime,
        log: Logger,
        prepareConnection: Optional[Callable[[IProtocol], object]] = None,
        attemptTimeout: Optional[float] = None,
        isFatal: Optional[Callable[[Failure], bool]] = None,
        resetAfter: Optional[float] = None,
        immediateFailover: object = False,
        onConnected: Optional[Callable[[IProtocol], object]] = None,
        onDisconnected: Optional[Callable[[IProtocol, Failure], object]] = None,
        onGaveUp: Optional[Callable[[GaveUpConnecting], object]] = None,
        retireConnection: Optional[Callable[[IProtocol], object]] = None,
        tcpKeepAlive: Optional[TCPKeepAlive] = None,
    ) -> None:
        self.clock = clock
        self.log = log
        self.prepareConnection = prepareConnection
        self.attemptTimeout = attemptTimeout
        self.isFatal = isFatal
        self.resetAfter = resetAfter
        self.immediateFailover = immediateFailover
        self.onConnected = onConnected
        self.onDisconnected = onDisconnected
        self.onGaveUp = onGaveUp
        self.retireConnection = retireConnection
        self.tcpKeepAlive = tcpKeepAlive


_FIELDS = Settings.__slots__[:-1]

# Keyed by the identities of the values: a Settings holds its values, so no
# identity in a live key can be reused by another object.
_alike: WeakValueDictionary[tuple[int, ...], Settings] = WeakValueDictionary()


def sharedSettings(settings: Settings) -> Settings:
    """
    The L{Settings} already in use for the very same objects as
    C{settings}, if there is one; otherwise C{settings}, from now on the
    one to share.
    """
    key = tuple(id(getattr(settings, name)) for name in _FIELDS)
    return _alike.setdefault(key, settings)
