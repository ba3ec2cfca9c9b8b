"""
L{ConnectionStats}: what a L{reconnect.ClientService} has done so far, as
numbers a status page or a metrics exporter can show.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConnectionStats:
    """
    A snapshot of one service's counters and gauges.

    @ivar state: the machine's state (see L{reconnect.ClientService.state}).
    @ivar attempts: connection attempts started, ever.
    @ivar failures: attempts that failed, ever.
    @ivar failedAttempts: attempts (or connections) failed in a row: what
        the retry policy was last asked about.
    @ivar connects: connections made (and prepared), ever.
    @ivar disconnects: established connections that ended, ever.
    @ivar connected: whether a connection is up now.
    @ivar secondsConnected: seconds spent connected, over all connections,
        the current one included.
    """

    state: str
    attempts: int
    failures: int
    failedAttempts: int
    connects: int
    disconnects: int
    connected: bool
    secondsConnected: float
