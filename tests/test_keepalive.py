"""
C{ClientService(tcpKeepAlive=...)}: the options are on a real connection's
socket, read back with C{getsockopt}; a transport without a TCP socket is
left alone, with one debug event.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from reconnect import ClientService, TCPKeepAlive, setDebugEvents
from reconnect._keepalive import socketOf
from reconnect.saystuff import RestartableLineServer, SayStuffToServerService
from reconnect.testing import FakeEndpoint


def readBack(sock: socket.socket) -> dict[str, int]:
    names = ["TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_USER_TIMEOUT"]
    values = {"SO_KEEPALIVE": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)}
    for name in names:
        if hasattr(socket, name):
            values[name] = sock.getsockopt(socket.IPPROTO_TCP, getattr(socket, name))
    return values


@pytest_twisted.ensureDeferred
async def test_optionsOnARealConnection() -> None:
    """
    Each connection's socket carries the options asked for.
    """
    server = RestartableLineServer(reactor)
    port = await server.start()
    settings = TCPKeepAlive(idle=7, interval=3, count=4, userTimeout=12.5)
    service = ClientService(
        TCP4ClientEndpoint(reactor, "127.0.0.1", port),
        Factory.forProtocol(Protocol),
        tcpKeepAlive=settings,
    )
    service.startService()
    try:
        protocol = await service.whenConnected()
        sock = socketOf(protocol.transport)
        assert sock is not None
        values = readBack(sock)
        assert values["SO_KEEPALIVE"] == 1
        expected = {
            "TCP_KEEPIDLE": 7,
            "TCP_KEEPINTVL": 3,
            "TCP_KEEPCNT": 4,
            "TCP_USER_TIMEOUT": 12500,
        }
        for name, value in expected.items():
            if name in values:
                assert values[name] == value, name
    finally:
        await service.stopService()
        await server.kill()


@pytest_twisted.ensureDeferred
async def test_saystuffPassesItOn() -> None:
    """
    C{tcpKeepAlive=True} on SayStuff: the defaults, on its connection.
    """
    server = RestartableLineServer(reactor)
    port = await server.start()
    stuff = SayStuffToServerService("127.0.0.1", port, tcpKeepAlive=True)
    stuff.startService()
    try:
        assert await stuff.sendToServer(b"hi") == b"hi"
        protocol = await stuff.clientService.whenConnected()
        sock = socketOf(protocol.transport)
        assert sock is not None
        values = readBack(sock)
        assert values["SO_KEEPALIVE"] == 1
        if "TCP_KEEPIDLE" in values:
            assert values["TCP_KEEPIDLE"] == 60
    finally:
        await stuff.stopService()
        await server.kill()


@pytest_twisted.ensureDeferred
async def test_unixSocketLeftAlone(tmp_path: Path) -> None:
    """
    A UNIX socket has no TCP keepalive: the connection is made and used as
    usual, and one debug event (debug events on) says the options were not
    set.
    """
    setDebugEvents(True)
    path = str(tmp_path / "s")
    listening = reactor.listenUNIX(path, Factory.forProtocol(Protocol))
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    service = ClientService(
        UNIXClientEndpoint(reactor, path),
        Factory.forProtocol(Protocol),
        tcpKeepAlive=True,
    )
    service.startService()
    try:
        await service.whenConnected()
    finally:
        setDebugEvents(False)
        globalLogPublisher.removeObserver(events.append)
        await service.stopService()
        await listening.stopListening()
    skipped = [e for e in events if e.get("reconnectEvent") == "keepAliveSkipped"]
    assert len(skipped) == 1
    assert skipped[0]["log_level"].name == "debug"


def test_inMemoryTransportLeftAlone() -> None:
    clock = Clock()
    endpoint = FakeEndpoint()
    service = ClientService(
        endpoint, Factory.forProtocol(Protocol), clock=clock, tcpKeepAlive=True
    )
    service.startService()
    endpoint.last.succeed()
    assert service.state == "connected"
    service.stopService()


@pytest.mark.parametrize(
    "bad",
    [1, "yes", 60.0],
)
def test_badTcpKeepAlive(bad: Any) -> None:
    with pytest.raises(TypeError, match="tcpKeepAlive"):
        ClientService(FakeEndpoint(), Factory(), tcpKeepAlive=bad)


@pytest.mark.parametrize(
    "kwargs",
    [{"idle": 0}, {"interval": -1}, {"count": 0}, {"userTimeout": float("nan")}],
)
def test_badSettings(kwargs: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        TCPKeepAlive(**kwargs)


def test_valueSemantics() -> None:
    assert TCPKeepAlive() == TCPKeepAlive(idle=60, interval=10, count=6)
    assert TCPKeepAlive(idle=5) != TCPKeepAlive()
    assert "idle=60.0" in repr(TCPKeepAlive())
