"""
Tests for L{reconnect.SRVConnector}, the drop-in for Twisted's: the faults
its author listed, fixed (a dead server no longer fails the connect while
another is up, records are looked up again after a long-lived connection
dropped, C{doStart} and C{doStop} stay paired), a C{pickServer}
override still heard, the connect functions it maps to endpoints, and
Twisted's own XMPP client factory over it.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from helpers import ConnectingByName, freePort, outcome, until
from test_srv import NAME as UNIT_NAME
from test_srv import ScriptedResolver, srv
from test_srv_loopback import DNSOnLoopback, dnsFixture  # noqa: F401
from twisted.internet import reactor
from twisted.internet.error import DNSLookupError
from twisted.internet.interfaces import IConnector
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.names import client
from twisted.names.error import DNSNameError
from zope.interface.verify import verifyObject

from reconnect import ReconnectingClientFactory, SRVConnector
from reconnect.saystuff import RestartableLineServer

# ----------------------------------------------------- in memory, by name


class Recorder(ClientFactory):
    protocol = Protocol

    def __init__(self) -> None:
        self.events: list[str] = []

    def doStart(self) -> None:
        self.events.append("doStart")

    def doStop(self) -> None:
        self.events.append("doStop")

    def startedConnecting(self, connector: IConnector) -> None:
        self.events.append("startedConnecting")

    def clientConnectionFailed(self, connector: IConnector, reason: Any) -> None:
        self.events.append("failed: " + type(reason.value).__name__)


@pytest.fixture
def memory(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[MemoryReactorClock, ScriptedResolver]:
    """
    A memory reactor that connects by name, and Twisted's default resolver
    replaced by one the test answers for (as Twisted's own tests do).
    """
    resolver = ScriptedResolver()
    monkeypatch.setattr(client, "theResolver", resolver)
    return ConnectingByName(), resolver


def test_isAConnector() -> None:
    verifyObject(
        IConnector, SRVConnector(MemoryReactorClock(), "xmpp", "a.test", Recorder())
    )


def test_pickServerOverrideHeard(memory: tuple[MemoryReactorClock, Any]) -> None:
    """
    A subclass that overrides C{pickServer} (wokkel's
    C{XMPPClientConnector} falls back to port 5222 so) puts the pass in
    order, the fallback included.
    """
    memoryReactor, resolver = memory

    class FallsBackTo5222(SRVConnector):
        def pickServer(self) -> tuple[str, Any]:
            host, port = super().pickServer()
            if not self.servers and not self.orderedServers:
                port = 5222
            return host, port

    resolver.answer = DNSNameError(UNIT_NAME)
    connector = FallsBackTo5222(
        memoryReactor, "nosuchservice", "example.test", Recorder()
    )
    connector.connect()
    assert memoryReactor.tcpClients[-1][:2] == ("example.test", 5222)


def connectedToItsRecord(
    memory: tuple[MemoryReactorClock, Any], **connectFunction: Any
) -> SRVConnector:
    """
    A connector to C{example.test}'s saystuff service, whose one record is
    C{a.test:7}, made with C{connectFunction} and connected: the reactor
    was asked to connect to that record's host and port.
    """
    memoryReactor, resolver = memory
    resolver.answer = [srv("a.test", 7)]
    connector = SRVConnector(
        memoryReactor, "saystuff", "example.test", Recorder(), **connectFunction
    )
    connector.connect()
    assert memoryReactor.tcpClients[-1][:2] == ("a.test", 7)
    return connector


def test_connectTCPArgumentsPassedOn(memory: tuple[MemoryReactorClock, Any]) -> None:
    connectedToItsRecord(
        memory,
        connectFuncArgs=(7,),
        connectFuncKwArgs={"bindAddress": ("127.0.0.1", 0)},
    )
    memoryReactor, _ = memory
    assert memoryReactor.tcpClients[-1][3:] == (7, ("127.0.0.1", 0))


def test_connectSSLIsTLS(memory: tuple[MemoryReactorClock, Any]) -> None:
    """
    C{connectSSL} with a context factory: each server is reached over TLS
    made with it (on a C{HostnameEndpoint}, so the reactor sees TCP).
    """
    from twisted.internet import ssl

    connector = connectedToItsRecord(
        memory,
        connectFuncName="connectSSL",
        connectFuncArgs=(ssl.ClientContextFactory(),),
    )
    assert [h.description for h in connector.endpoint.health()] == ["tls:a.test:7"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"connectFuncName": "connectUNIX"}, "connectFuncName"),
        ({"connectFuncArgs": (1, 2, 3)}, "at most 2"),
        ({"connectFuncKwArgs": {"flags": 1}}, "does not take flags"),
        ({"connectFuncName": "connectSSL"}, "context factory"),
    ],
)
def test_badConnectFunction(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SRVConnector(MemoryReactorClock(), "xmpp", "a.test", Recorder(), **kwargs)


def test_pickServerDrawsZeroWeightsAtRandom() -> None:
    """
    Records all of weight 0: over 2,000 picks, each is first about a third
    of the time, not the first by name every time.
    """
    from collections import Counter

    from twisted.names import dns

    connector = SRVConnector(MemoryReactorClock(), "xmpp", "a.test", Recorder())
    records = [
        dns.Record_SRV(0, 0, 7, name)  # type: ignore[no-untyped-call]
        for name in (b"c.test", b"a.test", b"b.test")
    ]
    firsts: Counter[str] = Counter()
    for _ in range(2000):
        connector.servers, connector.orderedServers = list(records), []
        firsts[connector.pickServer()[0]] += 1
    assert set(firsts) == {"a.test", "b.test", "c.test"}
    for count in firsts.values():
        assert abs(count / 2000 - 1 / 3) < 0.05, firsts


def test_lostServerGoesLastAcrossTheFactorysRetry(
    memory: tuple[MemoryReactorClock, ScriptedResolver],
) -> None:
    """
    A L{ReconnectingClientFactory} that lost a steady connection to the
    first server retries through the second first: the connector keeps
    its session, which remembers the lost server, across the retry.
    """
    from reconnect.testing import FakeEndpoint

    memoryReactor, resolver = memory
    resolver.answer = [srv("a.test", 7), srv("b.test", 7, priority=1)]
    fakes: dict[tuple[str, int], FakeEndpoint] = {}

    class Faked(SRVConnector):
        def _endpointFor(self, reactor: Any, host: str, port: int) -> Any:
            return fakes.setdefault((host, port), FakeEndpoint())

    factory = Counting()
    factory.noisy = False
    factory.clock = memoryReactor
    connector = Faked(memoryReactor, "saystuff", "example.test", factory)
    connector.connect()
    fakes["a.test", 7].last.succeed()
    memoryReactor.advance(5)
    fakes["a.test", 7].last.lose()
    memoryReactor.advance(factory.delay)
    assert [len(fakes[p].attempts) for p in (("a.test", 7), ("b.test", 7))] == [1, 1]
    factory.stopTrying()
    assert memoryReactor.getDelayedCalls() == []


def test_noDomainFailsEachAttempt() -> None:
    factory = Recorder()
    connector = SRVConnector(MemoryReactorClock(), "xmpp", None, factory)
    connector.connect()
    assert factory.events == [
        "doStart",
        "startedConnecting",
        "failed: DNSLookupError",
        "doStop",
    ]
    assert outcome(connector.endpoint.connect(factory)).check(DNSLookupError)


# ---------------------------------------------------------------- loopback


class Counting(ReconnectingClientFactory):
    """
    A reconnecting factory that counts what it is told.
    """

    protocol = Protocol
    initialDelay = 0.05
    factor = 1.0
    jitter = 0.0

    def __init__(self) -> None:
        self.failed = 0
        self.made: list[Protocol] = []
        self.starts = 0
        self.stops = 0

    def doStart(self) -> None:
        self.starts += 1
        super().doStart()

    def doStop(self) -> None:
        self.stops += 1
        super().doStop()

    def clientConnectionFailed(self, connector: IConnector, reason: Any) -> None:
        self.failed += 1
        super().clientConnectionFailed(connector, reason)

    def buildProtocol(self, addr: Any) -> Protocol:
        protocol = super().buildProtocol(addr)
        assert protocol is not None
        self.made.append(protocol)
        return protocol  # type: ignore[no-any-return]


@pytest_twisted.ensureDeferred
async def test_deadServerDoesNotFailTheConnect(
    dns: DNSOnLoopback, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Records list a dead server first and a live one second: the factory
    connects through the live one and hears of no failure.  (Twisted's
    connector tells the factory the first failed, and a reconnecting
    factory waits out a delay before trying the next.)
    """
    monkeypatch.setattr(client, "theResolver", dns.resolver)
    server = RestartableLineServer(reactor)
    live = await server.start()
    dns.zone.serve(("127.0.0.1", freePort(), 0, 0), ("127.0.0.1", live, 1, 0))
    factory = Counting()
    connector = SRVConnector(reactor, "saystuff", "fleet.test", factory)
    connector.connect()
    try:
        await until(lambda: factory.made)
        assert factory.failed == 0
        assert connector.state == "connected"
        assert connector.getDestination().port == live  # type: ignore[attr-defined]
    finally:
        factory.stopTrying()
        connector.disconnect()
        await server.kill()


@pytest_twisted.ensureDeferred
async def test_recordsLookedUpAgainAfterTheConnectionDrops(
    dns: DNSOnLoopback, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A long-lived connection drops; by then the records name another
    server: the factory's reconnect goes there, and C{doStart} and
    C{doStop} stay paired.  (Twisted's connector, with a server of its
    first lookup still untried, reconnects to the one it was on, dead or
    not, for as long as the factory retries.)
    """
    monkeypatch.setattr(client, "theResolver", dns.resolver)
    first, second = RestartableLineServer(reactor), RestartableLineServer(reactor)
    ports = [await first.start(), await second.start()]
    dns.zone.serve(("127.0.0.1", ports[0], 0, 0), ("127.0.0.1", freePort(), 1, 0))
    factory = Counting()
    connector = SRVConnector(reactor, "saystuff", "fleet.test", factory)
    connector.connect()
    try:
        await until(lambda: factory.made)
        dns.zone.serve(("127.0.0.1", ports[1], 0, 0))
        await first.kill()
        await until(lambda: len(factory.made) == 2)
        assert connector.getDestination().port == ports[1]  # type: ignore[attr-defined]
        # Started once more than stopped, as over the reactor's connectors.
        assert factory.starts - factory.stops == 1
    finally:
        factory.stopTrying()
        connector.disconnect()
        await second.kill()
    await until(lambda: factory.stops == factory.starts)


@pytest_twisted.ensureDeferred
async def test_twistedWordsXmlStreamFactory(
    dns: DNSOnLoopback, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Twisted's own XMPP client factory (a C{ReconnectingClientFactory})
    over ours: its stream is connected through the live server though a
    dead one is listed first.
    """
    from twisted.words.protocols.jabber import xmlstream

    monkeypatch.setattr(client, "theResolver", dns.resolver)
    server = RestartableLineServer(reactor)
    live = await server.start()
    dns.zone.serve(
        ("127.0.0.1", freePort(), 0, 0),
        ("127.0.0.1", live, 1, 0),
        name=b"_xmpp-client._tcp.fleet.test",
    )
    factory = xmlstream.XmlStreamFactory(xmlstream.Authenticator())
    connected: list[Any] = []
    failed: list[Any] = []
    factory.addBootstrap(xmlstream.STREAM_CONNECTED_EVENT, connected.append)
    factory.clientConnectionFailed = lambda c, r: failed.append(r)  # type: ignore[method-assign]
    connector = SRVConnector(reactor, "xmpp-client", "fleet.test", factory)
    connector.connect()
    try:
        await until(lambda: connected)
        assert failed == []
    finally:
        factory.stopTrying()
        connector.disconnect()
        await server.kill()
