"""
The Prometheus collector and the relay's --metrics endpoint.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_twisted
from helpers import freePort
from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    connectProtocol,
)
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.web import http

from reconnect import ClientService
from reconnect.prometheus import (
    METRICS_CONNECTION_TIMEOUT,
    METRICS_MAX_CONNECTIONS,
    ServiceCollector,
    metricsSite,
)
from reconnect.saystuff import SayStuffToServerService
from reconnect.saystuff import _tap as tap
from reconnect.testing import FakeEndpoint


def scrape(services: dict[str, Any]) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(ServiceCollector(services))
    values = {}
    for family in registry.collect():
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}"] = sample.value
    return values


def test_clientServiceMetrics() -> None:
    """
    Counters and gauges follow the service through a failure, a connection
    and its loss.
    """
    clock = Clock()
    endpoint = FakeEndpoint()
    service = ClientService(
        endpoint, Factory.forProtocol(Protocol), lambda n: 1.0, clock=clock
    )
    service.startService()
    endpoint.last.fail()
    clock.advance(1.0)
    endpoint.last.succeed()
    clock.advance(4.0)
    values = scrape({"up": service})
    assert values["reconnect_attempts_total{service=up}"] == 2
    assert values["reconnect_failures_total{service=up}"] == 1
    assert values["reconnect_connects_total{service=up}"] == 1
    assert values["reconnect_connected{service=up}"] == 1
    assert values["reconnect_connected_seconds_total{service=up}"] == 4.0
    assert values["reconnect_state{service=up,state=connected}"] == 1
    assert values["reconnect_state{service=up,state=waiting}"] == 0
    endpoint.last.lose()
    values = scrape({"up": service})
    assert values["reconnect_disconnects_total{service=up}"] == 1
    assert values["reconnect_connected{service=up}"] == 0
    assert values["reconnect_state{service=up,state=waiting}"] == 1
    service.stopService()
    assert clock.getDelayedCalls() == []


def test_saystuffMetrics() -> None:
    """
    A SayStuff service adds its queued, in-flight, answered and failed
    requests.
    """
    clock = Clock()
    endpoint = FakeEndpoint()
    service = SayStuffToServerService(endpoint=endpoint, reactor=clock)
    service.startService()
    service.sendToServer(b"one")
    service.sendToServer(b"two")
    values = scrape({"s": service})
    assert values["saystuff_queued_requests{service=s}"] == 2
    endpoint.last.succeed()
    values = scrape({"s": service})
    assert values["saystuff_queued_requests{service=s}"] == 0
    assert values["saystuff_in_flight_requests{service=s}"] == 2
    protocol = endpoint.last.protocol
    assert protocol is not None
    protocol.dataReceived(b"one\r\n")
    values = scrape({"s": service})
    assert values["saystuff_answered_requests_total{service=s}"] == 1
    assert values["saystuff_in_flight_requests{service=s}"] == 1
    assert values["reconnect_connects_total{service=s}"] == 1
    service.stopService()
    endpoint.last.lose()
    assert b"saystuff_failed_requests_total" in generate_latest(_registry(service))


def _registry(service: Any) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ServiceCollector({"s": service}))
    return registry


class RawHTTPClient(Protocol):
    """
    Writes C{request} as it is, and keeps what comes back until the server
    closes the connection.
    """

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received = b""
        self.closed: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: object = None) -> None:
        self.closed.callback(None)


@asynccontextmanager
async def relayWithMetrics() -> AsyncIterator[int]:
    """
    The relay of C{twistd saystuff --metrics}, running, with its metrics
    on a port of 127.0.0.1; yields that port.
    """
    port = freePort()
    options = tap.Options()
    options.parseOptions(
        ["--port", str(freePort()), "--metrics", f"tcp:{port}:interface=127.0.0.1"]
    )
    options["listen"] = []
    service = tap.makeService(options)
    service.startService()
    try:
        yield port
    finally:
        await service.stopService()


async def exchange(port: int, request: bytes, seconds: float = 10.0) -> bytes:
    """
    Send C{request} to 127.0.0.1:C{port}; what the server answered before
    it closed the connection, which it must do within C{seconds}.
    """
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    client = await connectProtocol(endpoint, RawHTTPClient(request))
    try:
        await client.closed.addTimeout(seconds, reactor)
    except defer.TimeoutError:
        client.transport.abortConnection()  # type: ignore[union-attr]
        raise AssertionError(
            f"the connection is still open after {seconds} s: {client.received!r}"
        ) from None
    return client.received


@pytest_twisted.ensureDeferred
async def test_relayServesMetrics() -> None:
    """
    C{twistd saystuff --metrics ENDPOINT} serves the relay's metrics over
    HTTP in Prometheus' text format, to C{GET} and C{HEAD}.
    """
    async with relayWithMetrics() as port:
        got = await exchange(port, b"GET /metrics HTTP/1.0\r\n\r\n")
        head = await exchange(port, b"HEAD /metrics HTTP/1.0\r\n\r\n")
    headers, body = got.split(b"\r\n\r\n", 1)
    assert headers.startswith(b"HTTP/1.0 200 ")
    assert b'reconnect_attempts_total{service="saystuff"}' in body
    assert b'saystuff_queued_requests{service="saystuff"} 0.0' in body
    assert head.startswith(b"HTTP/1.0 200 ")
    assert head.endswith(b"\r\n\r\n")
    assert f"Content-Length: {len(body)}\r\n".encode() in head


@pytest.fixture
def spooled(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """
    The sizes of the request body chunks C{twisted.web} is handed, and a
    -1 for each temporary file it opens, while the test runs.
    """
    seen: list[int] = []
    original = http.Request.handleContentChunk
    temporaryFile = tempfile.TemporaryFile

    def chunk(self: http.Request, data: bytes) -> None:
        seen.append(len(data))
        original(self, data)

    def temporary(*args: Any, **kwargs: Any) -> Any:
        seen.append(-1)
        return temporaryFile(*args, **kwargs)

    monkeypatch.setattr(http.Request, "handleContentChunk", chunk)
    monkeypatch.setattr(tempfile, "TemporaryFile", temporary)
    return seen


HUGE = b"Content-Length: 10000000000\r\n"
CHUNKED = b"Transfer-Encoding: chunked\r\n"


@pytest.mark.parametrize("announced", [HUGE, CHUNKED], ids=["huge", "chunked"])
@pytest_twisted.ensureDeferred
async def test_metricsRefuseABodyUnread(announced: bytes, spooled: list[int]) -> None:
    """
    A request that announces a body, however large, is answered 413 and
    its connection closed once its headers are in: no byte of the body is
    waited for, read or spooled to disk.
    """
    request = b"POST /metrics HTTP/1.1\r\nHost: x\r\n" + announced + b"\r\n"
    async with relayWithMetrics() as port:
        answer = await exchange(port, request)
        got = await exchange(port, b"GET /metrics HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert b"Connection: close" in answer
    assert spooled == []
    assert got.startswith(b"HTTP/1.0 200 ")


@pytest_twisted.ensureDeferred
async def test_metricsReadNoMoreOfABodySent(spooled: list[int]) -> None:
    """
    A client that sends its huge body straight after the headers has its
    connection closed at once, and none of the body reaches a request.
    """
    request = b"POST /metrics HTTP/1.1\r\nHost: x\r\n" + HUGE + b"\r\n"
    async with relayWithMetrics() as port:
        await exchange(port, request + b"x" * (8 * 1024 * 1024))
    assert spooled == []


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE", b"OPTIONS"])
@pytest_twisted.ensureDeferred
async def test_metricsAnswerGetOnly(method: bytes) -> None:
    """
    Other methods than C{GET} and C{HEAD}, with no body, are answered 405.
    """
    request = method + b" /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n"
    async with relayWithMetrics() as port:
        answer = await exchange(port, request)
    assert answer.startswith(b"HTTP/1.0 405 "), answer
    assert b"Allow: GET, HEAD\r\n" in answer


@pytest_twisted.ensureDeferred
async def test_metricsCollectedInTheReactorThread() -> None:
    """
    The services' counters are read in the reactor's thread, where they
    change, not in a thread of the reactor's pool.
    """

    class Watched(ClientService):
        def stats(self) -> Any:
            threads.append(threading.current_thread())
            return super().stats()

    threads: list[threading.Thread] = []
    service = Watched(FakeEndpoint(), Factory.forProtocol(Protocol), lambda n: 1.0)
    site = metricsSite({"watched": service})
    listening = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
    try:
        port = listening.getHost().port  # type: ignore[attr-defined]
        answer = await exchange(port, b"GET / HTTP/1.0\r\n\r\n")
    finally:
        await listening.stopListening()
    assert b'reconnect_attempts_total{service="watched"} 0.0' in answer
    assert threads and set(threads) == {threading.current_thread()}


def metricsConnection(site: Any) -> tuple[Any, StringTransport]:
    """
    A connection to C{site}, over a L{StringTransport}.
    """
    channel = site.buildProtocol(None)
    assert channel is not None
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport


def test_pipelinedRequestsGetOneAnswer() -> None:
    """
    A client that pipelines 2000 requests in one read (and need not read
    the answers) gets one answer, with C{Connection: close}, and then the
    connection closes: nothing of the other requests is kept or answered.
    """
    service = ClientService(
        FakeEndpoint(), Factory.forProtocol(Protocol), lambda n: 1.0
    )
    site = metricsSite({"s": service})
    channel, transport = metricsConnection(site)
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2000)
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2000)
    answer = transport.value()
    assert answer.count(b"HTTP/1.1 200 ") == 1, answer[:300]
    assert b"\r\nConnection: close\r\n" in answer
    assert transport.disconnecting
    channel.connectionLost(Failure(ConnectionDone()))


def test_metricsConnectionsAreCappedAndTimedOut() -> None:
    """
    At most C{maxConnections} connections are served at once: more are
    closed as they connect (logged once, then at most once a minute, the
    last ones a minute after the log before them); each
    is closed C{connectionTimeout} seconds after it opened, whatever it
    sends meanwhile, which makes room for a new one.
    """
    assert (METRICS_MAX_CONNECTIONS, METRICS_CONNECTION_TIMEOUT) == (16, 10)
    reactor = MemoryReactorClock()
    site = metricsSite({}, maxConnections=2, connectionTimeout=10.0, reactor=reactor)
    logged: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        opened = [metricsConnection(site) for _ in range(2)]
        assert [site.buildProtocol(None) for _ in range(30)] == [None] * 30
        for _ in range(9):
            reactor.advance(1)
            for channel, transport in opened:
                channel.dataReceived(b"X")
                assert not transport.disconnecting
        reactor.advance(1)
        for channel, transport in opened:
            assert transport.disconnecting
            channel.connectionLost(Failure(ConnectionDone()))
        assert site.buildProtocol(None) is not None
        reactor.advance(50)
        assert reactor.getDelayedCalls() == []
    finally:
        globalLogPublisher.removeObserver(logged.append)
    refusals = [e for e in logged if "Refused" in e.get("log_format", "")]
    assert [e["count"] for e in refusals] == [1, 29]
    assert site.refused == 30  # type: ignore[attr-defined]


def test_failoverEndpointMetrics() -> None:
    """
    A service over a failover endpoint has each endpoint's health exported,
    labelled with the endpoint, and its state may be C{reconnecting}.
    """
    from reconnect import FailoverEndpoint

    clock = Clock()
    first, second = FakeEndpoint(), FakeEndpoint()
    endpoint = FailoverEndpoint(
        [first, second], clock=clock, failuresBeforeCooling=1, coolingPeriod=10.0
    )
    service = ClientService(
        endpoint, Factory.forProtocol(Protocol), lambda n: 1.0, clock=clock
    )
    service.startService()
    first.last.fail()
    second.last.succeed()
    values = scrape({"db": service})
    one, two = f"endpoint={first!r},service=db", f"endpoint={second!r},service=db"
    assert values[f"reconnect_endpoint_current{{{one}}}"] == 0
    assert values[f"reconnect_endpoint_current{{{two}}}"] == 1
    assert values[f"reconnect_endpoint_cooling{{{one}}}"] == 1
    assert values[f"reconnect_endpoint_failures_in_a_row{{{one}}}"] == 1
    assert values[f"reconnect_endpoint_failures_total{{{one}}}"] == 1
    assert values[f"reconnect_endpoint_connects_total{{{two}}}"] == 1
    service.reconnect()
    assert (
        scrape({"db": service})["reconnect_state{service=db,state=reconnecting}"] == 1
    )
    second.last.lose()
    service.stopService()


def test_stateSeriesDuringAHandOver() -> None:
    """
    C{reconnect_state} has a series for every state of the machine, the
    hand-over's included: while a make-before-break reconnect is under way,
    C{handingOver} reads 1 and every other state 0.
    """
    clock = Clock()
    endpoint = FakeEndpoint()
    service = ClientService(
        endpoint,
        Factory.forProtocol(Protocol),
        lambda n: 1.0,
        clock=clock,
        retireConnection=lambda protocol: None,
    )
    service.startService()
    endpoint.last.succeed()
    service.reconnect()
    assert service.state == "handingOver"
    values = scrape({"up": service})
    states = {
        key.split("state=")[1].rstrip("}"): value
        for key, value in values.items()
        if key.startswith("reconnect_state{")
    }
    documented = {
        "init", "connecting", "waiting", "connected", "handingOver",
        "reconnecting", "dropping", "disconnecting", "restarting", "stopped",
        "gaveUp",
    }  # fmt: skip
    assert documented <= set(states)
    assert {state for state, value in states.items() if value} == {"handingOver"}
    assert states["handingOver"] == 1
    service.stopService()
