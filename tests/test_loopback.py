"""
Over real TCP on 127.0.0.1: SayStuff through a server that is killed and
restarted while requests keep coming, and the legacy factory through
C{reactor.connectTCP} and L{EndpointConnector}.
"""

from __future__ import annotations

from typing import Any

import pytest_twisted
from helpers import sleep, talkingFactory, until
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint

from reconnect import EndpointConnector
from reconnect.saystuff import RestartableLineServer, SayStuffToServerService


@pytest_twisted.ensureDeferred
async def test_saystuffThroughServerRestarts() -> None:
    """
    Requests keep coming while the server is killed and restarted three
    times: every request ends with its own reply, none lost, none
    mismatched.
    """
    server = RestartableLineServer(reactor)
    port = await server.start()
    # No resend budget: on a loaded machine more of a round's 300 requests
    # are still in flight at a kill than the default budget's 100 resends
    # (the budget has tests of its own).
    service = SayStuffToServerService(
        "127.0.0.1",
        port,
        reactor=reactor,
        retryPolicy=lambda n: 0.02,
        queueSize=5000,
        resendBudget=None,
    )
    service.startService()
    replies: list[Deferred[bytes]] = []
    lines: list[bytes] = []
    try:
        for round in range(4):
            for n in range(300):
                line = b"round %d line %d" % (round, n)
                lines.append(line)
                replies.append(service.sendToServer(line))
                if n % 25 == 0:
                    await sleep(0.005)
            if round < 3:
                await server.kill()
                await sleep(0.05)
                await server.start()
        answers = await gatherResults(replies)
        assert answers == lines
        status = service.status()
        assert status["answered"] == len(lines)
        assert status["failed"] == 0
        assert status["connections"] >= 2
    finally:
        for reply in replies:
            reply.addErrback(lambda _: None)
        await service.stopService()
        await server.kill()


async def exerciseLegacy(connect: Any) -> None:
    server = RestartableLineServer(reactor)
    port = await server.start()
    factory = talkingFactory()
    connector = connect(port, factory)
    try:
        await until(lambda: factory.heard == [b"hello 1"])
        await server.kill()
        await sleep(0.3)
        await server.start()
        await until(lambda: b"hello 2" in factory.heard)
        factory.stopTrying()
        connector.disconnect()
        await until(lambda: not server.factory.live)
        await sleep(0.5)
        assert factory.connections == 2
        assert connector.state == "disconnected"
    finally:
        factory.stopTrying()
        connector.disconnect()
        await server.kill()


@pytest_twisted.ensureDeferred
async def test_legacyFactoryThroughConnectTCP() -> None:
    await exerciseLegacy(
        lambda port, factory: reactor.connectTCP("127.0.0.1", port, factory)
    )


@pytest_twisted.ensureDeferred
async def test_legacyFactoryThroughEndpointConnector() -> None:
    def connect(port: int, factory: Any) -> EndpointConnector:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        connector = EndpointConnector(endpoint, factory, reactor)
        connector.connect()
        return connector

    await exerciseLegacy(connect)
