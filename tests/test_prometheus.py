"""
The Prometheus collector and the relay's --metrics endpoint.
"""

from __future__ import annotations

from typing import Any

import pytest_twisted
from helpers import freePort
from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.web.client import Agent, readBody

from reconnect import ClientService
from reconnect.prometheus import ServiceCollector
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


@pytest_twisted.ensureDeferred
async def test_relayServesMetrics() -> None:
    """
    C{twistd saystuff --metrics ENDPOINT} serves the relay's metrics over
    HTTP in Prometheus' text format.
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
        response = await Agent(reactor).request(
            b"GET", f"http://127.0.0.1:{port}/metrics".encode()
        )
        body = await readBody(response)
    finally:
        await service.stopService()
    assert response.code == 200
    assert b'reconnect_attempts_total{service="saystuff"}' in body
    assert b'saystuff_queued_requests{service="saystuff"} 0.0' in body


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
        "reconnecting", "disconnecting", "restarting", "stopped", "gaveUp",
    }  # fmt: skip
    assert documented <= set(states)
    assert {state for state, value in states.items() if value} == {"handingOver"}
    assert states["handingOver"] == 1
    service.stopService()
