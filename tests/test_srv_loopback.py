"""
L{SRVEndpoint} against a real DNS server on 127.0.0.1: C{twisted.names}'
authoritative server, in this process, serving a zone the tests change
between passes, queried over UDP by a C{twisted.names.client.Resolver}.
Records that change are followed, NXDOMAIN falls back to the domain, the
C{"."} record says the service is not offered, the weights hold over 2,000
choices, and a SayStuff client over three line servers killed in turn
loses and fails no request.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from helpers import killServersInTurn, until
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.names import client, dns
from twisted.names.common import ResolverBase
from twisted.names.error import AuthoritativeDomainError
from twisted.names.server import DNSServerFactory

from reconnect import ClientService, NoServiceRecords, ServiceNotOffered, SRVEndpoint
from reconnect.saystuff import RestartableLineServer, SayStuffToServerService

DOMAIN = "fleet.test"
NAME = b"_saystuff._tcp." + DOMAIN.encode()


class Zone(ResolverBase):
    """
    The authority the DNS server answers from: a name's records, which the
    test replaces when it likes; a name it holds nothing for does not exist
    (NXDOMAIN).
    """

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[bytes, list[dns.RRHeader]] = {}
        self.queries = 0

    def serve(
        self, *targets: tuple[str, int, int, int], ttl: int = 0, name: bytes = NAME
    ) -> None:
        """
        Publish SRV records for C{name}: C{(host, port, priority, weight)}.
        """
        self.records[name] = [
            dns.RRHeader(
                name,
                dns.SRV,
                dns.IN,
                ttl,
                dns.Record_SRV(priority, weight, port, host.encode(), ttl),
                auth=True,
            )
            for host, port, priority, weight in targets
        ]

    def _lookup(self, name: bytes, cls: int, type: int, timeout: Any) -> Any:
        self.queries += 1
        name = name.lower()
        if name not in self.records:
            raise AuthoritativeDomainError(name)
        answers = [r for r in self.records[name] if r.type in (type, dns.ALL_RECORDS)]
        return succeed((answers, [], []))


class DNSOnLoopback:
    """
    A DNS server on 127.0.0.1 (UDP and TCP, on one port) serving L{zone},
    and a resolver that asks it.
    """

    def __init__(self, port: int = 0) -> None:
        """
        @param port: where to listen; 0 for a free port.
        @raise CannotListenError: if C{port} is taken.
        """
        self.zone = Zone()
        factory = DNSServerFactory(authorities=[self.zone])
        self.ports: list[IListeningPort] = []
        for _ in range(10):
            udp = reactor.listenUDP(
                port, dns.DNSDatagramProtocol(factory), interface="127.0.0.1"
            )
            self.port = udp.getHost().port
            try:
                tcp = reactor.listenTCP(self.port, factory, interface="127.0.0.1")
            except CannotListenError:
                udp.stopListening()
                if port:
                    raise
                continue
            self.ports = [udp, tcp]
            break
        assert self.ports, "no port free for both UDP and TCP"
        self.resolver = client.Resolver(
            servers=[("127.0.0.1", self.port)], reactor=reactor
        )

    def endpoint(self, **kwargs: Any) -> SRVEndpoint:
        return SRVEndpoint(
            reactor, "saystuff", DOMAIN, resolver=self.resolver, **kwargs
        )

    async def stop(self) -> None:
        await gatherResults([Deferred.fromCoroutine(_stopped(p)) for p in self.ports])


async def _stopped(port: IListeningPort) -> None:
    await port.stopListening()


@pytest_twisted.async_yield_fixture
async def servers() -> AsyncIterator[list[tuple[RestartableLineServer, int]]]:
    """
    Three line servers on 127.0.0.1.
    """
    started = [RestartableLineServer(reactor) for _ in range(3)]
    ports = [await s.start() for s in started]
    yield list(zip(started, ports, strict=True))
    for server in started:
        if server.running:
            await server.kill()


@pytest_twisted.async_yield_fixture(name="dns")
async def dnsFixture() -> AsyncIterator[DNSOnLoopback]:
    server = DNSOnLoopback()
    yield server
    await server.stop()


async def connectedVia(endpoint: SRVEndpoint) -> str:
    """
    Connect once through C{endpoint}, hang up, and say where it went.
    """
    protocol = await endpoint.connect(Factory.forProtocol(Protocol))
    assert protocol.transport is not None
    protocol.transport.loseConnection()
    assert endpoint.current is not None
    return endpoint.current


@pytest_twisted.ensureDeferred
async def test_changedRecordsFollowed(
    dns: DNSOnLoopback, servers: list[tuple[RestartableLineServer, int]]
) -> None:
    """
    A server newly listed is used on the next pass; one no longer listed
    is not tried again, though it still accepts connections.
    """
    (_, a), (_, b), (_, c) = servers
    endpoint = dns.endpoint()
    dns.zone.serve(("localhost", a, 0, 0))
    assert await connectedVia(endpoint) == f"tcp:localhost:{a}"
    dns.zone.serve(("localhost", b, 0, 0), ("localhost", c, 1, 0))
    assert await connectedVia(endpoint) == f"tcp:localhost:{b}"
    assert [h.description for h in endpoint.health()] == [
        f"tcp:localhost:{b}",
        f"tcp:localhost:{c}",
    ]
    assert dns.zone.queries == 2


@pytest_twisted.ensureDeferred
async def test_answerKeptForItsTTL(
    dns: DNSOnLoopback, servers: list[tuple[RestartableLineServer, int]]
) -> None:
    (_, a), (_, b), _ = servers
    endpoint = dns.endpoint()
    dns.zone.serve(("127.0.0.1", a, 0, 0), ttl=300)
    assert await connectedVia(endpoint) == f"tcp:127.0.0.1:{a}"
    dns.zone.serve(("127.0.0.1", b, 0, 0), ttl=300)
    assert await connectedVia(endpoint) == f"tcp:127.0.0.1:{a}"
    assert dns.zone.queries == 1


@pytest_twisted.ensureDeferred
async def test_nxdomainFallsBackToTheDomain(
    dns: DNSOnLoopback, servers: list[tuple[RestartableLineServer, int]]
) -> None:
    """
    With no SRV record (the name does not exist), the pass goes to
    C{domain:defaultPort}; with no C{defaultPort}, it fails saying so.
    """
    (_, a), _, _ = servers
    endpoint = SRVEndpoint(
        reactor, "saystuff", "localhost", resolver=dns.resolver, defaultPort=a
    )
    assert await connectedVia(endpoint) == f"tcp:localhost:{a}"
    withoutPort = SRVEndpoint(reactor, "saystuff", "localhost", resolver=dns.resolver)
    with pytest.raises(NoServiceRecords, match="no defaultPort"):
        await withoutPort.connect(Factory.forProtocol(Protocol))


@pytest_twisted.ensureDeferred
async def test_dotRecordFailsTheAttempt(
    dns: DNSOnLoopback, servers: list[tuple[RestartableLineServer, int]]
) -> None:
    (_, a), _, _ = servers
    dns.zone.serve((".", 0, 0, 0))
    endpoint = dns.endpoint(defaultPort=a)
    with pytest.raises(ServiceNotOffered, match="not offered"):
        await endpoint.connect(Factory.forProtocol(Protocol))
    assert endpoint.health() == []


@pytest_twisted.ensureDeferred
async def test_weightsOverTwoThousandChoices(dns: DNSOnLoopback) -> None:
    """
    Three servers of one priority, weights 10, 30 and 60: over 2,000
    passes, each looking the records up again (TTL 0), each server is
    tried first in a share within 5% of its weight's.
    """

    class FirstTried(SRVEndpoint):
        firsts: Counter[str] = Counter()

        def _endpointFor(self, host: str, port: int) -> IStreamClientEndpoint:
            endpoint = self

            class Recording:
                def connect(self, factory: Any) -> Deferred[Any]:
                    endpoint.firsts[host] += 1
                    return succeed(factory.buildProtocol(None))

            return Recording()  # type: ignore[return-value]

    endpoint = FirstTried(reactor, "saystuff", DOMAIN, resolver=dns.resolver)
    weights = {"a.fleet.test": 10, "b.fleet.test": 30, "c.fleet.test": 60}
    dns.zone.serve(*((host, 7, 0, w) for host, w in weights.items()))
    for _ in range(2000):
        await endpoint.connect(Factory.forProtocol(Protocol))
    assert dns.zone.queries == 2000
    assert sum(endpoint.firsts.values()) == 2000
    for host, weight in weights.items():
        assert abs(endpoint.firsts[host] / 2000 - weight / 100) < 0.05, endpoint.firsts


@pytest_twisted.ensureDeferred
async def test_saystuffThroughServersKilledInTurn(
    dns: DNSOnLoopback, servers: list[tuple[RestartableLineServer, int]]
) -> None:
    """
    Three line servers behind SRV records of two priorities; the one in use
    is killed (and brought back a little later) again and again while
    requests keep coming: every request is answered with its own line, no
    request fails, and the client moves on without waiting out its retry
    delay (2 s here), since the endpoint fails over.
    """
    (_, a), (_, b), (_, c) = servers
    byPort = {port: server for server, port in servers}
    dns.zone.serve(
        ("127.0.0.1", a, 0, 50), ("127.0.0.1", b, 0, 50), ("127.0.0.1", c, 1, 0)
    )
    endpoint = dns.endpoint()
    service = SayStuffToServerService(
        endpoint=endpoint, reactor=reactor, retryPolicy=lambda n: 2.0, queueSize=10_000
    )
    service.startService()
    try:
        gaps, used = await killServersInTurn(service, endpoint, byPort, kills=6)
        assert service.book.failed == 0
        assert len(used) >= 2
        # Loose bound for slow machines; it takes milliseconds.
        assert max(gaps) < 1.0, gaps
    finally:
        await service.stopService()


@pytest_twisted.ensureDeferred
async def test_clientServiceOverSRV(
    dns: DNSOnLoopback, servers: list[tuple[RestartableLineServer, int]]
) -> None:
    (first, a), (_, b), _ = servers
    dns.zone.serve(("127.0.0.1", a, 0, 0), ("127.0.0.1", b, 1, 0))
    endpoint = dns.endpoint()
    service = ClientService(
        endpoint, Factory.forProtocol(Protocol), retryPolicy=lambda n: 0.1
    )
    service.startService()
    try:
        await service.whenConnected()
        assert endpoint.current == f"tcp:127.0.0.1:{a}"
        await first.kill()
        await until(lambda: endpoint.current == f"tcp:127.0.0.1:{b}")
    finally:
        await service.stopService()


def _ipv6Loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        pytest.param(
            "::1",
            marks=pytest.mark.skipif(
                not _ipv6Loopback(), reason="this machine has no IPv6 loopback"
            ),
        ),
    ],
)
@pytest_twisted.ensureDeferred
async def test_targetsReachedThroughHostnameEndpoint(
    dns: DNSOnLoopback, host: str
) -> None:
    """
    Each target is connected through a C{HostnameEndpoint}, so over IPv4
    and IPv6 alike: a record whose target is C{::1} reaches a server
    listening there only.
    """
    from twisted.internet.address import IPv4Address, IPv6Address
    from twisted.internet.endpoints import HostnameEndpoint

    listening = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface=host)
    try:
        port = listening.getHost().port
        dns.zone.serve((host, port, 0, 0))
        endpoint = dns.endpoint()
        protocol = await endpoint.connect(Factory.forProtocol(Protocol))
        assert protocol.transport is not None
        peer = protocol.transport.getPeer()
        protocol.transport.loseConnection()
        assert isinstance(peer, IPv6Address if ":" in host else IPv4Address)
        assert (peer.host, peer.port) == (host, port)
        assert endpoint.current == f"tcp:{host}:{port}"
        assert isinstance(endpoint._endpoints[host, port], HostnameEndpoint)
    finally:
        await listening.stopListening()
