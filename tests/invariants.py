"""
What must hold of a service's machine between any two steps: each state
keeps its own data and nothing else, and what that data says is so.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock

from reconnect._machine import (
    _IDLE,
    _Connected,
    _Connecting,
    _HandingOver,
    _Stopping,
    _Waiting,
)

DATA_OF_STATE: dict[str, type] = {
    "init": type(_IDLE),
    "connecting": _Connecting,
    "waiting": _Waiting,
    "connected": _Connected,
    "handingOver": _HandingOver,
    "reconnecting": _Connected,
    "dropping": _Connected,
    "disconnecting": _Stopping,
    "restarting": _Stopping,
    "stopped": type(_IDLE),
    "gaveUp": type(_IDLE),
}


def checkMachine(service: Any, clock: Clock) -> None:
    """
    Assert what the state of C{service}'s machine says about its data, its
    attempt, its connection and its clock.
    """
    machine = service._machine
    state = machine.state()
    data = machine._data
    assert type(data) is DATA_OF_STATE[state], (state, data)
    connected = data.connected
    if state in ("init", "stopped", "gaveUp"):
        assert data is _IDLE
        assert clock.getDelayedCalls() == []
    if state == "waiting":
        assert data.retryCall.active()
    if state in ("connecting", "handingOver"):
        assert data.attempt._progress is not None
    if state in ("connected", "handingOver"):
        assert connected is not None
        assert not connected.proxy._transport.disconnecting
    if state in ("reconnecting", "dropping", "disconnecting", "restarting"):
        assert connected is not None and connected.proxy._transport.disconnecting
    if connected is not None and connected.resetCall is not None:
        assert connected.resetCall.active()
    for retired in machine._retired or {}:
        assert connected is None or retired is not connected.proxy
    if state == "gaveUp":
        assert service.lastFailure is not None
    stats = service.stats()
    assert stats.state == state
    assert stats.connected == (connected is not None)
