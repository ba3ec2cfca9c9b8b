"""
L{ClientService} over real TCP on 127.0.0.1: a server that goes away and
comes back, and memory across many reconnect cycles.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater

from reconnect import ClientService
from reconnect.testing import FakeEndpoint


class Tracked(Protocol):
    """
    A server protocol its factory can find, to drop the connection.
    """

    def connectionMade(self) -> None:
        self.factory.live.add(self)

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.live.discard(self)


def serverFactory() -> Factory:
    factory = Factory.forProtocol(Tracked)
    factory.live = set()  # type: ignore[attr-defined]
    return factory


async def listen(factory: Factory, port: int = 0) -> IListeningPort:
    endpoint = TCP4ServerEndpoint(reactor, port, interface="127.0.0.1")
    return await endpoint.listen(factory)


async def until(predicate: Any, timeout: float = 10.0) -> None:
    """
    Let the reactor run until C{predicate()} is true.
    """
    waited = 0.0
    while not predicate():
        assert waited < timeout, "timed out waiting"
        await deferLater(reactor, 0.01, lambda: None)
        waited += 0.01


@pytest_twisted.ensureDeferred
async def test_serverGoesAwayAndComesBack() -> None:
    """
    The server stops listening and drops its connection; while it is gone
    the service keeps trying; once it listens again (same port) the service
    reconnects and C{whenConnected} fires with the new protocol.
    """
    server = serverFactory()
    port = await listen(server)
    portNumber = port.getHost().port
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", portNumber)
    service = ClientService(
        endpoint, Factory.forProtocol(Protocol), retryPolicy=lambda n: 0.05
    )
    service.startService()
    try:
        first = await service.whenConnected()
        await until(lambda: len(server.live) == 1)

        await port.stopListening()
        for protocol in list(server.live):
            protocol.transport.abortConnection()
        await until(lambda: service.state == "waiting")
        assert service.failedAttempts >= 1
        await deferLater(reactor, 0.2, lambda: None)
        assert service.state in ("waiting", "connecting")
        assert service.failedAttempts >= 2

        port = await listen(server, portNumber)
        second = await service.whenConnected()
        assert second is not first
        assert isinstance(second, Protocol)
        await until(lambda: len(server.live) == 1)
    finally:
        await service.stopService()
        await port.stopListening()


def test_noGrowthAcrossReconnectCycles() -> None:
    """
    Twenty thousand connect/disconnect cycles leave no memory behind: the
    traced size after the second half is within a small margin of that after
    the first.
    """
    clock = Clock()
    endpoint = FakeEndpoint(immediately=True)
    service = ClientService(
        endpoint, Factory.forProtocol(Protocol), retryPolicy=lambda n: 0.0, clock=clock
    )

    def cycles(count: int) -> None:
        for _ in range(count):
            endpoint.last.lose()
            clock.advance(0)
            del endpoint.attempts[:-1]

    service.startService()
    tracemalloc.start()
    try:
        cycles(10_000)
        gc.collect()
        first, _ = tracemalloc.get_traced_memory()
        cycles(10_000)
        gc.collect()
        second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert second - first < 64 * 1024, (first, second)
    stopped: Deferred[None] = service.stopService()
    endpoint.last.lose()
    assert stopped.called
