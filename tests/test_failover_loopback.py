"""
FailoverEndpoint over real TCP on 127.0.0.1: a first server whose
handshake never completes, and SayStuff through servers killed one after
another while requests keep coming.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest
import pytest_twisted
from helpers import CountingEchoFactory, killServersInTurn, sleep, until
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall

from reconnect import ClientService, FailoverEndpoint
from reconnect.saystuff import RestartableLineServer, SayStuffToServerService

STAGGER = 0.25


@pytest.fixture
def unresponsive() -> Iterator[int]:
    """
    A port on 127.0.0.1 whose listener never accepts and whose backlog is
    full, so that a new connection's handshake never completes.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for s in [*fillers, listener]:
        s.close()


@pytest_twisted.ensureDeferred
async def test_hangingFirstEndpoint(unresponsive: int) -> None:
    """
    With a first endpoint whose connect hangs and a healthy second, the
    service is connected to the second about C{stagger} seconds after it
    started (checked with a loose bound for slow machines), not after a
    TCP timeout.
    """
    server = RestartableLineServer(reactor)
    port = await server.start()
    endpoint = FailoverEndpoint(
        [f"tcp:host=127.0.0.1:port={unresponsive}", f"tcp:host=127.0.0.1:port={port}"],
        stagger=STAGGER,
        reactor=reactor,
    )
    service = ClientService(endpoint, Factory.forProtocol(Protocol), clock=reactor)
    began = reactor.seconds()
    service.startService()
    try:
        await service.whenConnected()
        took = reactor.seconds() - began
        assert STAGGER <= took < STAGGER + 1.0, took
        assert endpoint.current == f"tcp:127.0.0.1:{port}"
    finally:
        await service.stopService()
        await server.kill()


@pytest_twisted.ensureDeferred
async def test_saystuffThroughServersKilledInTurn() -> None:
    """
    Three servers, most preferred first; the one in use is killed (and
    brought back a little later) again and again while requests keep
    coming: every request is answered with its own line, and the client
    moves on without waiting out its retry delay (2 s here) while another
    server is up.
    """
    servers = [RestartableLineServer(reactor) for _ in range(3)]
    ports = [await s.start() for s in servers]
    endpoint = FailoverEndpoint(
        [f"tcp:host=127.0.0.1:port={p}" for p in ports],
        stagger=STAGGER,
        reactor=reactor,
    )
    service = SayStuffToServerService(
        endpoint=endpoint, reactor=reactor, retryPolicy=lambda n: 2.0, queueSize=10_000
    )
    service.startService()
    try:
        gaps, _ = await killServersInTurn(
            service, endpoint, dict(zip(ports, servers, strict=True)), kills=4
        )
        # The retry delay is 2 s: answered well before it, each time (the
        # bound is loose for slow machines; it takes a few milliseconds).
        assert max(gaps) < 1.0, gaps
    finally:
        await service.stopService()
        for server in servers:
            if server.running:
                await server.kill()
        await until(lambda: not any(s.running for s in servers))


async def failingBackOver(
    preferred: RestartableLineServer, standby: RestartableLineServer, failback: float
) -> tuple[FailoverEndpoint, list[int]]:
    """
    Start C{preferred} and C{standby}: an endpoint over them, in that order,
    that fails back after C{failback} seconds, and their ports.
    """
    ports = [await preferred.start(), await standby.start()]
    endpoint = FailoverEndpoint(
        [f"tcp:host=127.0.0.1:port={p}" for p in ports],
        failback=failback,
        reactor=reactor,
    )
    return endpoint, ports


@pytest_twisted.ensureDeferred
async def test_failbackOverLoopback() -> None:
    """
    The preferred server dies, the client moves to the second; the
    preferred comes back: within C{failback} seconds (plus a loose margin)
    the traffic is on it again, and no request failed on the way.
    """
    preferred, standby = RestartableLineServer(reactor), RestartableLineServer(reactor)
    endpoint, ports = await failingBackOver(preferred, standby, failback=0.5)
    service = SayStuffToServerService(
        endpoint=endpoint, reactor=reactor, retryPolicy=lambda n: 2.0
    )
    service.startService()
    first, second = (f"tcp:127.0.0.1:{p}" for p in ports)
    try:
        assert await service.sendToServer(b"one") == b"one"
        assert endpoint.current == first
        await preferred.kill()
        assert await service.sendToServer(b"two") == b"two"
        assert endpoint.current == second
        await preferred.start()
        back = reactor.seconds()
        await until(lambda: endpoint.current == first, timeout=5)
        assert reactor.seconds() - back < 0.5 + 1.0
        assert await service.sendToServer(b"three") == b"three"
        assert service.book.failed == 0
    finally:
        await service.stopService()
        for server in (preferred, standby):
            if server.running:
                await server.kill()


