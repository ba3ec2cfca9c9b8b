"""
Faults on purpose, over real sockets on 127.0.0.1, through L{ChaosProxy}:
cut connections, refused connects, connects that hang, half-open
connections and trickled bytes.  Each test asserts exact outcomes.

Random schedules take a seed; a failing test prints it (set
C{RECONNECT_CHAOS_SEED} to run that schedule again).
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from helpers import echoBehindProxy, saystuffThrough, sleep, talkingFactory, until
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.protocols.basic import LineReceiver

from reconnect import (
    AttemptTimedOut,
    ClientService,
    EndpointConnector,
)
from reconnect.saystuff import RestartableLineServer
from reconnect.testing import ChaosProxy


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """
    The seed of this test's random schedule, printed if the test fails.
    """
    chosen = int(os.environ.get("RECONNECT_CHAOS_SEED", random.randrange(2**32)))
    print(f"chaos seed: {chosen} (RECONNECT_CHAOS_SEED={chosen} repeats it)")
    return chosen


@pytest_twisted.async_yield_fixture
async def network() -> AsyncIterator[tuple[RestartableLineServer, ChaosProxy]]:
    """
    An echo server and a chaos proxy in front of it.
    """
    async with echoBehindProxy() as pair:
        yield pair


@pytest_twisted.ensureDeferred
async def test_steadyLoadThroughCutsAndRefusals(network: Any, seed: int) -> None:
    """
    Thousands of pipelined requests at a steady rate while the proxy cuts
    every connection every few hundred milliseconds and now and then
    refuses connects for a while: every request ends with its own reply,
    exactly once; none is lost and none fails.
    """
    server, proxy = network
    schedule = random.Random(seed)
    service = saystuffThrough(proxy, queueSize=10000)
    replies: list[Deferred[bytes]] = []
    lines: list[bytes] = []
    answeredTimes = [0] * 4000
    cuts = refusals = 0

    def answered(reply: bytes, index: int) -> bytes:
        answeredTimes[index] += 1
        return reply

    async def sender() -> None:
        for n in range(len(answeredTimes)):
            line = b"request %d %s" % (n, b"x" * schedule.randrange(0, 60))
            lines.append(line)
            replies.append(service.sendToServer(line).addCallback(answered, n))
            if n % 40 == 39:
                await sleep(0.01)

    sending = Deferred.fromCoroutine(sender())
    try:
        while not sending.called:
            await sleep(schedule.uniform(0.15, 0.35))
            cuts += proxy.cutAll() > 0
            if schedule.random() < 0.3:
                await proxy.refuse()
                refusals += 1
                await sleep(schedule.uniform(0.02, 0.1))
                await proxy.accept()
        answers = await gatherResults(replies)
    finally:
        await service.stopService()
    assert answers == lines
    assert answeredTimes == [1] * len(answeredTimes)
    status = service.status()
    assert status["answered"] == len(lines) and status["failed"] == 0
    assert cuts >= 2, "the load ended before the proxy could cut"
    assert status["connections"] >= cuts


@pytest_twisted.ensureDeferred
async def test_halfOpenConnectionReplaced(network: Any) -> None:
    """
    A connection that stays open but forwards nothing back is found dead by
    the idle check and replaced; the requests outstanding on it are
    answered on the new connection, and the event says why.
    """
    server, proxy = network
    warnings: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("reconnectEvent") == "idleTimeout":
            warnings.append(event)

    globalLogPublisher.addObserver(observe)
    service = saystuffThrough(proxy, idleTimeout=0.3)
    try:
        assert await service.sendToServer(b"before") == b"before"
        assert proxy.silence(up=False, down=True) == 1
        pending = [service.sendToServer(b"during %d" % n) for n in range(5)]
        answers = await gatherResults(pending)
    finally:
        globalLogPublisher.removeObserver(observe)
        await service.stopService()
    assert answers == [b"during %d" % n for n in range(5)]
    assert service.status()["connections"] == 2
    assert [e["outstanding"] for e in warnings] == [5]


@pytest_twisted.ensureDeferred
async def test_silentUpstreamDirectionAlsoReplaced(network: Any) -> None:
    """
    Half-open the other way: requests vanish on the way to the server.
    The idle check catches that too, and the requests are sent again.
    """
    server, proxy = network
    service = saystuffThrough(proxy, idleTimeout=0.3)
    try:
        assert await service.sendToServer(b"first") == b"first"
        proxy.silence(up=True, down=False)
        answers = await gatherResults(
            [service.sendToServer(b"a"), service.sendToServer(b"b")]
        )
    finally:
        await service.stopService()
    assert answers == [b"a", b"b"]
    assert service.status()["connections"] == 2


class Pinger(LineReceiver):
    """
    A client whose connection is ready only once the server has answered
    a ping: the handshake that a hanging connection never finishes.
    """

    delimiter = b"\r\n"

    def __init__(self) -> None:
        self.pong: Deferred[bytes] = Deferred()

    def lineReceived(self, line: bytes) -> None:
        if not self.pong.called:
            self.pong.callback(line)


def handshake(protocol: Pinger) -> Deferred[bytes]:
    protocol.sendLine(b"ping")
    return protocol.pong


def pingingService(proxy: ChaosProxy, attemptTimeout: float) -> ClientService:
    """
    A started ClientService through C{proxy} whose connections are ready
    once a ping is answered.
    """
    service = ClientService(
        TCP4ClientEndpoint(reactor, "127.0.0.1", proxy.port),
        Factory.forProtocol(Pinger),
        retryPolicy=lambda n: 0.02,
        prepareConnection=handshake,
        attemptTimeout=attemptTimeout,
    )
    service.startService()
    return service


@pytest_twisted.ensureDeferred
async def test_hangingHandshakeCutByAttemptTimeout(network: Any) -> None:
    """
    The proxy accepts but never connects upstream: the TCP connect succeeds
    and the handshake never ends.  The attempt timeout cuts each such
    attempt; once the proxy behaves, the next attempt connects.
    """
    server, proxy = network
    proxy.hangConnects = True
    service = pingingService(proxy, attemptTimeout=0.2)
    try:
        await until(lambda: service.stats().failures >= 2)
        assert service.lastFailure is not None
        assert service.lastFailure.check(AttemptTimedOut)
        assert service.state in ("waiting", "connecting")
        proxy.hangConnects = False
        protocol = await service.whenConnected()
        assert protocol.pong.called
        assert not proxy.links or all(link.up.target for link in proxy.links)
    finally:
        await service.stopService()
    assert proxy.accepted == service.stats().attempts


@pytest_twisted.ensureDeferred
async def test_trickledBytesFrameCorrectly(network: Any, seed: int) -> None:
    """
    Every byte in its own write, both ways: lines of every length, empty
    ones too, come back whole and in order.
    """
    server, proxy = network
    proxy.trickle = True
    proxy.trickleGap = 0.0005
    schedule = random.Random(seed)
    lines = [b""] + [
        bytes(
            schedule.choice(b"abc \t\x00\xff") for _ in range(schedule.randrange(1, 40))
        )
        for _ in range(30)
    ]
    service = saystuffThrough(proxy)
    try:
        answers = await gatherResults([service.sendToServer(line) for line in lines])
    finally:
        await service.stopService()
    assert answers == lines
    assert service.status()["connections"] == 1


@pytest_twisted.ensureDeferred
async def test_clientServiceRecoversFromEachFault(network: Any) -> None:
    """
    A plain ClientService connects again after a cut, after a spell of
    refused connects, and after a hanging connect (with an attempt timeout).
    """
    server, proxy = network
    service = pingingService(proxy, attemptTimeout=0.3)
    try:
        first = await service.whenConnected()
        proxy.cutAll()
        await until(lambda: service.stats().connects == 2)
        second = await service.whenConnected()
        await proxy.refuse()
        proxy.cutAll()
        await until(lambda: service.stats().failures >= 2)
        await proxy.accept()
        await until(lambda: service.stats().connects == 3)
        proxy.hangConnects = True
        proxy.cutAll()
        await until(lambda: service.stats().failures >= 3)
        proxy.hangConnects = False
        await until(lambda: service.stats().connects == 4)
    finally:
        await service.stopService()
    assert first is not second


@pytest.mark.parametrize("overEndpoint", [False, True])
@pytest_twisted.ensureDeferred
async def test_legacyFactoryRecoversFromEachFault(
    network: Any, overEndpoint: bool
) -> None:
    """
    The drop-in ReconnectingClientFactory, through C{connectTCP} or an
    L{EndpointConnector}, connects again after a cut and after a spell of
    refused connects, and says hello on every connection.
    """
    server, proxy = network
    factory = talkingFactory()
    if overEndpoint:
        connector: Any = EndpointConnector(
            TCP4ClientEndpoint(reactor, "127.0.0.1", proxy.port), factory, reactor
        )
        connector.connect()
    else:
        connector = reactor.connectTCP("127.0.0.1", proxy.port, factory)
    try:
        await until(lambda: factory.heard == [b"hello 1"])
        proxy.cutAll()
        await until(lambda: factory.heard[-1:] == [b"hello 2"])
        await proxy.refuse()
        proxy.cutAll()
        await sleep(0.2)
        assert factory.connections == 2
        await proxy.accept()
        await until(lambda: factory.heard[-1:] == [b"hello 3"])
    finally:
        factory.stopTrying()
        connector.disconnect()
    assert factory.heard == [b"hello 1", b"hello 2", b"hello 3"]


def test_trickleWithoutGapDoesNotRecurse() -> None:
    """
    Trickling with the default gap of 0 writes each byte as a write of its
    own, however many bytes come, without recursing once per byte.
    """
    from twisted.internet.testing import StringTransport

    from reconnect._chaos import _Pipe

    proxy = ChaosProxy(Clock(), upstreamPort=1)
    proxy.trickle = True
    pipe = _Pipe(proxy)
    written: list[bytes] = []
    target = StringTransport()
    target.write = written.append  # type: ignore[method-assign]
    pipe.target = target
    pipe.send(b"x" * 5000)
    assert written == [b"x"] * 5000


def test_wanderDelay() -> None:
    """
    C{wanderDelay} draws a new delay between 0 and the highest every period,
    the same ones for the same seed, until its call is stopped.
    """

    def delays(seed: int) -> list[float]:
        clock = Clock()
        proxy = ChaosProxy(clock, 1)
        wandering = proxy.wanderDelay(0.2, every=0.25, seed=seed)
        seen = []
        for _ in range(20):
            seen.append(proxy.delay)
            clock.advance(0.25)
        wandering.stop()
        stoppedAt = proxy.delay
        clock.advance(1)
        assert proxy.delay == stoppedAt
        assert clock.getDelayedCalls() == []
        return seen

    first = delays(7)
    assert all(0.0 <= delay <= 0.2 for delay in first)
    assert len(set(first)) == 20
    assert delays(7) == first
    assert delays(8) != first