@pytest_twisted.ensureDeferred
async def test_failbackUnderTrafficIsMakeBeforeBreak() -> None:
    """
    Requests flow all along; the preferred server dies and comes back.
    Within C{failback} + 1 s the traffic is on it again, and the move back
    fails no request and writes none twice: every request sent after the
    kill settled reached exactly one server, once.
    """
    preferred, standby = RestartableLineServer(reactor), RestartableLineServer(reactor)
    for server in (preferred, standby):
        server.factory = CountingEchoFactory()
    failback = 0.5
    endpoint, ports = await failingBackOver(preferred, standby, failback)
    service = SayStuffToServerService(
        endpoint=endpoint,
        reactor=reactor,
        retryPolicy=lambda n: 2.0,
        queueSize=10_000,
    )
    service.startService()
    replies: list[Deferred[bytes]] = []
    sent: list[bytes] = []

    def sendSome() -> None:
        for _ in range(20):
            line = b"request %d" % len(sent)
            sent.append(line)
            replies.append(service.sendToServer(line))

    sending = LoopingCall(sendSome)
    sending.clock = reactor
    try:
        await service.sendToServer(b"hello")
        sending.start(0.01)
        # Up for over a second: its loss fails over at once (no backoff).
        await sleep(1.2)
        await preferred.kill()
        await until(lambda: endpoint.current == f"tcp:127.0.0.1:{ports[1]}")
        await sleep(0.3)
        settled, resentBefore = len(sent), service.book.resent
        await preferred.start()
        back = reactor.seconds()
        preferred.factory.seen.clear()
        await until(lambda: preferred.factory.seen, timeout=5)
        assert reactor.seconds() - back < failback + 1.0
        await sleep(0.5)
        sending.stop()
        answers = await gatherResults(replies)
        assert answers == sent
        assert service.book.failed == 0
        assert service.book.resent == resentBefore
        seen = preferred.factory.seen + standby.factory.seen
        assert all(seen[line] == 1 for line in sent[settled:])
        assert service.book.lanes == 1
    finally:
        if sending.running:
            sending.stop()
        await service.stopService()
        for server in (preferred, standby):
            if server.running:
                await server.kill()


@pytest_twisted.ensureDeferred
async def test_servicesShareOneEndpointOverLoopback() -> None:
    """
    Ten services over one C{FailoverEndpoint} with failback: the preferred
    server dies and all of them move to the standby; half are stopped; the
    preferred comes back, and the other half (still probing, each for
    itself) are on it again within C{failback} seconds plus a loose margin,
    while the stopped ones stay stopped.
    """
    preferred, standby = RestartableLineServer(reactor), RestartableLineServer(reactor)
    failback = 0.5
    endpoint, ports = await failingBackOver(preferred, standby, failback)
    on: dict[int, int | None] = {}

    def connected(i: int) -> Callable[[IProtocol], None]:
        return lambda protocol: on.__setitem__(i, protocol.transport.getPeer().port)  # type: ignore[attr-defined]

    services = [
        ClientService(
            endpoint,
            Factory.forProtocol(Protocol),
            lambda n: 0.1,
            clock=reactor,
            onConnected=connected(i),
            onDisconnected=lambda p, r, i=i: on.__setitem__(i, None),
        )
        for i in range(10)
    ]
    for service in services:
        service.startService()
    stopped, running = services[:5], services[5:]
    try:
        await until(lambda: [on.get(i) for i in range(10)] == [ports[0]] * 10)
        await preferred.kill()
        await until(lambda: [on.get(i) for i in range(10)] == [ports[1]] * 10)
        await gatherResults([service.stopService() for service in stopped])
        await preferred.start()
        back = reactor.seconds()
        await until(lambda: all(on[i] == ports[0] for i in range(5, 10)), timeout=5)
        assert reactor.seconds() - back < failback + 1.5
        assert all(on[i] is None for i in range(5))
        assert all(service.state == "stopped" for service in stopped)
        assert all(service.state == "connected" for service in running)
    finally:
        await gatherResults([service.stopService() for service in services])
        for server in (preferred, standby):
            if server.running:
                await server.kill()
